"""Rules a run follows that depend on what it finds when a step starts (files of an image's
folder, images of the daemon), decided here from those facts so the executor only looks and
does what they say."""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping

import attrs

from dockerpkg.core.config import Config, proxy_args

# What a verification inherits of the run's environment besides PATH: it usually runs
# docker itself, which must reach the daemon the image was built on.
_INHERITED = ("DOCKER_HOST", "DOCKER_CONFIG", "HOME")
_DEFAULT_PATH = "/usr/bin:/bin"


@attrs.frozen
class Verification:
    """How to verify one image: ARGV run with ENV, or SKIPPED (why) when its test is absent."""

    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict)
    skipped: str | None = None


def _path_words(config: Config) -> list[str]:
    return [token for arg in config.verify_args for token in shlex.split(arg) if "{path}" in token]


def verification_paths(config: Config, folder: str) -> tuple[str, ...]:
    """The files the verification names in FOLDER (the image's folder, absolute): the
    `{path}` words of `verify_args`, whose presence decides whether it runs."""
    return tuple(token.replace("{path}", folder) for token in _path_words(config))


def verification(
    config: Config,
    label: str,
    folders: tuple[str, str],
    present: Collection[str],
    envs: tuple[Mapping[str, str], Mapping[str, str]],
) -> Verification:
    """The verification of LABEL; FOLDERS: the image's folder (absolute) and as the tree
    names it; PRESENT: which of its `verification_paths` exist; ENVS: the run's environment
    and the builder's (DOCKER_HOST and TLS variables, over the run's).

    An image without its test is skipped, as docker-pkg does: most trees test a few images.
    """
    folder, shown = folders
    for token in _path_words(config):
        if token.replace("{path}", folder) not in present:
            return Verification(skipped="skipped: no " + token.replace("{path}", shown))
    args = [arg.format(image=label, path=folder) for arg in config.verify_args]
    env, builder_env = envs
    given = {"PATH": env.get("PATH", _DEFAULT_PATH), **proxy_args(config)}
    given.update({key: value for key in _INHERITED if (value := env.get(key))})
    given.update(builder_env)
    return Verification(argv=(config.verify_command, *args), env=given)


def local_copy_serves(label: str, local_labels: Collection[str]) -> bool:
    """Whether a failed pull of LABEL may go on with the daemon's own copy: a base image
    made locally (no registry has it) still builds, as with docker-pkg."""
    return label in local_labels
