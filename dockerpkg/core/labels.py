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


# What Docker calls Docker Hub when a name has no registry, and its other spellings.
DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", "registry-1.docker.io"})


def registry_of(repository: str) -> str:
    """The registry host REPOSITORY names, as Docker reads it: its first component when that
    has a dot, a port or is localhost; else Docker Hub."""
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB if first in _HUB_ALIASES else first
    return DOCKER_HUB


def same_registry(repository: str, registry: str | None) -> bool:
    """Whether REPOSITORY lives in REGISTRY (the config's `registry`; empty: Docker Hub), so
    that the credentials for REGISTRY may be sent for it, and only then."""
    host = (registry or "").strip().rstrip("/")
    configured = registry_of(f"{host}/x") if host else DOCKER_HUB
    return registry_of(repository) == configured


# Docker's reference grammar for a tag.
_DOCKER_TAG = re.compile(r"[\w][\w.-]{0,127}")


def is_docker_tag(tag: str) -> bool:
    return _DOCKER_TAG.fullmatch(tag) is not None


# Docker's reference grammar (distribution/reference): a registry host, path components.
_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
# Docker refuses longer repository names (registry and path together).
MAX_REPOSITORY_LENGTH = 255


def registry_problem(registry: str) -> str | None:
    """Why REGISTRY is no registry host for Docker (None: it is one)."""
    if "://" in registry:
        return f"'{registry}' is a URL; give the host[:port] only (no scheme)"
    if "/" in registry:
        host, _, rest = registry.partition("/")
        if not rest.strip("/"):
            return f"'{registry}' ends in '/'; give the host[:port] only ('{host}')"
        return (
            f"'{registry}' holds a path; give the host[:port] only ('{host}') "
            f"and put '{rest}' in front of 'namespace'"
        )
    if not _REGISTRY.fullmatch(registry):
        return f"'{registry}' is not a registry host[:port] (letters, digits, '-', '.', a port)"
    return None


def path_problem(path: str, what: str) -> str | None:
    """Why PATH (a namespace or an image name) cannot be part of a repository name."""
    bad = [part for part in path.split("/") if not _PATH_COMPONENT.fullmatch(part)]
    if not bad:
        return None
    return (
        f"{what} '{path}' is not a valid repository path: each '/'-separated part must be "
        "lowercase letters and digits, separated by '.', '_', '__' or dashes"
        + (" (no empty part)" if "" in bad else "")
    )


def repository_length_problem(repository: str) -> str | None:
    if len(repository) > MAX_REPOSITORY_LENGTH:
        return (
            f"the repository name is {len(repository)} characters long (registry, namespace "
            f"and image name together); Docker allows {MAX_REPOSITORY_LENGTH}"
        )
    return None
