"""The build planner with observed-state values: docker-pkg's rules, reasons, golden plans."""

from __future__ import annotations

import pytest

from dockerpkg.core.plan import BuildOptions, Op, Plan, Reason
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config
from tests.support.golden import check_golden

CASE = COMPAT / "11-versions"
R = "registry.example.org/"
NATIVE, SECURITY, DATED = R + "native:0.4.1", R + "security:0.4.1-s2", R + "dated:1.21-1-20260816"
DEBIAN_REV, LEAF = R + "debian-rev:2.0.3-1", R + "leaf:5"


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE))


def make(tree: Tree, observed: Observed, **options: object) -> Plan:
    return plan_build(
        tree,
        case_config(CASE),
        observed,
        directory="images",
        digest="sha256:test",
        options=BuildOptions(**options),  # type: ignore[arg-type]
    )


def ops(plan: Plan) -> list[tuple[str, str, str]]:
    return [(s.op.value, s.image, s.reason.value) for s in plan.steps]


class TestRules:
    """Published -> nothing; local only -> verify and publish; missing -> build it all."""

    def test_everything_published(self, tree: Tree) -> None:
        every = frozenset({NATIVE, SECURITY, DATED, DEBIAN_REV, LEAF})
        plan = make(tree, Observed(offline=False, published=every, credentials=True))
        assert plan.steps == ()
        assert not plan.has_changes

    def test_mixed_state(self, tree: Tree) -> None:
        observed = Observed(
            offline=False,
            published=frozenset({NATIVE, SECURITY}),
            local=frozenset({DEBIAN_REV}),
            credentials=True,
        )
        plan = make(tree, observed)
        check_golden("plans/planner-mixed.txt", plan_to_text(plan))
        assert ops(plan) == [
            ("pull", "security", "published_dependency"),
            ("verify", "debian-rev", "built_locally_not_published"),
            ("publish", "debian-rev", "built_locally_not_published"),
            ("build", "dated", "not_in_registry"),
            ("verify", "dated", "built_in_this_run"),
            ("publish", "dated", "built_in_this_run"),
            ("build", "leaf", "not_in_registry"),
            ("verify", "leaf", "built_in_this_run"),
            ("publish", "leaf", "built_in_this_run"),
        ]

    def test_no_pull_asks_the_daemon_first(self, tree: Tree) -> None:
        every = frozenset({NATIVE, SECURITY, DATED, DEBIAN_REV, LEAF})
        observed = Observed(offline=False, published=every, local=frozenset({NATIVE}))
        plan = make(tree, observed, pull=False)
        builds = [s.image for s in plan.steps if s.op is Op.BUILD]
        assert builds == ["debian-rev", "security", "dated", "leaf"]
        assert {s.reason for s in plan.steps if s.op is Op.BUILD} == {Reason.NOT_BUILT_LOCALLY}
        assert not any(s.op is Op.PULL for s in plan.steps)

    def test_without_credentials_nothing_is_published(self, tree: Tree) -> None:
        plan = make(tree, Observed(offline=False, local=frozenset({NATIVE})))
        assert not any(s.op is Op.PUBLISH for s in plan.steps)
        assert any("publishing is off" in note for note in plan.notes)

    def test_select_takes_only_unbuilt_parents(self, tree: Tree) -> None:
        observed = Observed(offline=False, published=frozenset({NATIVE}), credentials=True)
        plan = make(tree, observed, select="*leaf*")
        assert [s.image for s in plan.steps if s.op is Op.BUILD] == [
            "debian-rev",
            "security",
            "dated",
            "leaf",
        ]
        assert ("pull", "native", "published_dependency") in ops(plan)


class TestSerialization:
    """The JSON view round-trips and matches its golden file."""

    def test_round_trip(self, tree: Tree) -> None:
        observed = Observed(offline=False, local=frozenset({DEBIAN_REV}), credentials=True)
        plan = make(tree, observed, select="*", use_cache=True)
        text = plan_to_json(plan)
        check_golden("plans/planner-local.json", text)
        assert plan_from_json(text, "p.json") == plan
