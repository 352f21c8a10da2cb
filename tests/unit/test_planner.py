"""The build planner with observed-state values: docker-pkg's rules, reasons, golden plans."""

from __future__ import annotations

import attrs
import pytest

from dockerpkg.core.plan import BuildOptions, Op, Plan, Reason
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.core.versions import tag_of_version
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


EVERY = frozenset({NATIVE, SECURITY, DATED, DEBIAN_REV, LEAF})


def latest_of(label: str) -> str:
    return label.rpartition(":")[0] + ":latest"


def digests(**moved: str | None) -> dict[str, str]:
    """Every published label at digest d-LABEL and its latest there too, except MOVED (image
    name -> where its latest is, None: not set)."""
    found = {label: f"d-{label}" for label in EVERY}
    for label in EVERY:
        name = label[len(R) :].partition(":")[0].replace("-", "_")
        where = moved.get(name, f"d-{label}")
        if where is not None:
            found[latest_of(label)] = where
    return found


class TestLatest:
    """`latest` is checked with the version: moved when missing or on another image, unless
    the registry holds a newer version (someone else moved it)."""

    def test_latest_on_every_version_is_nothing_to_do(self, tree: Tree) -> None:
        observed = Observed(offline=False, published=EVERY, credentials=True, digests=digests())
        assert make(tree, observed).steps == ()

    def test_missing_or_on_an_older_version_gets_a_tag_latest_step(self, tree: Tree) -> None:
        found = digests(leaf=None, security="d-old", native="d-old-native")
        found[R + "security:0.4.1-s1"] = "d-old"
        found[R + "native:0.4.0"] = found[R + "native:0.4.0-20260101"] = "d-old-native"
        observed = Observed(
            offline=False,
            published=EVERY,
            credentials=True,
            digests=found,
            tags={
                R + "security": ("0.4.1-s1", "0.4.1-s2", "latest"),
                R + "native": ("0.4.0", "0.4.0-20260101", "0.4.1", "latest"),
            },
        )
        # Without --nightly, 0.4.0-20260101 is no version of native's changelog: left alone.
        plan = make(tree, observed)
        assert [(s.op, s.image, s.reason, s.label, s.detail) for s in plan.steps] == [
            (Op.TAG_LATEST, "security", Reason.LATEST_NOT_CURRENT, SECURITY, "latest on 0.4.1-s1"),
            (Op.TAG_LATEST, "leaf", Reason.LATEST_NOT_CURRENT, LEAF, "latest not set"),
        ]
        assert plan.notes == (
            f"{R}native:latest is on 0.4.0, 0.4.0-20260101, not on a version in "
            "native/changelog: left alone, as this tree did not set it",
        )
        assert plan.has_changes
        assert plan_to_text(plan).splitlines()[-1] == "Plan: 2 latest to move."
        assert plan_from_json(plan_to_json(plan), "p.json") == plan

    def test_an_earlier_nightly_counts_as_this_trees(self) -> None:
        assert tag_of_version("0.4.0-20260101", "0.4.0", "-20261203")
        assert tag_of_version("0.4.0", "0.4.0", "-20261203")
        assert not tag_of_version("0.4.0-2", "0.4.0", "-20261203")
        assert not tag_of_version("0.4.0-20260101", "0.4.0", "")

    def test_latest_elsewhere_is_left_alone(self, tree: Tree) -> None:
        # Dated rebuilds sort above the next revision in Debian's order (1.21-1-20260816 >
        # 1.21-2), so what counts is whether this changelog names the tag, not the order.
        found = digests(dated="d-other")
        found[R + "dated:1.21-2"] = "d-other"
        observed = Observed(
            offline=False,
            published=EVERY,
            credentials=True,
            digests=found,
            tags={R + "dated": ("1.21-1-20260816", "1.21-2", "latest")},
        )
        plan = make(tree, observed)
        assert plan.steps == ()
        assert plan.notes == (
            f"{R}dated:latest is on 1.21-2, not on a version in dated/changelog: left alone, "
            "as this tree did not set it",
        )
        unnamed = attrs.evolve(observed, tags={R + "dated": ("1.21-1-20260816", "latest")})
        assert make(tree, unnamed).notes == (
            f"{R}dated:latest is on an image no other tag names, not on a version in "
            "dated/changelog: left alone, as this tree did not set it",
        )

    def test_not_without_credentials_nor_when_not_selected(self, tree: Tree) -> None:
        moved = digests(leaf=None)
        without = Observed(offline=False, published=EVERY, digests=moved)
        assert not any(s.op is Op.TAG_LATEST for s in make(tree, without).steps)
        observed = Observed(offline=False, published=EVERY, credentials=True, digests=moved)
        assert make(tree, observed, select="*native*").steps == ()

    def test_an_image_to_build_gets_latest_from_its_publish(self, tree: Tree) -> None:
        observed = Observed(
            offline=False,
            published=EVERY - {LEAF},
            credentials=True,
            digests={k: v for k, v in digests(leaf=None).items() if k != LEAF},
        )
        assert [s.op for s in make(tree, observed).steps if s.image == "leaf"] == [
            Op.BUILD,
            Op.VERIFY,
            Op.PUBLISH,
        ]


