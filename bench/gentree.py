"""Generate synthetic image trees for benchmarks: N images, depth, fan-out, second parents."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

CHANGELOG = """{name} ({version}) wikimedia; urgency=medium

  * Synthetic image.

 -- Bench <bench@example.org>  Mon, 02 Mar 2026 10:00:00 +0000
"""

TEMPLATE = """FROM {{{{ "{parent}" | image_tag }}}}
{copy}RUN {run}
"""


def generate(
    root: Path,
    count: int,
    depth: int,
    *,
    second_parent: float = 0.2,
    run: str = "true",
    test: bool = False,
    base: str = "busybox",
    seed: int = 1,
) -> list[str]:
    """Write COUNT images in DEPTH levels under ROOT; returns the names, roots first."""
    rnd = random.Random(seed)
    levels: list[list[str]] = [[] for _ in range(depth)]
    names = []
    for index in range(count):
        level = index % depth if index >= depth else index
        name = f"img{index:05d}"
        levels[level].append(name)
        names.append(name)
    for level, members in enumerate(levels):
        for name in members:
            parents = [rnd.choice(levels[level - 1])] if level else []
            if level and rnd.random() < second_parent:
                other = rnd.choice(levels[rnd.randrange(level)])
                if other not in parents:
                    parents.append(other)
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "changelog").write_text(CHANGELOG.format(name=name, version="1.0-1"))
            first = parents[0] if parents else base
            copy = "".join(
                f'COPY --from={{{{ "{p}" | image_tag }}}} /etc/hostname /tmp/{p}\n'
                for p in parents[1:]
            )
            (folder / "Dockerfile.template").write_text(
                TEMPLATE.format(parent=first, copy=copy, run=run.replace("NAME", name))
            )
            if parents:
                (folder / "control").write_text(
                    f"Package: {name}\nDescription: synthetic\nDepends: {', '.join(parents)}\n"
                )
            if test:
                (folder / "test.sh").write_text('#!/bin/sh\ndocker run --rm "$1" true\n')
                (folder / "test.sh").chmod(0o755)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--second-parent", type=float, default=0.2)
    args = parser.parse_args()
    generate(args.root, args.count, args.depth, second_parent=args.second_parent)


if __name__ == "__main__":
    main()
