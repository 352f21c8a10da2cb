"""Write image trees and configs on disk for tests that build them with a real daemon.

An image folder is what docker-pkg reads: a Dockerfile.template, a Debian changelog, and
optionally a control file (Depends), a test.sh, a .dockerignore and any other context files.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from tests.support.services import Registry

__all__ = ["BASE_IMAGE", "ImageFolder", "unique_prefix", "write_config", "write_image"]

# Where tests put the busybox base image inside their registry.
BASE_IMAGE = "base/busybox:1.36"

_CHANGELOG = """\
{name} ({version}) wikimedia; urgency=medium

  * Test release.

 -- Test Maintainer <maintainer@example.org>  Thu, 26 Nov 2026 10:00:00 +0000
"""


def unique_prefix() -> str:
    """A fresh lowercase prefix for image names, so concurrent runs never share a name."""
    return "t" + secrets.token_hex(4)


@attrs.frozen
class ImageFolder:
    """One image of a tree, as written by write_image."""

    path: Path
    name: str
    version: str

    @property
    def changelog(self) -> Path:
        return self.path / "changelog"

    @property
    def template(self) -> Path:
        return self.path / "Dockerfile.template"


def write_image(
    root: Path,
    name: str,
    version: str,
    template: str,
    *,
    depends: Sequence[str] = (),
    files: Mapping[str, str] = {},
    executable: Sequence[str] = ("test.sh",),
) -> ImageFolder:
    """Write the folder ROOT/NAME; FILES maps relative paths (test.sh, .dockerignore, ...) to
    their text, and those named in EXECUTABLE get mode 0755."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile.template").write_text(template, encoding="utf-8")
    (folder / "changelog").write_text(
        _CHANGELOG.format(name=name, version=version), encoding="utf-8"
    )
    if depends:
        (folder / "control").write_text(
            f"Package: {name}\nDescription: test image\nDepends: {', '.join(depends)}\n",
            encoding="utf-8",
        )
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if relative in executable:
            path.chmod(0o755)
    return ImageFolder(folder, name, version)


def write_config(
    path: Path,
    registry: Registry,
    *,
    namespace: str,
    username: str | None,
    password: str | None,
    extra: Mapping[str, str] = {},
) -> Path:
    """A config naming REGISTRY, its base image, NAMESPACE and the given credentials (or none)."""
    lines = [
        f"registry: {registry.host}",
        f"namespace: {namespace}",
        "base_images:",
        f"  - {registry.ref(BASE_IMAGE)}",
    ]
    if username is not None:
        lines.append(f"username: {username}")
    if password is not None:
        lines.append(f"password: {password}")
    lines += [f"{key}: {value}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
