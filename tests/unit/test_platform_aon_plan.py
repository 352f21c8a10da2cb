"""Build plans of a tree with platforms published all or nothing, from observed-state values:
platform images staged, one promotion per index image after the barrier (no index step),
the index's children named by their staging references, and what a rerun after a kill
does (golden text and JSON)."""

from __future__ import annotations

import attrs
import pytest

from dockerpkg.core.builders import DEFAULT_BUILDERS, Builder, BuilderSet
from dockerpkg.core.plan import Op, Plan, PublishMode
from dockerpkg.core.planmatch import build_differences, claimed_observed
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import without_published
from dockerpkg.core.serialize import plan_from_json, plan_to_json
from dockerpkg.core.staging import Staged
from dockerpkg.errors import DockerPkgError
from tests.unit.test_platform_plan import (
    AMD64,
    ARM64,
    ARM64_MISSING,
    CHILD,
    COMPLETE,
    CONFIG,
    ONLINE,
    PARENT,
    R,
    digest,
    needs,
    ops,
    tree_of,
)
from tests.unit.test_platform_plan import (
    make as plan_of,
)
from tests.unit.test_platform_plan import views as plan_views

STAGING = f"{R}/dockerpkg-staging"
PROMOTED = [("promote", "parent", "all_published"), ("promote", "child", "all_published")]


def make(observed: Observed, builders: BuilderSet = DEFAULT_BUILDERS, **options: object) -> Plan:
    options = {"publish": PublishMode.ALL_OR_NOTHING, **options}
    return plan_of(observed, chosen=builders, **options)  # type: ignore[arg-type]


def views(plan: Plan, name: str) -> None:
    plan_views(plan, f"aon-{name}")


class TestFresh:
    def test_platform_images_staged_and_indexes_promoted(self) -> None:
        plan = make(ONLINE)
        views(plan, "fresh")
        assert [s for s in ops(plan) if s[0] not in ("pull", "build", "verify")] == [
            ("stage", "parent:amd64", "built_in_this_run"),
            ("stage", "parent:arm64", "built_in_this_run"),
            ("stage", "child:amd64", "built_in_this_run"),
            ("stage", "child:arm64", "built_in_this_run"),
            *PROMOTED,
        ]
        staged = {s.image: s.label for s in plan.steps if s.op is Op.STAGE}
        assert staged["child:arm64"] == f"{STAGING}/child:2.0-arm64"
        assert not [s for s in plan.steps if s.op in (Op.INDEX, Op.PUBLISH, Op.TAG_LATEST)]

    def test_children_name_the_staging_references(self) -> None:
        plan = make(ONLINE)
        assert dict(plan.image("child").children) == {
            AMD64: f"{STAGING}/child:2.0-amd64",
            ARM64: f"{STAGING}/child:2.0-arm64",
        }
        promote = next(s for s in plan.steps if s.op is Op.PROMOTE and s.image == "child")
        assert (promote.label, promote.detail) == (CHILD, None)

    def test_the_barrier_waits_for_every_platform_and_the_child_for_its_parent(self) -> None:
        plan = make(ONLINE)
        found = needs(plan)
        making = [str(s.key) for s in plan.steps if s.op in (Op.BUILD, Op.VERIFY, Op.STAGE)]
        assert sorted(found["promote:parent"]) == sorted(making)
        assert found["promote:child"] == ("promote:parent",)
        assert found["stage:child:arm64"] == ("verify:child:arm64", "stage:parent:arm64")


class TestAPlatformMissing:
    def test_the_listed_platform_by_digest_the_other_staged(self) -> None:
        plan = make(ARM64_MISSING)
        views(plan, "arm64-missing")
        assert ops(plan) == [
            ("pull", "parent:arm64", "published_dependency"),
            ("build", "child:arm64", "not_in_registry"),
            ("verify", "child:arm64", "built_in_this_run"),
            ("stage", "child:arm64", "built_in_this_run"),
            ("promote", "child", "all_published"),
        ]
        assert dict(plan.image("child").children) == {
            AMD64: f"{R}/child@{digest(3)}",
            ARM64: f"{STAGING}/child:2.0-arm64",
        }

    def test_a_saved_plan_keeps_the_promotion_of_an_incomplete_index(self) -> None:
        # The child's version tag exists (an amd64-only index): its promotion must stay.
        plan, gone = without_published(make(ARM64_MISSING), frozenset({CHILD, PARENT}))
        assert gone == ()
        assert [str(s.key) for s in plan.steps][-1] == "promote:child"

    def test_complete_indexes_need_nothing(self) -> None:
        assert make(COMPLETE).steps == ()


class TestRerunAfterAKill:
    def test_staged_platform_images_are_built_again(self) -> None:
        # A killed run staged every platform image: the next plan does not reuse them
        # (docs/platforms.md, "All or nothing"), even with the tree's identity recorded.
        fresh = make(ONLINE)
        staged = {
            image.label: Staged(image.definition or "", digest(9))
            for image in fresh.images
            if image.platform is not None
        }
        assert len(staged) == 4
        again = make(attrs.evolve(ONLINE, staged=staged))
        assert ops(again) == ops(fresh)
        assert again.steps == fresh.steps


class TestSavedPlans:
    @pytest.mark.parametrize("observed", [ONLINE, ARM64_MISSING], ids=["fresh", "missing"])
    def test_a_saved_plan_is_derived_again(self, observed: Observed) -> None:
        tree = tree_of()
        saved = plan_from_json(plan_to_json(make(observed)), "plan.json")
        derived = plan_build(
            tree,
            CONFIG,
            claimed_observed(saved, tree),
            directory="images",
            digest="sha256:test",
            options=saved.options,
        )
        assert build_differences(saved, derived) == ()


class TestRefusals:
    def test_several_builders(self) -> None:
        builders = BuilderSet(
            (
                Builder("unix:///a.sock", platforms=(AMD64,)),
                Builder("ssh://arm", platforms=(ARM64,)),
            )
        )
        with pytest.raises(DockerPkgError, match="all_or_nothing with platforms needs one builder"):
            make(ONLINE, builders)

    def test_per_image_is_unchanged(self) -> None:
        plan = make(ONLINE, publish=PublishMode.PER_IMAGE)
        assert [s.op for s in plan.steps].count(Op.INDEX) == 2
