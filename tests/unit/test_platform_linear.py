"""Planning a tree with platforms stays linear in its size (see test_linear_planning)."""

from __future__ import annotations

import attrs
import pytest

from dockerpkg.core.plan import Op
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import load_tree
from tests.unit.test_linear_planning import CONFIG, LARGE, MOST, SMALL, core_lines, generated

PLATFORMS = attrs.evolve(CONFIG, platforms=("linux/amd64", "linux/arm64"))


def plan_everything(snapshot: Snapshot) -> None:
    tree = load_tree(snapshot, PLATFORMS)
    observed = Observed(offline=True, credentials=True)
    plan = plan_build(tree, PLATFORMS, observed, directory="tree", digest="sha256:x")
    assert plan.count(Op.INDEX) == len(tree.images)
    plan_to_json(plan)
    labels = publishing_labels(plan)
    without_published(plan, frozenset(labels[::2]))


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Snapshot]:
    return generated(tmp_path_factory)


def test_planning_with_platforms_is_linear(snapshots: dict[int, Snapshot]) -> None:
    small = core_lines(lambda: plan_everything(snapshots[SMALL]))
    large = core_lines(lambda: plan_everything(snapshots[LARGE]))
    assert small > 20 * SMALL
    assert large / small < MOST, f"{SMALL} images: {small} lines; {LARGE} images: {large} lines"
