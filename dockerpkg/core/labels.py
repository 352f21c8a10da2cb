"""Image labels: building `registry/namespace/name:tag` and taking them apart.

docker-pkg splits a label on every ':', which breaks on registry ports and version epochs;
here the tag starts at the first ':' after the last '/'.
"""

from __future__ import annotations

import re


def join_repository(*parts: str | None) -> str:
    """Join non-empty parts with '/', as docker-pkg's labels leave empty parts out."""
    return "/".join(p.strip("/") for p in parts if p)


def make_label(registry: str | None, namespace: str | None, name: str, tag: str) -> str:
    return f"{join_repository(registry, namespace, name)}:{tag}"


def stage_repository(repository: str) -> str:
    """Where an image's build stage is tagged (docker-pkg < 3's `NAME-build`): never published."""
    return f"{repository}-build"


def split_label(label: str) -> tuple[str, str | None]:
    """'host:5000/ns/name:2:1.0-1' -> ('host:5000/ns/name', '2:1.0-1'); no tag -> None."""
    slash = label.rfind("/")
    colon = label.find(":", slash + 1)
    if colon < 0:
        return label, None
    return label[:colon], label[colon + 1 :]


def repository_path(repository: str, registry: str | None) -> str:
    """The repository without its registry host: what goes into /v2/<path>/manifests/."""
    if registry and repository.startswith(registry.rstrip("/") + "/"):
        return repository[len(registry.rstrip("/")) + 1 :]
    return repository


# Docker's reference grammar for a tag.
_DOCKER_TAG = re.compile(r"[\w][\w.-]{0,127}")


def is_docker_tag(tag: str) -> bool:
    return _DOCKER_TAG.fullmatch(tag) is not None
