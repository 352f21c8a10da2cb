"""All-or-nothing publishing planned: staging references, promotions, their order and needs,
images an earlier run staged (observed-state literals), and the run's last line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dockerpkg.core import definition
from dockerpkg.core.changelog import versions_newest_first
from dockerpkg.core.definition import IDENTITY_LABEL, definitions
from dockerpkg.core.plan import (
    BuildOptions,
    CacheMode,
    Op,
    Plan,
    PublishMode,
    Reason,
    Step,
    StepKey,
)
from dockerpkg.core.planner import Observed, State, _judged, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.report import Outcome, Report, StepOutcome, publication_line
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.staging import Staged, staged_labels, staging_path
from dockerpkg.core.tree import Tree, load_tree, render_images
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config
from tests.support.golden import check_golden

CASE = COMPAT / "11-versions"
R = "registry.example.org/"
STAGED_NATIVE = R + "dockerpkg-staging/native:0.4.1"
DIGEST = "sha256:" + "d" * 64
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


def identities(tree: Tree) -> dict[str, str]:
    """The build identity of every image of TREE, as the plan computes it."""
    found = definitions(render_images(tree, case_config(CASE), tree.order)).full
    return {name: value for name, value in found.items() if value is not None}


class TestPlan:
    def test_every_image_is_staged_then_promoted_parents_first(self, tree: Tree) -> None:
        plan = planned(tree, fresh())
        publishes = [s for s in plan.steps if s.op is Op.STAGE]
        assert {s.label for s in publishes} >= {STAGED_NATIVE}
        assert all("/dockerpkg-staging/" in (s.label or "") for s in publishes)
        promotions = [s for s in plan.steps if s.op is Op.PROMOTE]
        assert [s.image for s in promotions] == [s.image for s in publishes]
        assert [s.image for s in promotions] == list(tree.order)
        making = {s.key for s in plan.steps if s.op in {Op.BUILD, Op.VERIFY, Op.STAGE}}
        # The first promotion is the barrier: it waits for every step that makes an image;
        # every later one waits for its parents' promotions, or for the barrier if it has
        # none, so for every step that makes an image through them.
        first, *later = promotions
        assert set(first.needs) == making
        needs = {s.key: set(s.needs) for s in plan.steps}
        for step in later:
            parents = {StepKey(Op.PROMOTE, p) for p in tree.images[step.image].parents}
            assert set(step.needs) == (parents or {first.key}), step.key
            reached: set[StepKey] = set()
            todo = [step.key]
            while todo:
                found = needs[todo.pop()] - reached
                reached |= found
                todo += found
            assert making <= reached, step.key
        assert staged_labels(plan)[R + "native:0.4.1"] == STAGED_NATIVE
        assert any("all_or_nothing" in note for note in plan.notes)

    def test_per_image_is_unchanged(self, tree: Tree) -> None:
        plan = planned(tree, fresh(), BuildOptions())
        assert not any(s.op is Op.PROMOTE for s in plan.steps)
        assert all("/dockerpkg-staging/" not in (s.label or "") for s in plan.steps)

    def test_no_credentials_no_staging(self, tree: Tree) -> None:
        plan = planned(tree, Observed(offline=False))
        assert not any(s.op in {Op.STAGE, Op.PUBLISH, Op.PROMOTE} for s in plan.steps)

    def test_staged_by_an_earlier_run_is_promoted_not_built(self, tree: Tree) -> None:
        identity = identities(tree)["native"]
        staged = {R + "native:0.4.1": Staged(identity, DIGEST)}
        plan = planned(tree, Observed(offline=False, credentials=True, staged=staged))
        assert not any(s.image == "native" and s.op is Op.BUILD for s in plan.steps)
        promote = next(s for s in plan.steps if s.op is Op.PROMOTE and s.image == "native")
        assert promote.reason is Reason.STAGED_IN_EARLIER_RUN
        # Held to the digest whose identity was read, not to whatever the tag holds later.
        assert promote.detail == f"{STAGED_NATIVE}@{DIGEST}"
        pull = next(s for s in plan.steps if s.op is Op.PULL and s.image == "native")
        assert (pull.reason, pull.label, pull.detail) == (
            Reason.STAGED_DEPENDENCY,
            f"{STAGED_NATIVE}@{DIGEST}",
            R + "native:0.4.1",
        )

    def test_a_child_builds_once_its_staged_parent_is_pulled_and_named(self, tree: Tree) -> None:
        staged = {R + "native:0.4.1": Staged(identities(tree)["native"], DIGEST)}
        plan = planned(tree, Observed(offline=False, credentials=True, staged=staged))
        pull = next(s for s in plan.steps if s.op is Op.PULL and s.image == "native")
        for child in ("debian-rev", "security"):
            build = next(s for s in plan.steps if s.op is Op.BUILD and s.image == child)
            assert pull.key in build.needs, child

    def test_staged_from_another_definition_is_built_again(self, tree: Tree) -> None:
        observed = Observed(
            offline=False, credentials=True, staged={R + "native:0.4.1": Staged("sha256:x")}
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


class TestRecheck:
    """A saved plan that promotes what an earlier run staged, brought up to date with what
    was published since it was made."""

    NATIVE = R + "native:0.4.1"

    def plan(self, tree: Tree) -> Plan:
        staged = {self.NATIVE: Staged(identities(tree)["native"], DIGEST)}
        return planned(tree, Observed(offline=False, credentials=True, staged=staged))

    def test_a_staged_parent_is_still_pulled_when_another_image_was_published(
        self, tree: Tree
    ) -> None:
        plan = self.plan(tree)
        leaf = R + "leaf:5"
        rechecked, labels = without_published(plan, frozenset({leaf}))
        assert labels == (leaf,)
        pull = next(s for s in rechecked.steps if s.op is Op.PULL and s.image == "native")
        assert (pull.reason, pull.label) == (Reason.STAGED_DEPENDENCY, f"{STAGED_NATIVE}@{DIGEST}")
        for child in ("debian-rev", "security"):
            build = next(s for s in rechecked.steps if s.op is Op.BUILD and s.image == child)
            assert pull.key in build.needs, child

    def test_a_staged_image_published_since_is_neither_promoted_nor_pulled_from_staging(
        self, tree: Tree
    ) -> None:
        plan = self.plan(tree)
        assert self.NATIVE in publishing_labels(plan)
        rechecked, labels = without_published(plan, frozenset({self.NATIVE}))
        assert labels == (self.NATIVE,)
        assert not any(s.op is Op.PROMOTE and s.image == "native" for s in rechecked.steps)
        assert self.NATIVE not in staged_labels(rechecked)
        pulls = [s for s in rechecked.steps if s.op is Op.PULL and s.image == "native"]
        assert [(s.reason, s.label) for s in pulls] == [(Reason.PUBLISHED_DEPENDENCY, self.NATIVE)]
        for child in ("debian-rev", "security"):
            build = next(s for s in rechecked.steps if s.op is Op.BUILD and s.image == child)
            assert pulls[0].key in build.needs, child
        assert rechecked.notes[-1] == (
            f"published since the plan was made: {self.NATIVE} (not built or pushed)"
        )


def edited_tree(tmp_path: Path, name: str, line: str) -> Tree:
    """The case's tree with LINE added to image NAME's template (no new version)."""
    copy = tmp_path / "images"
    shutil.copytree(CASE / "images", copy)
    template = copy / name / "Dockerfile.template"
    template.write_text(template.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    return load_tree(read_snapshot(copy), case_config(CASE))


class TestIdentity:
    """A build's identity: its own definition and its parents' identities, recursively."""

    def test_a_parent_edit_changes_every_identity_below_it(
        self, tree: Tree, tmp_path: Path
    ) -> None:
        before = identities(tree)
        edited = identities(edited_tree(tmp_path, "security", "RUN true"))
        # security, and what is built on it (dated, then leaf); not native nor debian-rev.
        changed = {n for n in tree.order if before[n] != edited[n]}
        assert changed == {"security", "dated", "leaf"}

    def test_one_pass_each_definition_once(
        self, tree: Tree, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rendered = render_images(tree, case_config(CASE), tree.order)
        calls: list[str] = []
        real = definition.own_definition

        def counted(image: object) -> str | None:
            calls.append(image.name)  # type: ignore[attr-defined]
            return real(image)  # type: ignore[arg-type]

        monkeypatch.setattr(definition, "own_definition", counted)
        definitions(rendered)
        assert sorted(calls) == sorted(tree.order)

    def test_recorded_in_the_plan_and_on_the_image(self, tree: Tree) -> None:
        plan = planned(tree, fresh())
        ids = identities(tree)
        for image in plan.images:
            assert image.definition == ids[image.name]
            assert image.labels[IDENTITY_LABEL] == ids[image.name]


def staged_as(tree: Tree, found: dict[str, str]) -> dict[str, Staged]:
    """What an earlier run staged: every image of TREE, with the identities FOUND."""
    return {tree.images[n].label: Staged(value, DIGEST) for n, value in found.items()}


class TestReuseByIdentity:
    """Staged and local images are reused only when their identity is the tree's."""

    def test_children_staged_on_an_old_parent_are_built_again(
        self, tree: Tree, tmp_path: Path
    ) -> None:
        # A failed run staged everything; then native was fixed without a new version: the
        # children's own definitions are unchanged, but they sit on the old native.
        old = identities(edited_tree(tmp_path, "native", "RUN echo broken"))
        plan = planned(tree, Observed(offline=False, credentials=True, staged=staged_as(tree, old)))
        built = {s.image for s in plan.steps if s.op is Op.BUILD}
        assert built == set(tree.order)
        assert not any(s.reason is Reason.STAGED_IN_EARLIER_RUN for s in plan.steps)
        reasons = {s.image: s.reason for s in plan.steps if s.op is Op.BUILD}
        assert set(reasons.values()) == {Reason.IDENTITY_CHANGED}
        assert plan.has_changes

    def test_only_the_branch_below_a_fixed_image_is_built_again(
        self, tree: Tree, tmp_path: Path
    ) -> None:
        old = identities(edited_tree(tmp_path, "security", "RUN echo broken"))
        plan = planned(tree, Observed(offline=False, credentials=True, staged=staged_as(tree, old)))
        built = {s.image for s in plan.steps if s.op is Op.BUILD}
        assert built == {"security", "dated", "leaf"}
        promoted = {s.image for s in plan.steps if s.reason is Reason.STAGED_IN_EARLIER_RUN}
        assert promoted == {"native", "debian-rev"}

    def test_a_local_image_of_another_identity_is_built_again(
        self, tree: Tree, tmp_path: Path
    ) -> None:
        # A failed run built every image; a template was then edited without a new version:
        # the daemon's image is built again, never verified and published (nor staged).
        old = identities(edited_tree(tmp_path, "leaf", "RUN echo broken"))
        local = {tree.images[n].label: old[n] for n in tree.order}
        for options in (ALL, BuildOptions()):
            observed = Observed(
                offline=False,
                credentials=True,
                local=frozenset(local),
                local_identities=local,
            )
            plan = planned(tree, observed, options)
            builds = {s.image: s.reason for s in plan.steps if s.op is Op.BUILD}
            assert builds == {"leaf": Reason.IDENTITY_CHANGED}
            verified = {s.image for s in plan.steps if s.op is Op.VERIFY}
            assert verified == set(tree.order)  # the others: verified and published as built

    def test_a_local_image_without_an_identity_is_reused_as_docker_pkg_did(
        self, tree: Tree
    ) -> None:
        local = frozenset(tree.images[n].label for n in tree.order)
        observed = Observed(offline=False, credentials=True, local=local)
        plan = planned(tree, observed)
        assert not any(s.op is Op.BUILD for s in plan.steps)

    def test_judging_renders_only_what_is_judged(self, tree: Tree) -> None:
        ids = identities(tree)
        tree = load_tree(read_snapshot(CASE / "images"), case_config(CASE), render=False)
        observed = Observed(
            offline=False,
            credentials=True,
            local=frozenset({R + "native:0.4.1"}),
            local_identities={R + "native:0.4.1": ids["native"]},
        )
        states = dict.fromkeys(tree.order, (State.TO_BUILD, Reason.NOT_IN_REGISTRY))
        states["native"] = (State.BUILT, Reason.BUILT_LOCALLY_NOT_PUBLISHED)
        judged, after = _judged(tree, case_config(CASE), observed, states, staging=False)
        assert after == states
        assert [n for n in tree.order if judged.images[n].dockerfile is not None] == ["native"]


