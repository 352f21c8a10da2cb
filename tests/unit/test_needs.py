"""Step dependencies are the plan's, worked out once in the core: what each step waits for."""

from __future__ import annotations

import pytest

from dockerpkg.core.plan import BuildOptions, Plan
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import without_published
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config

CASE = COMPAT / "11-versions"
R = "registry.example.org/"


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
    return {step.key: step.needs for step in plan.steps}


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
    order = [step.key for step in plan.steps]
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
