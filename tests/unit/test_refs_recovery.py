"""`update --all --refs` killed (SIGKILL) at random points of its write, again and again: no
file is ever half-written, other verbs say how to finish it, and the next `refs` run
finishes it: every changelog updated and every user moved to the new versions, or none."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dockerpkg.core.changelog import head_of
from dockerpkg.effects.workfiles import REFS_JOURNAL
from tests.support.killed import dockerpkg, start_writing
from tests.support.updates import write_tree

IMAGES = 120
KILLS = 6
CONFIG = "registry: registry.example.org\nnamespace: team\nrefs:\n  paths: [uses]\n"
USE = re.compile(r"registry\.example\.org/team/(img\d+):(\S+)\n")


def state(work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Each image's version and the version its user names; asserts every file is whole."""
    versions = {}
    for changelog in sorted((work / "images").glob("*/changelog")):
        head = head_of(changelog.read_text(encoding="utf-8"))
        assert head is not None, f"{changelog} is corrupt"
        versions[head[0]] = head[1]
    used = {}
    for user in sorted((work / "uses").glob("img*.yml")):
        found = USE.fullmatch(user.read_text(encoding="utf-8"))
        assert found is not None, f"{user} is corrupt"
        used[found[1]] = found[2]
    assert len(versions) == len(used) == IMAGES
    return versions, used


def start(work: Path) -> tuple[subprocess.Popen[bytes], float]:
    """`update --all --refs`, started; returns once its journal is there (or it ended)."""
    return start_writing(
        ("update", "--all", "--refs", "images"), work, work / "images" / REFS_JOURNAL
    )


@pytest.mark.parametrize("seed", [20261207])
def test_killed_update_refs_is_finished_by_the_next_refs_run(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    names = [f"img{n:03d}" for n in range(IMAGES)]
    write_tree(tmp_path, dict.fromkeys(names, ("1.0", [])), CONFIG)
    (tmp_path / "uses").mkdir()
    for name in names:
        (tmp_path / "uses" / f"{name}.yml").write_text(
            f"registry.example.org/team/{name}:1.0\n", encoding="utf-8"
        )
    process, began = start(tmp_path)  # unkilled, to time the write
    assert process.wait(timeout=60) == 0
    window = time.monotonic() - began
    versions, used = state(tmp_path)
    assert used == versions
    left_behind = 0
    for kill in range(KILLS):
        before, _ = state(tmp_path)
        process, _ = start(tmp_path)
        time.sleep(rng.uniform(0, 0.6 * window))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        versions, used = state(tmp_path)  # every file whole, written or not
        if (tmp_path / "images" / REFS_JOURNAL).exists():
            left_behind += 1
            refused = dockerpkg("plan", "--offline", "images", cwd=tmp_path)
            assert refused.returncode == 1
            assert "`dockerpkg refs images` finishes it" in refused.stderr
            finished = dockerpkg("refs", "images", "uses", cwd=tmp_path)
            assert finished.returncode == 0, finished.stderr
            assert "an interrupted refs --apply was finished" in finished.stderr
            assert not (tmp_path / "images" / REFS_JOURNAL).exists()
            versions, used = state(tmp_path)
        # All or none: every image bumped and every user moved, or nothing changed.
        assert used == versions, kill
        assert all(versions[n] != before[n] for n in names) or versions == before, kill
        assert not list(tmp_path.rglob("*.dockerpkg-tmp")), kill
    assert left_behind >= KILLS // 3  # the loop is worth something only if it cut writes