class TestUnstaging:
    """A later run removes the staging references an earlier one promoted and left."""

    def test_a_promoted_and_left_staging_reference_is_removed(self, tree: Tree) -> None:
        labels = frozenset(tree.images[n].label for n in tree.order)
        staged = {
            R + "native:0.4.1": Staged("sha256:any", DIGEST, published=DIGEST),
            # Not what the version tag holds: not promoted from there, left alone.
            R + "leaf:5": Staged("sha256:any", DIGEST, published="sha256:" + "e" * 64),
        }
        observed = Observed(offline=False, credentials=True, published=labels, staged=staged)
        plan = planned(tree, observed)
        assert [(s.op, s.image, s.reason, s.label) for s in plan.steps] == [
            (Op.UNSTAGE, "native", Reason.PROMOTED_IN_EARLIER_RUN, f"{STAGED_NATIVE}@{DIGEST}")
        ]
        # Nothing users pull changes (--detailed-exitcode says 0).
        assert not plan.has_changes
        assert "1 staged to remove" in plan_to_text(plan)
        assert plan_from_json(plan_to_json(plan), "p.json") == plan
        # Per image publishing does not look at staging: nothing to remove.
        assert planned(tree, observed, BuildOptions()).steps == ()


def outcome(
    op: Op, image: str, result: Outcome, label: str | None = None, detail: str | None = None
) -> StepOutcome:
    return StepOutcome(Step(op, image, Reason.ALL_PUBLISHED, label), result, detail=detail)


class TestLastLine:
    def test_nothing_moved(self) -> None:
        report = Report(
            (
                outcome(Op.STAGE, "a", Outcome.SUCCEEDED, "r/dockerpkg-staging/a:1"),
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

    def test_a_version_tag_moved_before_latest_failed_is_said(self) -> None:
        # The version PUT done, the `latest` PUT failed: the version tag exists.
        report = Report(
            (
                outcome(Op.STAGE, "a", Outcome.SUCCEEDED, "r/dockerpkg-staging/a:1"),
                outcome(Op.PROMOTE, "a", Outcome.FAILED, detail="sha256:moved"),
            )
        )
        line = publication_line(report)
        assert line == (
            "Version tag moved, latest not: a. A rerun promotes the rest without building."
        )
        assert "Nothing moved" not in line
        both = Report(
            (
                outcome(Op.PROMOTE, "a", Outcome.SUCCEEDED),
                outcome(Op.PROMOTE, "b", Outcome.FAILED, detail="sha256:moved"),
                outcome(Op.PROMOTE, "c", Outcome.SKIPPED),
            )
        )
        assert publication_line(both) == (
            "Promoted a; version tag moved, latest not: b; not promoted: c. "
            "A rerun promotes the rest without building."
        )


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
