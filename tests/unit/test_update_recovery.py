"""`update --all` killed (SIGKILL) at random points of its write, again and again: no changelog
is ever corrupt, every command says what was left, no build context ever holds a staged file,
and `update --resume` / `update --discard` leave the tree all updated or not at all."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from dockerpkg import api
from dockerpkg.api import versioning
from dockerpkg.core.changelog import head_of
from dockerpkg.core.plan import Plan
from dockerpkg.effects import changelogs
from dockerpkg.effects.buildcontext import build_context as _context
from dockerpkg.effects.changelogs import JOURNAL_NAME, TEMP_NAME
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.errors import DockerPkgError
from tests.support.killed import dockerpkg, start_writing
from tests.support.updates import write_tree

IMAGES = 300
KILLS = 10


def versions(tree: Path) -> dict[str, str]:
    """Each image's version; asserts every changelog is whole (parses, one head)."""
    found = {}
    for changelog in sorted(tree.glob("*/changelog")):
        head = head_of(changelog.read_text(encoding="utf-8"))
        assert head is not None, f"{changelog} is corrupt"
        found[head[0]] = head[1]
    assert len(found) == IMAGES
    return found


def working_files(tree: Path) -> list[Path]:
    return [*tree.glob(f"*/{TEMP_NAME}"), *tree.glob(JOURNAL_NAME)]


def start_update(work: Path) -> tuple[subprocess.Popen[bytes], float]:
    """`update --all`, started; returns once its journal is there (or it ended), with when."""
    return start_writing(("update", "--all", "images"), work, work / "images" / JOURNAL_NAME)


def write_window(work: Path) -> float:
    """Seconds from the journal's appearance to the end of an update left alone."""
    process, began = start_update(work)
    assert process.wait(timeout=60) == 0
    return time.monotonic() - began


def killed_update(work: Path, pause: float) -> None:
    """Start `update --all` and SIGKILL it PAUSE seconds after its journal appears."""
    process, _ = start_update(work)
    time.sleep(pause)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def bumped(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name, version in after.items() if version != before[name]}


@pytest.mark.parametrize("seed", [20261203])
def test_killed_updates_are_always_recoverable(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    write_tree(tmp_path, {f"img{n:03d}": ("1.0", []) for n in range(IMAGES)})
    tree = tmp_path / "images"
    # Kills land within the write, however fast this machine writes.
    window = write_window(tmp_path)
    left_behind = 0
    for kill in range(KILLS):
        before = versions(tree)
        killed_update(tmp_path, rng.uniform(0, 0.8 * window))
        after = versions(tree)  # every changelog whole, bumped or not
        leftovers = working_files(tree)
        if not leftovers:
            # Killed once it was done (or before it wrote anything): all or none.
            assert bumped(before, after) in (set(), set(before)), kill
            continue
        left_behind += 1
        # Every command says so, in one line.
        for argv in (("plan", "--offline", "images"), ("lint", "images")):
            said = dockerpkg(*argv, cwd=tmp_path)
            lines = [
                line
                for line in (said.stdout + said.stderr).splitlines()
                if "interrupted update" in line
            ]
            assert len(lines) == 1, (argv, said.stdout, said.stderr)
        # A new update refuses and lists every file left.
        refused = dockerpkg("update", "--all", "images", cwd=tmp_path)
        assert refused.returncode == 1
        staged = [p for p in leftovers if p.name == TEMP_NAME]
        assert refused.stderr.count("staged by the interrupted update") == len(staged)
        # No build context holds a staged file (nor does the tree's snapshot).
        if staged:
            folder = staged[0].parent
            with _context(
                tree, folder.name, folder.name, LinkPolicy.for_tree(str(tree))
            ) as context:
                assert not list(context.rglob(TEMP_NAME))
                assert (context / "changelog").exists()
        resume = kill % 2 == 0
        recovered = dockerpkg(
            "update", "--resume" if resume else "--discard", "images", cwd=tmp_path
        )
        assert recovered.returncode == 0, recovered.stderr
        final = versions(tree)
        assert bumped(before, final) == (set(before) if resume else set()), (kill, resume)
        assert working_files(tree) == []
    # The loop is worth something only if it left work half done now and then.
    assert left_behind >= KILLS // 2


def small_update(tmp_path: Path) -> tuple[Path, api.Workspace, Plan]:
    root = write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])})
    workspace = api.load_workspace(str(root / "images"), str(root / "config.yaml"), {})
    request = versioning.UpdateRequest(reason="Rebuild", name="base")
    when = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
    env = {"DEBFULLNAME": "Recovery Tester", "DEBEMAIL": "recovery@example.org"}
    return root, workspace, versioning.update_plan(workspace, request, env, when)


