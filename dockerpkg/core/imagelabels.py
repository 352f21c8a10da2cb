"""The labels a build puts on an image, decided when planning: dockerpkg's definition and the
standard OCI annotations registry UIs and scanners read (`org.opencontainers.image.*`).

`created` is the top changelog entry's date, not the time of the build: a rebuild of the same
entry gives the same labels, so the same image where the layers are the same.
"""

from __future__ import annotations

import email.utils
import re
import urllib.parse
from collections.abc import Mapping

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.definition import DEFINITION_LABEL, IDENTITY_LABEL
from dockerpkg.core.plan import BuildEngine

OCI = "org.opencontainers.image."

# The trailer of a changelog entry: " -- NAME <EMAIL>  DATE".
_TRAILER = re.compile(r"^ -- .*?>  (?P<date>\S.*?)\s*$", re.MULTILINE)


@attrs.frozen
class SourceFacts:
    """What the tree's git checkout says of itself (observed by the caller)."""

    revision: str | None = None  # the commit checked out
    url: str | None = None  # the `origin` remote, credentials removed


NO_SOURCE = SourceFacts()


def entry_date(changelog: str) -> str | None:
    """The top entry's date as RFC 3339 (None when it does not read as RFC 2822)."""
    match = _TRAILER.search(changelog)
    if match is None:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(match["date"])
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.isoformat()


def public_url(url: str) -> str:
    """URL without a user or password in it: a remote may carry a token, never to be shown."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def image_labels(
    *,
    name: str,
    version: str,
    changelog: str,
    own_definition: str | None,
    config: Config,
    source: SourceFacts,
    identity: str | None = None,
) -> Mapping[str, str]:
    """The labels of one image: the definition (for drift) and the identity (for reusing
    staged and local images) unless `definition_labels` is off, and the OCI ones unless
    `oci_labels` is off; `source_url` replaces the remote's URL."""
    found: dict[str, str | None] = {}
    if config.definition_labels:
        found[DEFINITION_LABEL] = own_definition
        found[IDENTITY_LABEL] = identity
    if config.oci_labels:
        found.update(
            {
                OCI + "title": name,
                OCI + "version": version,
                OCI + "created": entry_date(changelog),
                OCI + "revision": source.revision,
                OCI + "source": config.source_url or source.url,
            }
        )
    return {key: value for key, value in sorted(found.items()) if value}


# A parser directive at the top of a Dockerfile that changes its escape character.
_ESCAPE = re.compile(r"\A(?:#\s*\w+\s*=.*\n)*?#\s*escape\s*=\s*(?P<char>\S)", re.IGNORECASE)


def _quoted(text: str, escape: str) -> str:
    escaped = "".join(escape + c if c in {escape, '"', "$"} else c for c in text)
    return '"' + escaped + '"'


def label_instruction(labels: Mapping[str, str], escape: str = "\\") -> str:
    """One LABEL instruction setting every label: one commit for the classic engine, which
    commits each label passed beside the build as a step of its own."""
    pairs = (f"{_quoted(k, escape)}={_quoted(v, escape)}" for k, v in sorted(labels.items()))
    return "LABEL " + " ".join(pairs)


@attrs.frozen
class LabelledBuild:
    """What a build sends: the Dockerfile and the labels given beside it."""

    dockerfile: str
    labels: Mapping[str, str]


def labelled_build(
    dockerfile: str, labels: Mapping[str, str], engine: BuildEngine
) -> LabelledBuild:
    """BuildKit sets labels on export, with no step; the classic engine gets them as one
    LABEL line at the end of the Dockerfile (the final stage's), in a single commit."""
    if engine is BuildEngine.BUILDKIT or not labels:
        return LabelledBuild(dockerfile, labels)
    body = dockerfile if dockerfile.endswith("\n") else dockerfile + "\n"
    directive = _ESCAPE.match(dockerfile)
    escape = directive["char"] if directive else "\\"
    return LabelledBuild(body + label_instruction(labels, escape) + "\n", {})
