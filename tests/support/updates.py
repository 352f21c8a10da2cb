"""Image trees for update and prune tests: writable copies of compat cases, small trees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def copy_case(case: Path, tmp_path: Path) -> Path:
    """A writable copy of a compat case (the bundled fixtures are read-only)."""
    target = tmp_path / case.name
    shutil.copytree(case, target)
    for folder, dirs, files in os.walk(target):
        for name in [*dirs, *files]:
            os.chmod(os.path.join(folder, name), 0o755 if name in dirs else 0o644)
        os.chmod(folder, 0o755)
    return target


def write_tree(
    root: Path,
    images: dict[str, tuple[str, list[str]]],
    config: str = "registry: registry.example.org\n",
) -> Path:
    """Images NAME -> (version, depends) under ROOT/images, and CONFIG as ROOT/config.yaml.

    Each template names its parents through image_tag, after a FROM of its own.
    """
    for name, (version, depends) in images.items():
        folder = root / "images" / name
        folder.mkdir(parents=True)
        parents = "".join(f"# uses {{{{ '{d}' | image_tag }}}}\n" for d in depends)
        (folder / "Dockerfile.template").write_text(f"FROM scratch\n{parents}", "utf-8")
        (folder / "changelog").write_text(
            f"{name} ({version}) wikimedia; urgency=medium\n\n  * Initial release.\n\n"
            " -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n",
            "utf-8",
        )
        if depends:
            (folder / "control").write_text(
                f"Package: {name}\nDepends: {', '.join(depends)}\n", "utf-8"
            )
    (root / "config.yaml").write_text(config, "utf-8")
    return root
