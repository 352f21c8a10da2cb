"""What the daemon was seen to hold: its images, as values the planners take."""

from __future__ import annotations

from typing import Any

import attrs

from dockerpkg.core.definition import IDENTITY_LABEL


@attrs.frozen
class LocalImage:
    """One image in the daemon, as `docker images` lists it."""

    id: str
    tags: tuple[str, ...]
    parent: str | None = None
    identity: str | None = None  # the build identity its label records (dockerpkg builds)


def local_images(raw: list[dict[str, Any]]) -> tuple[LocalImage, ...]:
    """LocalImage values from an image listing."""
    return tuple(
        LocalImage(
            id=item["Id"],
            tags=tuple(t for t in (item.get("RepoTags") or ()) if t != "<none>:<none>"),
            parent=item.get("ParentId") or None,
            identity=_identity(item.get("Labels")),
        )
        for item in raw
    )


def _identity(labels: object) -> str | None:
    found = labels.get(IDENTITY_LABEL) if isinstance(labels, dict) else None
    return found if isinstance(found, str) and found else None
