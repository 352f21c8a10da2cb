"""Base digests: the comparison of recorded bases with the registry's (pure, observed-state
literals), the findings in every view (golden), and the label's value."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import pytest

from dockerpkg.core.bases import (
    BASES_LABEL,
    bases_label,
    check_bases,
    chosen_digest,
    pin_dockerfile,
    pins_of,
    pulled_digest,
    read_bases_label,
    recorded_references,
    unpin_dockerfile,
)
from dockerpkg.core.definition import sent_definition
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import DEFAULT_OPTIONS, Op, Plan, Reason
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config
from tests.support.golden import check_golden

CASE = COMPAT / "11-versions"
R = "registry.example.org/"
BOOKWORM = R + "bookworm:20260301"
NATIVE, SECURITY, DATED = R + "native:0.4.1", R + "security:0.4.1-s2", R + "dated:1.21-1-20260816"
DEBIAN_REV, LEAF = R + "debian-rev:2.0.3-1", R + "leaf:5"
EVERY = frozenset({NATIVE, SECURITY, DATED, DEBIAN_REV, LEAF})
ALL_NAMES = ("native", "security", "dated", "debian-rev", "leaf")
OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE))


def on_base(digest: str) -> dict[str, str]:
    return {BOOKWORM: digest}


class TestCheck:
    def test_a_moved_base_outdates_its_image_and_everything_built_on_it(self, tree: Tree) -> None:
        recorded = {NATIVE: on_base(OLD), SECURITY: {NATIVE: OLD}}
        check = check_bases(tree, ALL_NAMES, recorded, {BOOKWORM: NEW})
        assert set(check.tops) == {"native"}
        assert check.tops["native"][0].recorded == OLD
        assert check.tops["native"][0].current == NEW
        assert check.below["native"] == ("dated", "debian-rev", "leaf", "security")
        assert set(check.outdated) == set(ALL_NAMES)
        assert check.unknown == ()

    def test_an_unmoved_base_outdates_nothing(self, tree: Tree) -> None:
        recorded: dict[str, dict[str, str]] = {label: {} for label in EVERY}
        recorded[NATIVE] = on_base(OLD)
        check = check_bases(tree, ALL_NAMES, recorded, {BOOKWORM: OLD})
        assert (check.tops, check.outdated, check.unknown) == ({}, (), ())

    def test_a_reference_not_asked_about_is_not_judged(self, tree: Tree) -> None:
        check = check_bases(tree, ALL_NAMES, {NATIVE: on_base(OLD)}, {})
        assert check.tops == {}
        assert check.unknown == tuple(n for n in tree.order if n != "native")

    def test_a_moved_parent_below_the_top_is_counted_not_reported(self, tree: Tree) -> None:
        # leaf recorded dated's manifest, which moved too: leaf is still under native.
        recorded = {NATIVE: on_base(OLD), LEAF: {DATED: OLD}}
        check = check_bases(tree, ALL_NAMES, recorded, {BOOKWORM: NEW, DATED: NEW})
        assert set(check.tops) == {"native"}
        assert "leaf" in check.below["native"]

    def test_a_branch_of_its_own(self, tree: Tree) -> None:
        recorded: dict[str, dict[str, str]] = {label: {} for label in EVERY}
        recorded[DATED] = {SECURITY: OLD}
        check = check_bases(tree, ALL_NAMES, recorded, {SECURITY: NEW})
        assert set(check.tops) == {"dated"}
        assert check.below["dated"] == ("leaf",)
        assert check.outdated == ("dated", "leaf")

    def test_only_published_images_count(self, tree: Tree) -> None:
        check = check_bases(tree, ("native",), {NATIVE: on_base(OLD)}, {BOOKWORM: NEW})
        assert check.below["native"] == ()
        assert check.outdated == ("native",)


def planned(tree: Tree, observed: Observed) -> Plan:
    return plan_build(tree, case_config(CASE), observed, directory="images", digest="sha256:test")


def outdated_observed(**more: object) -> Observed:
    return Observed(
        offline=False,
        published=EVERY,
        credentials=True,
        labels_read=True,
        bases={NATIVE: on_base(OLD), SECURITY: {}, DATED: {}, DEBIAN_REV: {}},
        base_digests={BOOKWORM: NEW},
        **more,  # type: ignore[arg-type]
    )


class TestPlan:
    def test_one_finding_at_the_top_with_the_count_below(self, tree: Tree) -> None:
        plan = planned(tree, outdated_observed())
        assert [(f.image, f.reason) for f in plan.findings] == [("native", Reason.BASE_CHANGED)]
        finding = plan.findings[0]
        assert (finding.base, finding.recorded, finding.current) == (BOOKWORM, OLD, NEW)
        assert finding.below == ("dated", "debian-rev", "leaf", "security")
        assert finding.fix == "dockerpkg update --changed-bases images"
        assert plan.has_changes
        assert plan.steps == ()
        # leaf carries no label: but it is below an outdated image, so it is not "unknown".
        assert not any("without the" in note for note in plan.notes)

    def test_unknown_images_are_one_note(self, tree: Tree) -> None:
        observed = Observed(
            offline=False, published=EVERY, credentials=True, labels_read=True, bases={}
        )
        plan = planned(tree, observed)
        assert plan.findings == ()
        notes = [note for note in plan.notes if BASES_LABEL in note]
        assert len(notes) == 1
        assert notes[0].startswith("5 published images without the org.dockerpkg.bases label")

    def test_labels_not_read_no_judgement(self, tree: Tree) -> None:
        observed = Observed(offline=False, published=EVERY, credentials=True)
        plan = planned(tree, observed)
        assert plan.findings == ()
        assert not any(BASES_LABEL in note for note in plan.notes)

    @pytest.mark.parametrize("view", ["txt", "json", "md"])
    def test_golden(self, tree: Tree, view: str) -> None:
        plan = planned(tree, outdated_observed())
        text = {"txt": plan_to_text, "json": plan_to_json, "md": plan_to_markdown}[view](plan)
        check_golden(f"plans/base-changed.{view}", text)

    def test_json_round_trip(self, tree: Tree) -> None:
        plan = planned(tree, outdated_observed())
        assert plan_from_json(plan_to_json(plan), "p.json") == plan


class TestLabel:
    def test_sorted_compact_json(self) -> None:
        value = bases_label({"b/x:1": NEW, "a/y:2": OLD})
        assert value == json.dumps({"a/y:2": OLD, "b/x:1": NEW}, separators=(",", ":"))
        assert read_bases_label(value) == {"a/y:2": OLD, "b/x:1": NEW}

    @pytest.mark.parametrize("value", [None, "", "not json", "[1]", '{"a": 1}'])
    def test_a_label_not_ours_reads_as_absent(self, value: str | None) -> None:
        assert read_bases_label(value) is None

    def test_the_digest_the_plan_saw_wins_else_the_smallest(self) -> None:
        assert chosen_digest([NEW, OLD], NEW) == NEW
        assert chosen_digest([NEW, OLD], None) == OLD
        assert chosen_digest([], OLD) is None

    def test_a_base_held_under_two_digests_records_the_one_its_tag_resolved_to(self) -> None:
        """The tag became a multi-platform index: the daemon holds the image under the
        platform manifest it had and under the index. The index is what the registry answers
        for the tag, so what `plan` compares with: recording the smaller digest instead made
        the image outdated again after every rebuild."""
        index, platform = max(NEW, OLD), min(NEW, OLD)
        said = [
            "Pulling from base/second",
            f"Digest: {index}",
            "Status: Image is up to date for registry.example.org/base/second:1.0",
        ]
        pulled = pulled_digest(said)
        assert pulled == index
        assert chosen_digest([platform, index], None, pulled) == index
        # A pin still wins; a pulled digest the daemon does not hold is not taken.
        assert chosen_digest([platform, index], platform, pulled) == platform
        assert chosen_digest([platform], None, index) == platform
        assert pulled_digest(["Status: Downloaded newer image for x:1"]) is None

    def test_recorded_references_are_bases_and_pulled_parents(self, tree: Tree) -> None:
        plan = planned(tree, Observed(offline=False, published=frozenset({NATIVE})))
        security = plan.image("security")
        # native is published, so pulled: its manifest is recorded; bookworm is native's.
        assert recorded_references(plan, security) == (NATIVE,)
        offline = planned(tree, Observed())
        assert recorded_references(offline, offline.image("native")) == (BOOKWORM,)
        # security is built in the same run: nothing of it is recorded on dated.
        assert recorded_references(offline, offline.image("dated")) == ()


class TestPinned:
    PINS: ClassVar[dict[str, str]] = {BOOKWORM: NEW}

    def test_from_lines_of_bases_are_held_to_the_digest(self) -> None:
        dockerfile = (
            f"FROM {BOOKWORM} AS build\nRUN make\n"
            f"from --platform=linux/amd64 {BOOKWORM}\nFROM {NATIVE}\nCOPY --from=build /a /a\n"
        )
        assert pin_dockerfile(dockerfile, self.PINS) == (
            f"FROM {BOOKWORM}@{NEW} AS build\nRUN make\n"
            f"from --platform=linux/amd64 {BOOKWORM}@{NEW}\n"
            f"FROM {NATIVE}\nCOPY --from=build /a /a\n"
        )

    def test_offline_or_unpublished_bases_are_said_not_pinned(self) -> None:
        assert pins_of([BOOKWORM], {}, offline=True)[0] == {}
        assert "digests are unknown" in pins_of([BOOKWORM], {}, offline=True)[1][0]
        pins, notes = pins_of([BOOKWORM, BOOKWORM], {}, offline=False)
        assert (pins, notes) == (
            {},
            [f"pin_bases: {BOOKWORM} was not found in its registry: not pinned"],
        )
        assert pins_of([f"{BOOKWORM}@{OLD}"], {}, offline=False) == ({}, [])

    def test_a_pinned_plan(self, tree: Tree) -> None:
        config = attrs.evolve(case_config(CASE), pin_bases=True)
        observed = Observed(offline=False, credentials=True, base_digests=self.PINS)
        plan = plan_build(tree, config, observed, directory="images", digest="d")
        unpinned = plan_build(tree, case_config(CASE), observed, directory="images", digest="d")
        native = plan.image("native")
        assert native.dockerfile is not None
        assert f"FROM {BOOKWORM}@{NEW}" in native.dockerfile
        assert native.pins == {BOOKWORM: NEW}
        # What determines the image is the tree: pinning changes no definition.
        assert native.own_definition == unpinned.image("native").own_definition
        pull = next(s for s in plan.steps if s.op is Op.PULL)
        assert (pull.image, pull.label) == (BOOKWORM, f"{BOOKWORM}@{NEW}")
        build = next(s for s in plan.steps if s.op is Op.BUILD and s.image == "native")
        assert pull.key in build.needs
        assert plan_from_json(plan_to_json(plan), "p.json") == plan

    def test_the_definition_of_what_a_pinned_build_sends_is_the_plan_s(self, tree: Tree) -> None:
        """apply checks a build context against the plan's definition, made from the tree
        before pinning: the pinned Dockerfiles give the same definition back."""
        config = attrs.evolve(case_config(CASE), pin_bases=True)
        observed = Observed(offline=False, credentials=True, base_digests=self.PINS)
        plan = plan_build(tree, config, observed, directory="images", digest="d")
        for image in plan.images:
            if image.own_definition is None:
                continue
            source = tree.images[image.name].spec.source
            ignore = dict(source.files).get(".dockerignore")
            assert sent_definition(image, source.hashes, ignore) == image.own_definition
            changed = (*source.hashes, ("new-file", "0" * 64))
            assert sent_definition(image, changed, ignore) != image.own_definition
        native = plan.image("native")
        assert native.dockerfile is not None
        assert unpin_dockerfile(native.dockerfile, native.pins) == tree.images["native"].dockerfile

    def test_an_offline_pinned_plan_says_so(self, tree: Tree) -> None:
        config = attrs.evolve(case_config(CASE), pin_bases=True)
        plan = plan_build(tree, config, Observed(), directory="images", digest="d")
        assert any("digests are unknown" in note for note in plan.notes)
        native = plan.image("native")
        assert native.dockerfile is not None
        assert "@sha256" not in native.dockerfile


class TestAbsentBase:
    """A base image its registry no longer holds is said, with or without pin_bases."""

    def test_a_plan_that_builds_on_it_says_the_pull_will_fail(self, tree: Tree) -> None:
        config = case_config(CASE)
        assert not config.pin_bases
        observed = Observed(offline=False, credentials=True, bases_absent=frozenset({BOOKWORM}))
        plan = plan_build(tree, config, observed, directory="images", digest="d")
        users = sorted(n for n in tree.order if BOOKWORM in tree.images[n].bases)
        assert users
        assert [n for n in plan.notes if BOOKWORM in n] == [
            f"base image {BOOKWORM} is not in its registry (deleted or renamed?); images on it: "
            f"{', '.join(users)}; building {', '.join(users)} will fail to pull it"
        ]
        check_golden("plans/base-absent.txt", plan_to_text(plan))

    def test_published_images_on_it_are_named_too(self, tree: Tree) -> None:
        observed = Observed(
            offline=False,
            published=EVERY,
            credentials=True,
            labels_read=True,
            bases={},
            bases_absent=frozenset({BOOKWORM}),
        )
        plan = planned(tree, observed)
        assert plan.steps == ()
        notes = [n for n in plan.notes if BOOKWORM in n]
        assert len(notes) == 1
        assert notes[0].endswith("; nothing this plan builds needs it, but a rebuild will")

    def test_with_no_pull_the_daemons_copy_is_needed(self, tree: Tree) -> None:
        observed = Observed(offline=False, credentials=True, bases_absent=frozenset({BOOKWORM}))
        options = attrs.evolve(DEFAULT_OPTIONS, pull=False)
        plan = plan_build(
            tree, case_config(CASE), observed, directory="images", digest="d", options=options
        )
        assert any(
            n.endswith("building native needs the daemon's copy of it")
            for n in plan.notes
            if BOOKWORM in n
        )

    def test_a_base_found_or_not_asked_about_gets_no_note(self, tree: Tree) -> None:
        for observed in (
            Observed(offline=False, credentials=True, base_digests={BOOKWORM: NEW}),
            Observed(offline=False, credentials=True),
            Observed(),
        ):
            plan = plan_build(tree, case_config(CASE), observed, directory="images", digest="d")
            assert not any("not in its registry" in n for n in plan.notes)


class TestPinBasesCauses:
    """pin_bases asks the bases' own registries, in a test session too (which asks the
    tree's registry nothing); one that does not answer leaves its bases unpinned, and the
    note names that cause, not a base missing from its registry."""

    UNREACHABLE = "127.0.0.1:9/bookworm:20260301"  # the discard port: nothing listens

    def test_the_note_says_the_registry_did_not_answer(self) -> None:
        why = "cannot reach 127.0.0.1:9: connection refused"
        pins, notes = pins_of([BOOKWORM, NATIVE], {}, offline=False, unknown={BOOKWORM: why})
        assert pins == {}
        assert notes == [
            f"pin_bases: the digest of {BOOKWORM} is unknown (its registry did not answer: "
            f"{why}): not pinned",
            f"pin_bases: {NATIVE} was not found in its registry: not pinned",
        ]

    def test_a_plan_says_why_a_base_is_not_pinned(self, tree: Tree) -> None:
        config = attrs.evolve(case_config(CASE), pin_bases=True)
        observed = Observed(
            offline=False, credentials=True, bases_unknown={BOOKWORM: "connection refused"}
        )
        plan = plan_build(tree, config, observed, directory="images", digest="d")
        assert (
            f"pin_bases: the digest of {BOOKWORM} is unknown (its registry did not answer: "
            "connection refused): not pinned"
        ) in plan.notes
        assert not any(f"{BOOKWORM} was not found" in note for note in plan.notes)
        native = plan.image("native")
        assert native.dockerfile is not None
        assert "@sha256" not in native.dockerfile

    @pytest.mark.parametrize("pin", [True, False])
    def test_a_session_asks_the_bases_registries_only_with_pin_bases(
        self, tree: Tree, pin: bool
    ) -> None:
        from dockerpkg.effects.observe import Observation

        config = attrs.evolve(case_config(CASE), pin_bases=pin, base_images=(self.UNREACHABLE,))
        # As a test session observes: the daemon (not asked here) and no tree registry.
        observation = Observation(config, None, {}, (), daemon=False, registry=False)
        observed = observation.result(tree)
        assert observed.published == frozenset()
        if not pin:
            assert observed.bases_unknown == {}
            return
        (why,) = observed.bases_unknown.values()
        assert list(observed.bases_unknown) == [self.UNREACHABLE]
        assert "127.0.0.1:9" in why
        _, notes = pins_of([self.UNREACHABLE], {}, False, observed.bases_unknown)
        assert notes[0].startswith(
            f"pin_bases: the digest of {self.UNREACHABLE} is unknown (its registry did not answer: "
        )
