"""A small valid image tree to break in one way per test, and a fingerprint of every file.

The work folder holds `config.yaml` and the tree `images/` with three images: `base` (FROM
scratch), and `app` and `tools`, both depending on `base` through control and image_tag.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["changelog", "fingerprint", "write", "write_work"]

CONFIG = "registry: registry.example.org\nnamespace: team\n"


def changelog(name: str, version: str = "1.0") -> str:
    return (
        f"{name} ({version}) wikimedia; urgency=medium\n\n  * Initial release.\n\n"
        " -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )


def write(path: Path, content: str | bytes) -> None:
    """Write PATH (and its folders), text as UTF-8 exactly as given (no newline translation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.write_bytes(content)


def write_image(tree: Path, name: str, template: str, depends: tuple[str, ...] = ()) -> Path:
    folder = tree / name
    write(folder / "Dockerfile.template", template)
    write(folder / "changelog", changelog(name))
    if depends:
        write(folder / "control", f"Package: {name}\nDepends: {', '.join(depends)}\n")
    return folder


def write_work(work: Path) -> Path:
    """The valid work folder; returns the tree."""
    tree = work / "images"
    write(work / "config.yaml", CONFIG)
    write_image(tree, "base", "FROM scratch\nCOPY hello.txt /\n")
    write(tree / "base" / "hello.txt", "hello\n")
    for name in ("app", "tools"):
        write_image(tree, name, f"FROM {{{{ 'base' | image_tag }}}}\nRUN {name}\n", ("base",))
    return tree


def fingerprint(root: Path) -> dict[str, str]:
    """Every entry under ROOT (links not followed): a file's sha256, a link's target, and
    the mode of everything, so any change shows."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            stat = os.lstat(path)
            if os.path.islink(path):
                found[relative] = f"link {os.readlink(path)}"
            elif os.path.isdir(path):
                found[relative] = f"dir {stat.st_mode:o}"
            elif os.path.isfile(path):
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                found[relative] = f"file {stat.st_mode:o} {digest}"
            else:
                found[relative] = f"special {stat.st_mode:o}"
    return found