def test_a_signal_after_the_last_rename_leaves_no_journal(tmp_path: Path) -> None:
    """A Ctrl-C held back during the swap arrives once every changelog is written: the
    update is complete, so its journal goes (the next update must not refuse)."""
    root, workspace, plan = small_update(tmp_path)
    originals = {s.file("changelog"): s.changelog for s in workspace.snapshot.images}
    renamed: list[str] = []

    def replace_then_interrupt(source: str, target: str) -> None:
        os.replace(source, target)
        renamed.append(target)
        if len(renamed) == len(plan.edits):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        changelogs.apply_edits(
            workspace.directory, plan.edits, originals, replace=replace_then_interrupt
        )
    tree = root / "images"
    assert working_files(tree) == []
    assert all((tree / e.path).read_text(encoding="utf-8").startswith(e.entry) for e in plan.edits)


def test_a_journal_naming_a_file_outside_the_tree_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"base": ("1.0", [])})
    outside = tmp_path / "changelog"
    outside.write_text("keep me\n", encoding="utf-8")
    journal = {
        "format": 1,
        "changelogs": [{"path": "../changelog", "entry": "x", "before": "a", "after": "b"}],
    }
    (root / "images" / JOURNAL_NAME).write_text(json.dumps(journal), encoding="utf-8")
    done = dockerpkg("-c", "config.yaml", "update", "--resume", "images", cwd=root)
    assert done.returncode == 1, done.stderr
    assert "'../changelog' is not a changelog in the tree" in done.stderr
    assert "Traceback" not in done.stderr
    assert outside.read_text(encoding="utf-8") == "keep me\n"


def test_a_journal_naming_a_changelog_behind_a_link_out_of_the_tree_is_refused(
    tmp_path: Path,
) -> None:
    """`evil/changelog` reads as a changelog in the tree, but `evil` is a link committed into
    the tree that leads out of it: recovery must not write there."""
    root = write_tree(tmp_path, {"base": ("1.0", [])})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "changelog").write_text("keep me\n", encoding="utf-8")
    (root / "images" / "evil").symlink_to(outside)
    before = (outside / "changelog").read_bytes()
    entry = (
        "victim (2.0) wikimedia; urgency=medium\n\n  * x\n\n"
        " -- X <x@y>  Mon, 02 Mar 2026 10:00:00 +0000\n\n"
    )

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    journal = {
        "format": 1,
        "changelogs": [
            {
                "path": "evil/changelog",
                "entry": entry,
                "before": digest(before),
                "after": digest(entry.encode() + before),
            }
        ],
    }
    (root / "images" / JOURNAL_NAME).write_text(json.dumps(journal), encoding="utf-8")
    done = dockerpkg("-c", "config.yaml", "update", "--resume", "images", cwd=root)
    assert done.returncode == 1, done.stderr
    assert "'evil/changelog' is not a changelog in the tree" in done.stderr
    assert "Traceback" not in done.stderr
    assert (outside / "changelog").read_bytes() == before


def test_builds_and_prunes_refuse_while_an_update_is_half_done(tmp_path: Path) -> None:
    """A build would publish half of the update, a prune choose by half of it."""
    root = write_tree(tmp_path, {"base": ("1.0", [])})
    (root / "images" / "base" / TEMP_NAME).write_text("staged\n", encoding="utf-8")
    workspace = api.load_workspace(str(root / "images"), str(root / "config.yaml"), {})
    plan = api.build_plan(workspace)
    run_dir = tmp_path / "run"
    with pytest.raises(DockerPkgError) as built:
        api.apply_build_plan(plan, workspace, {}, None, run_dir=run_dir, listener=cast("Any", None))
    assert "staged by the interrupted update" in str(built.value)
    assert not run_dir.exists()
    with pytest.raises(DockerPkgError) as pruned:
        versioning.prune_plan(workspace, cast("Any", None), select=None, nightly=None)
    assert "update --discard" in str(pruned.value)
