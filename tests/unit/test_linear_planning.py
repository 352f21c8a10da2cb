"""Planning stays linear in the size of the tree: the work the core does for a generated tree
of 4N images is about four times its work for N, never the sixteen of a scan of the whole plan
per image.

Work is counted, not timed, so a loaded machine cannot make the test flaky: every line of
dockerpkg's core run while planning (each turn of a loop or comprehension is one), through
Python's line tracing. The pipeline is `plan --offline --json`'s with credentials and
definition labels (so each build records its bases), and the recheck of a saved plan.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType, ModuleType
from typing import Any

import pytest

import dockerpkg.core
from dockerpkg.core.config import load_config
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import load_tree
from dockerpkg.effects.tree import read_snapshot

ROOT = Path(__file__).resolve().parents[2]
CORE = str(Path(dockerpkg.core.__file__).parent)
CONFIG = load_config(
    [("c.yaml", "registry: reg.example\nusername: u\npassword: p\nbase_images:\n  - busybox\n")]
)
SMALL, LARGE = 100, 400
# Linear work gives 4.0 for 4x the images; a scan of the plan per image gives far more
# (measured at 4de8ff4: 8.5 for the bases each build records, 6.2 for the labels the recheck
# of a saved plan asks about, 9.0 for both).
MOST = 5.0


def gentree() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gentree", ROOT / "bench" / "gentree.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan_everything(snapshot: Snapshot) -> None:
    """What `plan --offline --json` does in the core, then the recheck `apply` makes."""
    tree = load_tree(snapshot, CONFIG)
    observed = Observed(offline=True, credentials=True)
    plan = plan_build(tree, CONFIG, observed, directory="tree", digest="sha256:x")
    assert plan.publish
    assert all(i.records is not None for i in plan.images)
    plan_to_json(plan)
    labels = publishing_labels(plan)
    without_published(plan, frozenset(labels[::2]))


def core_lines(work: Callable[[], None]) -> int:
    """How many lines of dockerpkg.core WORK runs."""
    count = 0
    ours: dict[CodeType, bool] = {}

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code not in ours:
            ours[code] = code.co_filename.startswith(CORE)
        return line if ours[code] else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        work()
    finally:
        sys.settrace(previous)
    return count


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Snapshot]:
    return generated(tmp_path_factory)


def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Snapshot]:
    """Snapshots of the generated trees of SMALL and LARGE images."""
    generate = gentree().generate
    found = {}
    for count in (SMALL, LARGE):
        folder = tmp_path_factory.mktemp(f"tree{count}")
        generate(folder, count, 6, roots=1)
        found[count] = read_snapshot(folder)
    return found


def test_planning_is_linear_in_the_tree(snapshots: dict[int, Snapshot]) -> None:
    small = core_lines(lambda: plan_everything(snapshots[SMALL]))
    large = core_lines(lambda: plan_everything(snapshots[LARGE]))
    assert small > 10 * SMALL  # the counter saw the planning
    assert large / small < MOST, f"{SMALL} images: {small} lines; {LARGE} images: {large} lines"
