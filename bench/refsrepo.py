"""A generated repository for the refs benchmark: many small text files, some of them naming
images of a tree (half at their current version, half at an older one), committed to git so
that `git grep` searches the same files `dockerpkg refs` reads."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

FOLDERS = 200
FILLER = "\n".join(f"  key{n}: value number {n} of this generated job file" for n in range(20))


def generate_repo(
    folder: Path, prefix: str, images: Sequence[tuple[str, str]], files: int, with_refs: int
) -> int:
    """FILES files under FOLDER, WITH_REFS of them holding two references to IMAGES ((name,
    current version)): one current, one at version 0.9. Returns the references written."""
    rng = random.Random(20261204)  # the same repository every run
    chosen = set(rng.sample(range(files), with_refs))
    written = 0
    for index in range(files):
        path = folder / f"dir{index % FOLDERS:03d}" / f"job{index:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f"job{index}:\n{FILLER}\n"
        if index in chosen:
            name, version = images[rng.randrange(len(images))]
            body += f"  image: {prefix}/{name}:{version}\n  old: {prefix}/{name}:0.9\n"
            written += 2
        path.write_text(body, encoding="utf-8")
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
    env["PATH"] = "/usr/bin:/bin"
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True)
    return written
