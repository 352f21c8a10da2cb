"""Generate synthetic image trees for benchmarks: N images, depth, fan-out, second parents."""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

CHANGELOG = """{name} ({version}) wikimedia; urgency=medium

  * Synthetic image.

 -- Bench <bench@example.org>  Mon, 02 Mar 2026 10:00:00 +0000
"""

TEMPLATE = """FROM {{{{ "{parent}" | image_tag }}}}
{copy}RUN {run}
"""

# About 0.55 s per image on a 2-core machine: a little CPU (a busybox sh loop) and a wait,
# and a file written, as real steps do (a step that changes no file makes an empty layer,
# which BuildKit's inline cache does not always bring back).
RUN_WORK = "sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.5; echo NAME > /work'"

TEST_SCRIPT = '#!/bin/sh\ndocker run --rm "$1" true\n'


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
    prefix: str = "img",
    roots: int | None = None,
    copy_path: str = "/etc/hostname",
) -> list[str]:
    """Write COUNT images in DEPTH levels under ROOT; returns the names, roots first.

    By default images are dealt round-robin over the levels, so level 0 holds about
    COUNT/DEPTH roots. With `roots`, level 0 holds exactly that many images and the others
    are dealt over the remaining levels (`roots=1`: every image descends from one root).
    Second parents are COPY'd from at `copy_path`, which must exist in the images.
    """
    rnd = random.Random(seed)
    levels: list[list[str]] = [[] for _ in range(depth)]
    names = []
    for index in range(count):
        name = f"{prefix}{index:05d}"
        levels[_level(index, depth, roots)].append(name)
        names.append(name)
    parents_of: dict[str, list[str]] = {}
    for level, members in enumerate(levels):
        for name in members:
            parents = [rnd.choice(levels[level - 1])] if level else []
            if level and rnd.random() < second_parent:
                other = rnd.choice(levels[rnd.randrange(level)])
                if other not in parents:
                    parents.append(other)
            parents_of[name] = parents
    for name in names:
        write_image(
            root, name, parents_of[name], run=run, test=test, base=base, copy_path=copy_path
        )
    return names


def _level(index: int, depth: int, roots: int | None) -> int:
    if roots is None or depth == 1:
        return index % depth
    if index < roots:
        return 0
    return 1 + (index - roots) % (depth - 1)


def generate_diamonds(
    root: Path,
    levels: int,
    *,
    run: str = "true",
    test: bool = False,
    base: str = "busybox",
    prefix: str = "dia",
    copy_path: str = "/etc/hostname",
) -> list[str]:
    """One root, then LEVELS levels of two images that both depend on both images above.

    Every image is reachable from the root along 2**level paths: a walk that does not
    remember what it has seen takes exponential time. Returns the names, root first.
    """
    top = f"{prefix}-root"
    options: dict[str, Any] = {"run": run, "test": test, "base": base, "copy_path": copy_path}
    write_image(root, top, [], **options)
    names, above = [top], [top]
    for level in range(1, levels + 1):
        pair = [f"{prefix}{level:03d}a", f"{prefix}{level:03d}b"]
        for name in pair:
            write_image(root, name, above, **options)
        names += pair
        above = pair
    return names


def write_image(
    root: Path,
    name: str,
    parents: list[str],
    *,
    run: str = "true",
    test: bool = False,
    base: str = "busybox",
    copy_path: str = "/etc/hostname",
) -> None:
    """One image folder: changelog, Dockerfile.template FROM the first parent (or BASE),
    a COPY --from each other parent, a control file naming the parents, and maybe test.sh."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "changelog").write_text(CHANGELOG.format(name=name, version="1.0-1"))
    first = parents[0] if parents else base
    copy = "".join(
        f'COPY --from={{{{ "{p}" | image_tag }}}} {copy_path} /tmp/{p}\n' for p in parents[1:]
    )
    (folder / "Dockerfile.template").write_text(
        TEMPLATE.format(parent=first, copy=copy, run=run.replace("NAME", name))
    )
    if parents:
        (folder / "control").write_text(
            f"Package: {name}\nDescription: synthetic\nDepends: {', '.join(parents)}\n"
        )
    if test:
        (folder / "test.sh").write_text(TEST_SCRIPT)
        (folder / "test.sh").chmod(0o755)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--second-parent", type=float, default=0.2)
    parser.add_argument("--prefix", default="img")
    parser.add_argument("--roots", type=int, default=None, help="images at level 0")
    parser.add_argument("--base", default="busybox", help="what root images are built FROM")
    parser.add_argument("--work", action="store_true", help="give each image a ~0.55 s RUN")
    parser.add_argument("--test", action="store_true", help="give each image a test.sh")
    parser.add_argument("--diamonds", type=int, default=None, help="stacked diamonds instead")
    parser.add_argument("--copy-path", default="/etc/hostname", help="COPY'd from 2nd parents")
    args = parser.parse_args()
    run = RUN_WORK if args.work else "true"
    if args.diamonds is not None:
        generate_diamonds(
            args.root,
            args.diamonds,
            run=run,
            test=args.test,
            base=args.base,
            copy_path=args.copy_path,
        )
        return
    generate(
        args.root,
        args.count,
        args.depth,
        second_parent=args.second_parent,
        run=run,
        test=args.test,
        base=args.base,
        prefix=args.prefix,
        roots=args.roots,
        copy_path=args.copy_path,
    )


if __name__ == "__main__":
    main()
