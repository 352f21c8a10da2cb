"""Read an image tree from disk into an immutable Snapshot: the one place the tree is read."""

from __future__ import annotations

import os
from pathlib import Path

from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.errors import DockerPkgError, Problem, warning

TEMPLATE = "Dockerfile.template"
BUILD_TEMPLATE = "Dockerfile.build.template"
CHANGELOG = "changelog"
CONTROL = "control"
# Larger files are build context, not something a template would include.
MAX_INCLUDE_SIZE = 256 * 1024


def _relative(root: Path, folder: Path) -> str:
    rel = folder.relative_to(root).as_posix()
    return rel or "."


def _read_text(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_INCLUDE_SIZE:
            return None
        return path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _folder_files(
    folder: Path, nested_images: set[Path]
) -> tuple[list[str], list[tuple[str, str]]]:
    """All file names of an image folder, and its small text files, without nested images."""
    names: list[str] = []
    texts: list[tuple[str, str]] = []
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if here / d not in nested_images)
        for name in sorted(files):
            rel = (here / name).relative_to(folder).as_posix()
            names.append(rel)
            text = _read_text(here / name)
            if text is not None:
                texts.append((rel, text))
    return names, texts


def read_snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """Walk ROOT recursively; folders with a template and a changelog are images."""
    top = Path(root)
    if not top.is_dir():
        raise DockerPkgError.single(str(root), "not a directory")
    image_dirs: set[Path] = set()
    warnings: list[Problem] = []
    for current, dirs, files in os.walk(top):
        dirs.sort()
        here = Path(current)
        has_template, has_changelog = TEMPLATE in files, CHANGELOG in files
        if has_template and has_changelog:
            image_dirs.add(here)
        elif has_template or has_changelog:
            missing = CHANGELOG if has_template else TEMPLATE
            warnings.append(warning(_relative(top, here), f"skipped: the folder has no {missing}"))
    sources = []
    for folder in sorted(image_dirs):
        names, texts = _folder_files(folder, image_dirs - {folder})
        text_map = dict(texts)
        sources.append(
            ImageSource(
                path=_relative(top, folder),
                template=(folder / TEMPLATE).read_text(encoding="utf-8"),
                changelog=(folder / CHANGELOG).read_text(encoding="utf-8"),
                control=text_map.get(CONTROL),
                build_template=text_map.get(BUILD_TEMPLATE),
                files=tuple(texts),
                names=frozenset(names),
            )
        )
    sources.sort(key=lambda s: s.path)
    return Snapshot(images=tuple(sources), warnings=tuple(sorted(warnings, key=str)))
