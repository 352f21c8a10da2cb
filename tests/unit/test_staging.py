"""All-or-nothing publishing planned: staging references, promotions, their order and needs,
images an earlier run staged (observed-state literals), and the run's last line."""

from __future__ import annotations

import pytest

from dockerpkg.core.changelog import versions_newest_first
from dockerpkg.core.definition import definitions
from dockerpkg.core.plan import BuildOptions, CacheMode, Op, Plan, PublishMode, Reason, Step
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.report import Outcome, Report, StepOutcome, publication_line
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.staging import staged_labels, staging_path
from dockerpkg.core.tree import Tree, load_tree, render_images
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config
from tests.support.golden import check_golden

CASE = COMPAT / "11-versions"
R = "registry.example.org/"
STAGED_NATIVE = R + "dockerpkg-staging/native:0.4.1"
ALL = BuildOptions(publish=PublishMode.ALL_OR_NOTHING)


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE))


def planned(tree: Tree, observed: Observed, options: BuildOptions = ALL) -> Plan:
    return plan_build(
        tree, case_config(CASE), observed, directory="images", digest="d", options=options
    )


def fresh() -> Observed:
    return Observed(offline=False, credentials=True)


class TestPlan:
    def test_every_image_is_staged_then_promoted_parents_first(self, tree: Tree) -> None:
        plan = planned(tree, fresh())
        publishes = [s for s in plan.steps if s.op is Op.PUBLISH]
        assert {s.label for s in publishes} >= {STAGED_NATIVE}
        assert all("/dockerpkg-staging/" in (s.label or "") for s in publishes)
        promotions = [s for s in plan.steps if s.op is Op.PROMOTE]
        assert [s.image for s in promotions] == [s.image for s in publishes]
        assert [s.image for s in promotions] == list(tree.order)
        making = {s.key for s in plan.steps if s.op in {Op.BUILD, Op.VERIFY, Op.PUBLISH}}
        for step in promotions:
            assert making <= set(step.needs), step.key
            parents = {f"promote:{p}" for p in tree.images[step.image].parents}
            assert parents <= set(step.needs)
        assert staged_labels(plan)[R + "native:0.4.1"] == STAGED_NATIVE
        assert any("all_or_nothing" in note for note in plan.notes)

    def test_per_image_is_unchanged(self, tree: Tree) -> None:
        plan = planned(tree, fresh(), BuildOptions())
        assert not any(s.op is Op.PROMOTE for s in plan.steps)
        assert all("/dockerpkg-staging/" not in (s.label or "") for s in plan.steps)

    def test_no_credentials_no_staging(self, tree: Tree) -> None:
        plan = planned(tree, Observed(offline=False))
        assert not any(s.op in {Op.PUBLISH, Op.PROMOTE} for s in plan.steps)

    def test_staged_by_an_earlier_run_is_promoted_not_built(self, tree: Tree) -> None:
        own = definitions(render_images(tree, case_config(CASE), ["native"])).own["native"]
        assert own is not None
        plan = planned(
            tree, Observed(offline=False, credentials=True, staged={R + "native:0.4.1": own})
        )
        assert not any(s.image == "native" and s.op is Op.BUILD for s in plan.steps)
        promote = next(s for s in plan.steps if s.op is Op.PROMOTE and s.image == "native")
        assert promote.reason is Reason.STAGED_IN_EARLIER_RUN
        assert promote.detail == STAGED_NATIVE
        pull = next(s for s in plan.steps if s.op is Op.PULL and s.image == "native")
        assert (pull.reason, pull.label, pull.detail) == (
            Reason.STAGED_DEPENDENCY,
            STAGED_NATIVE,
            R + "native:0.4.1",
        )

    def test_staged_from_another_definition_is_built_again(self, tree: Tree) -> None:
        observed = Observed(
            offline=False, credentials=True, staged={R + "native:0.4.1": "sha256:x"}
        )
        plan = planned(tree, observed)
        assert any(s.image == "native" and s.op is Op.BUILD for s in plan.steps)

    @pytest.mark.parametrize("view", ["txt", "json"])
    def test_golden(self, tree: Tree, view: str) -> None:
        plan = planned(tree, fresh())
        text = plan_to_text(plan, needs=True) if view == "txt" else plan_to_json(plan)
        check_golden(f"plans/all-or-nothing.{view}", text)
        assert plan_from_json(plan_to_json(plan), "p.json") == plan

    def test_staging_paths(self) -> None:
        assert staging_path("ns/web", "ns") == "ns/dockerpkg-staging/web"
        assert staging_path("web", None) == "dockerpkg-staging/web"


def outcome(op: Op, image: str, result: Outcome, label: str | None = None) -> StepOutcome:
    return StepOutcome(Step(op, image, Reason.ALL_PUBLISHED, label), result)


class TestLastLine:
    def test_nothing_moved(self) -> None:
        report = Report(
            (
                outcome(Op.PUBLISH, "a", Outcome.SUCCEEDED, "r/dockerpkg-staging/a:1"),
                outcome(Op.VERIFY, "b", Outcome.FAILED),
                outcome(Op.PROMOTE, "a", Outcome.SKIPPED),
                outcome(Op.PROMOTE, "b", Outcome.SKIPPED),
            )
        )
        line = publication_line(report)
        assert line is not None
        assert line.startswith("Nothing moved")
        assert "r/dockerpkg-staging/a:1" in line

    def test_half_moved_and_all_moved(self) -> None:
        half = Report(
            (
                outcome(Op.PROMOTE, "a", Outcome.SUCCEEDED),
                outcome(Op.PROMOTE, "b", Outcome.FAILED),
            )
        )
        assert publication_line(half) == (
            "Promoted a; not promoted: b. A rerun promotes the rest without building."
        )
        done = Report((outcome(Op.PROMOTE, "a", Outcome.SUCCEEDED),))
        assert publication_line(done) == "Promoted all 1: version tags and latest moved."
        assert publication_line(Report(())) is None


class TestRegistryCache:
    def test_builds_import_their_previous_version_and_latest(self, tree: Tree) -> None:
        plan = planned(tree, Observed(), BuildOptions(cache=CacheMode.REGISTRY))
        native = plan.image("native")
        changelog = tree.images["native"].spec.source.changelog
        older = versions_newest_first(changelog)[1:2]
        assert native.cache_from == (
            *(f"{native.repository}:{v}" for v in older),
            f"{native.repository}:latest",
        )
        assert plan.options.cache is CacheMode.REGISTRY
        assert plan_from_json(plan_to_json(plan), "p.json") == plan

    def test_off_by_default(self, tree: Tree) -> None:
        plan = planned(tree, Observed(), BuildOptions())
        assert all(image.cache_from == () for image in plan.images)

    def test_what_is_not_built_imports_nothing(self, tree: Tree) -> None:
        every = frozenset(image.label for image in tree.images.values())
        observed = Observed(offline=False, published=every, credentials=True)
        plan = planned(tree, observed, BuildOptions(cache=CacheMode.REGISTRY))
        assert all(image.cache_from == () for image in plan.images)
