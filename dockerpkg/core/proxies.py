"""What a config's proxy means for a run: the build args it gives, and a warning where its URL
holds a password that rendered Dockerfiles would carry."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from dockerpkg.core.configvalue import Config
from dockerpkg.core.configyaml import key_location
from dockerpkg.errors import Problem, warning


def proxy_password_warnings(config: Config, files: Sequence[tuple[str, str]]) -> list[Problem]:
    """A warning for each proxy key whose URL holds a password: `apt_install` writes the
    proxy into rendered Dockerfiles, so into plans and image history (as docker-pkg does)."""
    found = []
    for key in ("http_proxy", "apt_only_proxy"):
        value = getattr(config, key)
        if key == "apt_only_proxy" and value == config.http_proxy:
            continue  # taken from http_proxy: said once, there
        try:
            password = urllib.parse.urlsplit(value).password if value else None
        except ValueError:
            password = None
        if password:
            where = key_location(files, key)
            found.append(
                warning(
                    where.path,
                    f"'{key}' holds a password: templates using apt_install write the proxy "
                    "into the rendered Dockerfile, so into plans, build logs and the image's "
                    "history, as docker-pkg does; use a proxy that needs no password (one "
                    "that admits the builders' addresses)",
                    where.line,
                )
            )
    return found


def proxy_args(config: Config) -> dict[str, str]:
    """The build args (and verification environment) a proxy gives: docker-pkg passes its
    proxy to builds and to verification, in both spellings."""
    if not config.http_proxy:
        return {}
    return dict.fromkeys(
        ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"), config.http_proxy
    )