class TestSerialization:
    """The JSON view round-trips and matches its golden file."""

    def test_round_trip(self, tree: Tree) -> None:
        observed = Observed(offline=False, local=frozenset({DEBIAN_REV}), credentials=True)
        plan = make(tree, observed, select="*", use_cache=True)
        text = plan_to_json(plan)
        check_golden("plans/planner-local.json", text)
        assert plan_from_json(text, "p.json") == plan


class TestRecheck:
    """A saved plan against what was published since: those images' steps go, and the images
    built from them pull them."""

    def plan(self, tree: Tree, **options: object) -> Plan:
        observed = Observed(
            offline=False,
            published=frozenset({NATIVE}),
            local=frozenset({DEBIAN_REV}),
            credentials=True,
        )
        return make(tree, observed, **options)

    def test_nothing_published_since_leaves_the_plan(self, tree: Tree) -> None:
        plan = self.plan(tree)
        assert publishing_labels(plan) == (DEBIAN_REV, SECURITY, DATED, LEAF)
        assert without_published(plan, frozenset({NATIVE})) == (plan, ())

    def test_published_parent_is_pulled_for_its_child(self, tree: Tree) -> None:
        plan = self.plan(tree)
        assert ("build", "security", "not_in_registry") in ops(plan)
        rechecked, labels = without_published(plan, frozenset({SECURITY, DEBIAN_REV}))
        assert labels == (DEBIAN_REV, SECURITY)
        # native was pulled for security's build only; leaf needs debian-rev, dated security.
        assert ops(rechecked) == [
            ("pull", "debian-rev", "published_dependency"),
            ("pull", "security", "published_dependency"),
            ("build", "dated", "not_in_registry"),
            ("verify", "dated", "built_in_this_run"),
            ("publish", "dated", "built_in_this_run"),
            ("build", "leaf", "not_in_registry"),
            ("verify", "leaf", "built_in_this_run"),
            ("publish", "leaf", "built_in_this_run"),
        ]
        assert rechecked.notes[-2:] == (
            f"published since the plan was made: {DEBIAN_REV} (not built or pushed)",
            f"published since the plan was made: {SECURITY} (not built or pushed)",
        )
        assert rechecked.digest == plan.digest

    def test_all_published_since_leaves_nothing_to_do(self, tree: Tree) -> None:
        plan = self.plan(tree)
        rechecked, labels = without_published(plan, frozenset(publishing_labels(plan)))
        assert rechecked.steps == ()
        assert len(labels) == 4

    def test_no_pull_plans_take_parents_from_the_daemon(self, tree: Tree) -> None:
        observed = Observed(offline=False, local=frozenset({NATIVE}), credentials=True)
        plan = make(tree, observed, pull=False)
        rechecked, _ = without_published(plan, frozenset({SECURITY}))
        assert not any(s.op is Op.PULL for s in rechecked.steps)
        assert "security" not in {s.image for s in rechecked.steps}
