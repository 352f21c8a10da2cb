"""Step dependencies are the plan's, worked out once in the core: what each step waits for."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from dockerpkg.core.config import load_config
from dockerpkg.core.plan import BuildOptions, Op, Plan, PublishMode
from dockerpkg.core.planjson import MAX_PLAN_BYTES
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import without_published
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config

CASE = COMPAT / "11-versions"
R = "registry.example.org/"
ROOT = Path(__file__).resolve().parents[2]
MAKING = {Op.BUILD_STAGE, Op.BUILD, Op.VERIFY, Op.STAGE, Op.PUBLISH}


def gentree() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gentree", ROOT / "bench" / "gentree.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE))


def make(tree: Tree, observed: Observed) -> Plan:
    return plan_build(
        tree,
        case_config(CASE),
        observed,
        directory="images",
        digest="sha256:test",
        options=BuildOptions(),
    )


def needs(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {str(step.key): tuple(str(k) for k in step.needs) for step in plan.steps}


def test_each_step_waits_for_what_it_is_built_on(tree: Tree) -> None:
    plan = make(
        tree, Observed(offline=False, published=frozenset({R + "native:0.4.1"}), credentials=True)
    )
    found = needs(plan)
    # Pulls wait for nothing; a build for the pulls of its parents and their verification.
    assert found["pull:native"] == ()
    assert found["build:security"] == ("pull:native",)
    assert found["build:dated"] == ("verify:security",)
    assert found["build:leaf"] == ("verify:dated", "verify:debian-rev")
    assert found["verify:leaf"] == ("build:leaf",)
    # A publication waits for its verification and for its parents' publications.
    assert found["publish:leaf"] == ("verify:leaf", "publish:dated", "publish:debian-rev")
    assert found["publish:security"] == ("verify:security",)
    # Every need is a step of the plan, earlier in it.
    order = [str(step.key) for step in plan.steps]
    for key, waits in found.items():
        assert all(order.index(w) < order.index(key) for w in waits), key


def test_needs_survive_json_and_show_in_text(tree: Tree) -> None:
    plan = make(tree, Observed(offline=False, credentials=True))
    assert plan_from_json(plan_to_json(plan), "p.json") == plan
    text = plan_to_text(plan, needs=True).splitlines()
    at = text.index(next(line for line in text if line.startswith("build ") and " leaf " in line))
    assert text[at + 1] == "  needs: verify:dated, verify:debian-rev"
    assert "needs:" not in plan_to_text(plan)


def test_a_recheck_works_them_out_again(tree: Tree) -> None:
    plan = make(tree, Observed(offline=False, credentials=True))
    rechecked, _ = without_published(plan, frozenset({R + "dated:1.21-1-20260816"}))
    found = needs(rechecked)
    assert "verify:dated" not in found
    assert found["build:leaf"] == ("pull:dated", "verify:debian-rev")
    assert found["publish:leaf"] == ("verify:leaf", "publish:debian-rev")


def independent(tmp_path: Path, count: int) -> Plan:
    """The all_or_nothing plan of COUNT generated images on one base, none a parent."""
    folder = tmp_path / str(count)
    gentree().generate(folder, count, 1)
    config = load_config(
        [("c.yaml", "registry: reg.example\nusername: u\npassword: p\nbase_images:\n  - busybox\n")]
    )
    return plan_build(
        load_tree(read_snapshot(folder), config),
        config,
        Observed(offline=True, credentials=True),
        directory="tree",
        digest="sha256:x",
        options=BuildOptions(publish=PublishMode.ALL_OR_NOTHING),
    )


def test_promotions_wait_through_one_barrier_so_needs_stay_linear(tmp_path: Path) -> None:
    # Every promotion waiting for every step that makes an image made plans quadratic:
    # 1,922,400 needs and 53 MB of JSON at 800 images, over the plan-file limit.
    plans = {count: independent(tmp_path, count) for count in (100, 800)}
    total = {count: sum(len(step.needs) for step in plan.steps) for count, plan in plans.items()}
    for count, plan in plans.items():
        promotions = [step for step in plan.steps if step.op is Op.PROMOTE]
        making = [step.key for step in plan.steps if step.op in MAKING]
        assert len(promotions) == count
        assert promotions[0].needs == tuple(making)
        assert all(step.needs == (promotions[0].key,) for step in promotions[1:])
        # Linear: the making steps' own needs, the barrier's, one per later promotion.
        own = sum(len(step.needs) for step in plan.steps if step.op is not Op.PROMOTE)
        assert total[count] == own + len(making) + count - 1
    assert total[800] < 9 * total[100]
    assert len(plan_to_json(plans[800]).encode()) < MAX_PLAN_BYTES / 10
