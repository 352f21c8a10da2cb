"""Build plans of a tree with platforms, from observed-state values: platform images, index
images and their steps, needs, published-when-complete, golden text, JSON and Markdown."""

from __future__ import annotations

import attrs
import pytest

from dockerpkg.core.builders import DEFAULT_BUILDERS, Builder, BuilderSet
from dockerpkg.core.config import Config
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import BuildOptions, CacheMode, Op, Plan, Reason
from dockerpkg.core.planmatch import build_differences, claimed_observed
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.report import (
    Outcome,
    Report,
    StepOutcome,
    report_table,
    report_to_data,
    summary_line,
)
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.errors import DockerPkgError
from tests.support.golden import check_golden

R = "registry.example.org"
BASE = f"{R}/busybox:1"
PARENT, CHILD = f"{R}/parent:1.0", f"{R}/child:2.0"
AMD64, ARM64 = "linux/amd64", "linux/arm64"
CONFIG = Config(registry=R, base_images=(BASE,), platforms=(AMD64, ARM64))


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def changelog(name: str, version: str) -> str:
    return (
        f"{name} ({version}) wikimedia; urgency=medium\n\n  * x\n\n"
        " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )


CHILD_TEMPLATE = (
    'FROM {{ "parent" | image_tag }}\n'
    '{% if arch == "arm64" %}RUN echo "deb http://ports.example.org/ {{ platform }}"\n'
    "{% else %}RUN echo native\n{% endif %}"
)


def sources(child_version: str = "2.0", child_control: str = "") -> tuple[ImageSource, ...]:
    parent = ImageSource(
        path="parent",
        template='FROM {{ "busybox" | image_tag }}\nRUN uname -m > /arch\n',
        changelog=changelog("parent", "1.0"),
        control="Package: parent\nDepends: busybox\n",
        names=frozenset({"test.sh"}),
        hashes=(("test.sh", "sha256:1"),),
    )
    child = ImageSource(
        path="child",
        template=CHILD_TEMPLATE,
        changelog=changelog("child", child_version),
        control=f"Package: child\nDepends: parent\n{child_control}",
    )
    return parent, child


def tree_of(config: Config = CONFIG, **kwargs: str) -> Tree:
    return load_tree(Snapshot(images=sources(**kwargs)), config)


ONLINE = Observed(
    offline=False,
    credentials=True,
    daemon_platform=AMD64,
    emulated=frozenset({ARM64}),
)
# Both indexes complete: every platform listed, `latest` on the version.
COMPLETE = attrs.evolve(
    ONLINE,
    published=frozenset({PARENT, CHILD}),
    platform_digests={
        PARENT: {AMD64: digest(1), ARM64: digest(2)},
        CHILD: {AMD64: digest(3), ARM64: digest(4)},
    },
    digests={
        PARENT: digest(5),
        f"{R}/parent:latest": digest(5),
        CHILD: digest(6),
        f"{R}/child:latest": digest(6),
    },
)
# The child's index lists amd64 only (its arm64 manifest was dropped).
ARM64_MISSING = attrs.evolve(
    COMPLETE,
    platform_digests={PARENT: {AMD64: digest(1), ARM64: digest(2)}, CHILD: {AMD64: digest(3)}},
)


def make(
    observed: Observed,
    tree: Tree | None = None,
    config: Config = CONFIG,
    chosen: BuilderSet = DEFAULT_BUILDERS,
    **options: object,
) -> Plan:
    return plan_build(
        tree or tree_of(config),
        config,
        observed,
        directory="images",
        digest="sha256:test",
        options=BuildOptions(**options),  # type: ignore[arg-type]
        builders=chosen,
    )


def ops(plan: Plan) -> list[tuple[str, str, str]]:
    return [(s.op.value, s.image, s.reason.value) for s in plan.steps]


def needs(plan: Plan) -> dict[str, tuple[str, ...]]:
    return {str(s.key): tuple(str(k) for k in s.needs) for s in plan.steps}


def views(plan: Plan, name: str) -> None:
    check_golden(f"plans/platforms-{name}.txt", plan_to_text(plan, needs=True))
    check_golden(f"plans/platforms-{name}.json", plan_to_json(plan))
    assert plan_from_json(plan_to_json(plan), "plan.json") == plan


class TestFresh:
    """Nothing published: each image built, verified and pushed per platform, then indexed."""

    def test_steps_and_golden(self) -> None:
        plan = make(ONLINE)
        views(plan, "fresh")
        check_golden("plans/platforms-fresh.md", plan_to_markdown(plan))
        assert [s for s in ops(plan) if s[0] != "pull"] == [
            ("build", "parent:amd64", "not_in_registry"),
            ("verify", "parent:amd64", "built_in_this_run"),
            ("publish", "parent:amd64", "built_in_this_run"),
            ("build", "parent:arm64", "not_in_registry"),
            ("verify", "parent:arm64", "built_in_this_run"),
            ("publish", "parent:arm64", "built_in_this_run"),
            ("index", "parent", "not_in_registry"),
            ("build", "child:amd64", "not_in_registry"),
            ("verify", "child:amd64", "built_in_this_run"),
            ("publish", "child:amd64", "built_in_this_run"),
            ("build", "child:arm64", "not_in_registry"),
            ("verify", "child:arm64", "built_in_this_run"),
            ("publish", "child:arm64", "built_in_this_run"),
            ("index", "child", "not_in_registry"),
            ("tag-latest", "parent", "latest_not_current"),
            ("tag-latest", "child", "latest_not_current"),
        ]

    def test_needs_follow_each_platform(self) -> None:
        found = needs(make(ONLINE))
        assert found[f"pull:{BASE}-arm64"] == ()
        assert found["build:parent:arm64"] == (f"pull:{BASE}-arm64",)
        assert found["build:child:arm64"] == ("verify:parent:arm64",)
        assert found["publish:child:arm64"] == ("verify:child:arm64", "publish:parent:arm64")
        # A child's index waits for its parent's: never public on a platform the parent's
        # index does not list yet.
        assert found["index:child"] == (
            "publish:child:amd64",
            "publish:child:arm64",
            "index:parent",
        )
        assert found["index:parent"] == ("publish:parent:amd64", "publish:parent:arm64")

    def test_each_platform_rendered_and_built_from_its_own_parent(self) -> None:
        plan = make(ONLINE)
        arm, amd = plan.image("child:arm64"), plan.image("child:amd64")
        assert arm.dockerfile == (
            f'FROM {R}/parent:1.0-arm64\nRUN echo "deb http://ports.example.org/ {ARM64}"\n'
        )
        assert amd.dockerfile == f"FROM {R}/parent:1.0-amd64\nRUN echo native\n"
        assert plan.image("parent:arm64").dockerfile == f"FROM {BASE}-arm64\nRUN uname -m > /arch"
        assert (arm.label, arm.tag, arm.platform) == (f"{R}/child:2.0-arm64", "2.0-arm64", ARM64)
        assert arm.definition != amd.definition
        assert arm.labels["org.opencontainers.image.title"] == "child"

    def test_index_images_are_never_built(self) -> None:
        plan = make(ONLINE)
        child = plan.image("child")
        assert (child.label, child.dockerfile, child.platforms) == (CHILD, None, (AMD64, ARM64))
        assert child.parents == ("child:amd64", "child:arm64")
        assert dict(child.children) == {AMD64: f"{CHILD}-amd64", ARM64: f"{CHILD}-arm64"}

    def test_bases_pulled_per_platform_under_their_own_name(self) -> None:
        pulls = [s for s in make(ONLINE).steps if s.op is Op.PULL]
        assert [(s.image, s.label, s.detail, s.platform, s.local_copy) for s in pulls] == [
            (f"{BASE}-amd64", BASE, f"{BASE}-amd64", AMD64, False),
            (f"{BASE}-arm64", BASE, f"{BASE}-arm64", ARM64, False),
        ]

    def test_emulation_is_noted(self) -> None:
        notes = make(ONLINE).notes
        assert any("linux/arm64 built under emulation (QEMU)" in n for n in notes)


class TestPublishedWhenComplete:
    def test_complete_indexes_need_nothing(self) -> None:
        plan = make(COMPLETE)
        assert plan.steps == ()
        check_golden("plans/platforms-complete.txt", plan_to_text(plan))

    def test_a_platform_tag_alone_does_not_count(self) -> None:
        # The per-platform tags exist, but the child's index lists amd64 only.
        observed = attrs.evolve(
            ARM64_MISSING, published=ARM64_MISSING.published | {f"{CHILD}-arm64"}
        )
        builds = [s.image for s in make(observed).steps if s.op is Op.BUILD]
        assert builds == ["child:arm64"]

    def test_arm64_missing_from_the_index(self) -> None:
        plan = make(ARM64_MISSING)
        views(plan, "arm64-missing")
        assert ops(plan) == [
            ("pull", "parent:arm64", "published_dependency"),
            ("build", "child:arm64", "not_in_registry"),
            ("verify", "child:arm64", "built_in_this_run"),
            ("publish", "child:arm64", "built_in_this_run"),
            ("index", "child", "platform_missing"),
            ("tag-latest", "child", "latest_not_current"),
        ]
        pull = plan.steps[0]
        assert (pull.label, pull.detail, pull.platform) == (
            f"{R}/parent@{digest(2)}",
            f"{PARENT}-arm64",
            ARM64,
        )
        assert dict(plan.image("child").children) == {
            AMD64: f"{R}/child@{digest(3)}",
            ARM64: f"{CHILD}-arm64",
        }
        assert needs(plan)["build:child:arm64"] == ("pull:parent:arm64",)

    def test_latest_moves_for_index_images_only(self) -> None:
        observed = attrs.evolve(COMPLETE, digests={PARENT: digest(5), CHILD: digest(6)})
        latest = [(s.op, s.image, s.label) for s in make(observed).steps]
        assert latest == [
            (Op.TAG_LATEST, "parent", PARENT),
            (Op.TAG_LATEST, "child", CHILD),
        ]


class TestLatestOfIndexImages:
    """An index step puts the version tag only; `latest` moves by a tag-latest after it."""

    def latest(self, plan: Plan) -> list[tuple[str, str | None, tuple[str, ...]]]:
        return [
            (s.image, s.detail, tuple(str(k) for k in s.needs))
            for s in plan.steps
            if s.op is Op.TAG_LATEST
        ]

    def test_a_new_version_moves_latest_after_its_index(self) -> None:
        from dockerpkg.core.latest import NEW_VERSION

        assert self.latest(make(ONLINE)) == [
            ("parent", NEW_VERSION, ("index:parent",)),
            ("child", NEW_VERSION, ("index:child",)),
        ]

    def test_a_missing_platform_moves_latest_that_was_on_the_version(self) -> None:
        assert self.latest(make(ARM64_MISSING)) == [("child", "latest on 2.0", ("index:child",))]

    def test_a_missing_platform_leaves_someone_elses_latest_alone(self) -> None:
        elsewhere = {f"{R}/child:latest": digest(9), f"{R}/child:3.0-beta": digest(9)}
        observed = attrs.evolve(
            ARM64_MISSING,
            digests={**ARM64_MISSING.digests, **elsewhere},
            tags={f"{R}/child": ("2.0", "3.0-beta", "latest")},
        )
        plan = make(observed)
        assert ("index", "child") in [(s.op.value, s.image) for s in plan.steps]
        assert self.latest(plan) == []
        assert any(
            note.startswith(f"{R}/child:latest is on 3.0-beta") and "left alone" in note
            for note in plan.notes
        )

    def test_a_missing_platform_moves_latest_from_an_older_version(self) -> None:
        older = {f"{R}/child:latest": digest(9), f"{R}/child:1.0": digest(9)}
        tree = tree_of(child_version="2.0")
        source = tree.images["child"].spec.source
        both = changelog("child", "2.0") + "\n" + changelog("child", "1.0")
        child = attrs.evolve(
            tree.images["child"],
            spec=attrs.evolve(
                tree.images["child"].spec, source=attrs.evolve(source, changelog=both)
            ),
        )
        tree = attrs.evolve(tree, images={**tree.images, "child": child})
        observed = attrs.evolve(
            ARM64_MISSING,
            digests={**ARM64_MISSING.digests, **older},
            tags={f"{R}/child": ("1.0", "2.0", "latest")},
        )
        assert self.latest(make(observed, tree)) == [("child", "latest on 1.0", ("index:child",))]


class TestChildOnlyChange:
    def test_new_child_version_builds_the_child_on_each_platform(self) -> None:
        plan = make(COMPLETE, tree_of(child_version="2.1"))
        views(plan, "child-change")
        assert [s for s in ops(plan) if s[0] in ("pull", "build", "index")] == [
            ("pull", "parent:amd64", "published_dependency"),
            ("pull", "parent:arm64", "published_dependency"),
            ("build", "child:amd64", "not_in_registry"),
            ("build", "child:arm64", "not_in_registry"),
            ("index", "child", "not_in_registry"),
        ]


class TestSelection:
    def test_globs_match_index_labels_and_bring_their_platform_images(self) -> None:
        plan = make(ARM64_MISSING, select="*/child:*")
        assert {s.image for s in plan.steps} == {"parent:arm64", "child:arm64", "child"}

    def test_a_glob_matching_only_platform_labels_selects_nothing(self) -> None:
        plan = make(ONLINE, select="*-arm64")
        assert plan.steps == ()

    def test_a_parent_built_for_a_selected_child_gets_its_index(self) -> None:
        plan = make(ONLINE, select="*/child:*")
        assert [s.image for s in plan.steps if s.op is Op.INDEX] == ["parent", "child"]


class TestRefusals:
    def test_a_parent_lacking_a_platform(self) -> None:
        tree = tree_of(Config(registry=R, base_images=(BASE,)), child_control="Platforms: " + ARM64)
        with pytest.raises(DockerPkgError) as caught:
            make(ONLINE, tree, Config(registry=R, base_images=(BASE,)))
        assert str(caught.value.problems[0]) == (
            "child/control:2: error: image 'child' is built for linux/arm64, but its parent "
            "'parent' is not (its platforms: none)"
        )

    def test_a_bad_control_platform_is_an_error_at_its_line(self) -> None:
        with pytest.raises(DockerPkgError) as caught:
            tree_of(child_control="Platforms: linux/amd64,\n linux/arm64/v8/x\n")
        assert str(caught.value.problems[0]) == (
            "child/control:4: error: Platforms: platform 'linux/arm64/v8/x' is not "
            "OS/ARCHITECTURE[/VARIANT]"
        )

    def test_a_platform_tag_too_long_for_docker_is_an_error(self) -> None:
        # A 120-character version is a valid tag; with `-armv7xxxxxxxxxx` it is not.
        version = "1." + "0" * 118
        variant = "v7" + "x" * 20
        with pytest.raises(DockerPkgError) as caught:
            make(
                ONLINE,
                tree_of(child_version=version, child_control=f"Platforms: linux/arm/{variant}\n"),
            )
        # (The parent lacking that platform is an error of its own.)
        found = [str(p) for p in caught.value.problems if "valid Docker tag" in str(p)]
        assert len(found) == 1
        assert found[0].startswith(f"child/control:3: error: image 'child' version tag '{version}'")
        assert "not a valid Docker tag" in found[0]
        # The config's platforms: at the changelog, whose version makes the tag.
        config = Config(registry=R, base_images=(BASE,), platforms=(f"linux/arm/{variant}",))
        with pytest.raises(DockerPkgError) as caught:
            make(ONLINE, tree_of(config, child_version=version), config)
        assert [str(p).split(" error: ")[0] for p in caught.value.problems] == ["child/changelog:"]

    def test_control_platforms_replace_the_configs(self) -> None:
        config = Config(registry=R, base_images=(BASE,), platforms=(AMD64, ARM64))
        tree = tree_of(config, child_control="Platforms: linux/aarch64\n")
        builds = [s.image for s in make(ONLINE, tree).steps if s.op is Op.BUILD]
        assert builds == ["parent:amd64", "parent:arm64", "child:arm64"]

    def test_a_platform_the_daemon_cannot_build(self) -> None:
        observed = attrs.evolve(ONLINE, emulated=frozenset())
        with pytest.raises(DockerPkgError, match=r"no builder can build linux/arm64 \(image "):
            make(observed)
        # Platforms the child's control asks for: the error is at that file.
        config = Config(registry=R, base_images=(BASE,))
        parent, child = sources(child_control=f"Platforms: {ARM64}\n")
        parent = attrs.evolve(parent, control=f"{parent.control}Platforms: {ARM64}\n")
        tree = load_tree(Snapshot(images=(parent, child)), config)
        with pytest.raises(DockerPkgError) as caught:
            make(observed, tree, config)
        assert str(caught.value.problems[0]).startswith(
            "parent/control: error: no builder can build linux/arm64 (image 'parent:arm64')"
        )

    def test_unknown_daemon_platform_is_a_note(self) -> None:
        plan = make(attrs.evolve(ONLINE, daemon_platform=None))
        assert any("was not checked" in note for note in plan.notes)

    def test_a_base_lacking_a_platform(self) -> None:
        observed = attrs.evolve(ONLINE, base_platforms={BASE: {AMD64: digest(7)}})
        with pytest.raises(DockerPkgError) as caught:
            make(observed)
        assert str(caught.value.problems[0]).startswith(
            f"parent/Dockerfile.template: error: base image {BASE} has no linux/arm64 image"
        )


class TestPinBases:
    def test_each_platform_pinned_to_its_own_digest(self) -> None:
        config = attrs.evolve(CONFIG, pin_bases=True)
        observed = attrs.evolve(ONLINE, base_platforms={BASE: {AMD64: digest(7), ARM64: digest(8)}})
        plan = make(observed, tree_of(config), config)
        arm = plan.image("parent:arm64")
        assert arm.pins == {f"{BASE}-arm64": digest(8)}
        assert arm.dockerfile is not None
        assert arm.dockerfile.startswith(f"FROM {BASE}-arm64@{digest(8)}\n")
        pulls = {s.image: s.label for s in plan.steps if s.op is Op.PULL}
        assert pulls == {
            f"{BASE}-amd64": f"{BASE}@{digest(7)}",
            f"{BASE}-arm64": f"{BASE}@{digest(8)}",
        }


class TestBasePullsByDigest:
    def test_a_base_whose_index_is_known_is_pulled_by_digest_moving_no_tag(self) -> None:
        observed = attrs.evolve(ONLINE, base_platforms={BASE: {AMD64: digest(7), ARM64: digest(8)}})
        plan = make(observed)
        pulls = {s.image: s.label for s in plan.steps if s.op is Op.PULL}
        assert pulls == {
            f"{BASE}-amd64": f"{BASE}@{digest(7)}",
            f"{BASE}-arm64": f"{BASE}@{digest(8)}",
        }
        # The FROM line names the per-platform local name the pull gives, unpinned.
        amd = plan.image("parent:amd64").dockerfile
        assert amd is not None
        assert amd.startswith(f"FROM {BASE}-amd64\n")

    def test_offline_the_base_is_pulled_by_its_tag_for_each_platform(self) -> None:
        pulls = {s.image: s.label for s in make(Observed()).steps if s.op is Op.PULL}
        assert pulls == {f"{BASE}-amd64": BASE, f"{BASE}-arm64": BASE}


class TestCopyFromAParent:
    def test_copy_from_and_mounts_name_the_parents_platform_image(self) -> None:
        parent, child = sources()
        template = (
            'FROM {{ "busybox" | image_tag }}\n'
            'COPY --from={{ "parent" | image_tag }} /arch /parent-arch\n'
            'RUN --mount=type=bind,from={{ "parent" | image_tag }},target=/p cat /p/arch\n'
        )
        child = attrs.evolve(child, template=template)
        plan = make(ONLINE, load_tree(Snapshot(images=(parent, child)), CONFIG))
        arm = plan.image("child:arm64").dockerfile
        assert arm is not None
        assert f"COPY --from={PARENT}-arm64 /arch" in arm
        assert f"from={PARENT}-arm64,target=/p" in arm
        assert f"{PARENT} " not in arm
        assert f"{PARENT}," not in arm
        assert "verify:parent:arm64" in needs(plan)["build:child:arm64"]


class TestSavedPlans:
    @pytest.mark.parametrize(
        "observed", [ONLINE, COMPLETE, ARM64_MISSING], ids=["fresh", "complete", "arm64-missing"]
    )
    def test_a_saved_plan_is_derived_again(self, observed: Observed) -> None:
        tree = tree_of()
        saved = plan_from_json(plan_to_json(make(observed, tree)), "plan.json")
        derived = make(claimed_observed(saved, tree), tree)
        assert build_differences(saved, derived) == ()

    def test_a_changed_platform_list_is_a_difference(self) -> None:
        tree = tree_of()
        saved = make(ONLINE, tree)
        narrower = Config(registry=R, base_images=(BASE,), platforms=(AMD64,))
        derived = make(claimed_observed(saved, tree), tree_of(narrower), narrower)
        assert build_differences(saved, derived) != ()


class TestWithoutPlatforms:
    def test_no_step_or_image_has_a_platform(self) -> None:
        # A tree without platforms renders with the config's variables only.
        config = Config(
            registry=R, base_images=(BASE,), extra={"arch": "amd64", "platform": "mine"}
        )
        plan = make(ONLINE, tree_of(config), config)
        assert plan.image("child").dockerfile == f"FROM {PARENT}\nRUN echo native\n"
        assert all(s.platform is None for s in plan.steps)
        assert all(i.platform is None and not i.platforms for i in plan.images)
        assert '"platform' not in plan_to_json(plan)


def builders(*entries: tuple[str, tuple[str, ...]]) -> BuilderSet:
    return BuilderSet(tuple(Builder(url, 2, None, platforms) for url, platforms in entries))


class TestBuilders:
    def make_on(self, chosen: BuilderSet, observed: Observed = ONLINE) -> Plan:
        return plan_build(
            tree_of(), CONFIG, observed, directory="images", digest="d", builders=chosen
        )

    def test_declared_platforms_are_recorded_and_checked(self) -> None:
        chosen = builders(("unix:///amd", (AMD64,)), ("ssh://arm", (ARM64,)))
        plan = self.make_on(chosen, attrs.evolve(ONLINE, emulated=frozenset()))
        assert [(b.url, b.platforms) for b in plan.builders] == [
            ("unix:///amd", (AMD64,)),
            ("ssh://arm", (ARM64,)),
        ]
        assert "unix:///amd (2 slots, linux/amd64)" in plan_to_text(plan)

    def test_a_platform_no_builder_declares(self) -> None:
        chosen = builders(("unix:///a", (AMD64,)), ("ssh://b", (AMD64,)))
        with pytest.raises(DockerPkgError, match=r"no builder can build linux/arm64 \(image "):
            self.make_on(chosen)

    def test_several_builders_must_all_declare(self) -> None:
        chosen = builders(("unix:///a", (AMD64, ARM64)), ("ssh://b", ()))
        with pytest.raises(DockerPkgError, match="ssh://b does not"):
            self.make_on(chosen)

    def test_one_builder_without_platforms_is_not_checked(self) -> None:
        plan = self.make_on(builders(("ssh://b", ())))
        assert any("whether ssh://b builds" in note for note in plan.notes)


class TestFindingsPerPlatform:
    def test_drift_of_one_platform(self) -> None:
        rendered = make(COMPLETE)
        own = rendered.image("child:arm64").own_definition
        assert own is not None
        observed = attrs.evolve(
            COMPLETE, labels_read=True, recorded={f"{CHILD}-arm64": "sha256:older"}
        )
        findings = make(observed).findings
        assert [(f.image, f.label, f.reason) for f in findings] == [
            ("child:arm64", f"{CHILD}-arm64", Reason.DEFINITION_CHANGED_WITHOUT_VERSION_BUMP)
        ]

    def test_a_base_moved_for_one_platform(self) -> None:
        observed = attrs.evolve(
            COMPLETE,
            labels_read=True,
            bases={
                f"{PARENT}-amd64": {f"{BASE}-amd64": digest(7)},
                f"{PARENT}-arm64": {f"{BASE}-arm64": digest(8)},
            },
            base_platforms={BASE: {AMD64: digest(7), ARM64: digest(9)}},
        )
        findings = make(observed).findings
        assert [(f.image, f.base, f.current, f.below) for f in findings] == [
            ("parent:arm64", f"{BASE}-arm64", digest(9), ("child:arm64",))
        ]


class TestMixedTrees:
    def test_an_image_without_platforms_shares_a_base_with_one_with(self) -> None:
        plain = ImageSource(
            path="plain",
            template='FROM {{ "busybox" | image_tag }}\n',
            changelog=changelog("plain", "3.0"),
        )
        config = Config(registry=R, base_images=(BASE,))
        tree = load_tree(
            Snapshot(images=(*sources(child_control="Platforms: linux/arm64\n"), plain)), config
        )
        with pytest.raises(DockerPkgError, match="its parent 'parent' is not"):
            make(ONLINE, tree, config)
        parent_too = attrs.evolve(
            tree.images["parent"],
            spec=attrs.evolve(tree.images["parent"].spec, platforms=(ARM64,)),
        )
        tree = attrs.evolve(tree, images={**tree.images, "parent": parent_too})
        found = needs(make(ONLINE, tree, config))
        # The arm64 pull by the shared tag moves it until it ends: plain's build reads it.
        assert found["build:plain"] == (f"pull:{BASE}", f"pull:{BASE}-arm64")
        assert found["build:parent:arm64"] == (f"pull:{BASE}-arm64",)
        # Pulled by the digest its index lists for arm64, the tag never moves.
        known = attrs.evolve(ONLINE, base_platforms={BASE: {ARM64: digest(8)}})
        assert needs(make(known, tree, config))["build:plain"] == (f"pull:{BASE}",)


class TestRecheck:
    def test_a_platform_tag_pushed_since_never_drops_its_build(self) -> None:
        # An earlier run pushed parent:1.0-arm64 but never put the index: that tag is no
        # publication, and the index must list this plan's build, not what the tag holds.
        plan = make(ONLINE)
        asked = publishing_labels(plan)
        assert f"{PARENT}-arm64" not in asked
        assert PARENT not in asked
        kept, gone = without_published(plan, frozenset({f"{PARENT}-arm64", PARENT, CHILD}))
        assert (kept, gone) == (plan, ())

    def test_an_image_without_platforms_published_since_is_still_dropped(self) -> None:
        plain = ImageSource(
            path="plain",
            template='FROM {{ "busybox" | image_tag }}\n',
            changelog=changelog("plain", "3.0"),
        )
        config = Config(registry=R, base_images=(BASE,))
        parent, child = sources(child_control=f"Platforms: {AMD64}, {ARM64}\n")
        parent = attrs.evolve(parent, control=f"{parent.control}Platforms: {AMD64}, {ARM64}\n")
        tree = load_tree(Snapshot(images=(parent, child, plain)), config)
        plan = make(ONLINE, tree, config)
        plain_label = plan.image("plain").label
        assert publishing_labels(plan) == (plain_label,)
        kept, gone = without_published(plan, frozenset({plain_label}))
        assert gone == (plain_label,)
        assert [s.image for s in kept.steps if s.image == "plain"] == []


class TestOtherRuns:
    def test_offline(self) -> None:
        plan = make(Observed())
        # Without credentials nothing is pushed, so no index is put.
        assert plan.count(Op.INDEX) == 0
        assert plan.count(Op.PUBLISH) == 0
        builds = [(s.image, s.reason) for s in plan.steps if s.op is Op.BUILD]
        assert builds == [
            ("parent:amd64", Reason.OFFLINE),
            ("parent:arm64", Reason.OFFLINE),
            ("child:amd64", Reason.OFFLINE),
            ("child:arm64", Reason.OFFLINE),
        ]
        assert any("was not checked" in note for note in plan.notes)

    def test_registry_cache_imports_each_platforms_own_image(self) -> None:
        tree = tree_of(child_version="2.1")
        source = tree.images["child"].spec.source
        older = changelog("child", "2.1") + "\n" + changelog("child", "2.0")
        child = attrs.evolve(
            tree.images["child"],
            spec=attrs.evolve(
                tree.images["child"].spec, source=attrs.evolve(source, changelog=older)
            ),
        )
        tree = attrs.evolve(tree, images={**tree.images, "child": child})
        plan = make(COMPLETE, tree, cache=CacheMode.REGISTRY)
        assert plan.image("child:arm64").cache_from == (f"{R}/child:2.0-arm64",)
        assert plan.image("child").cache_from == ()


class TestMoreSavedPlans:
    def check(self, observed: Observed, config: Config = CONFIG) -> Plan:
        tree = tree_of(config)
        saved = plan_from_json(plan_to_json(make(observed, tree, config)), "plan.json")
        derived = make(claimed_observed(saved, tree), tree, config)
        assert build_differences(saved, derived) == ()
        return saved

    def test_pinned_bases(self) -> None:
        config = attrs.evolve(CONFIG, pin_bases=True)
        observed = attrs.evolve(ONLINE, base_platforms={BASE: {AMD64: digest(7), ARM64: digest(8)}})
        saved = self.check(observed, config)
        assert saved.image("parent:arm64").pins == {f"{BASE}-arm64": digest(8)}

    @pytest.mark.parametrize("child_version", ["2.0", "2.1"], ids=["arm64-missing", "bump"])
    def test_pinned_bases_of_platform_images_not_built(self, child_version: str) -> None:
        # The parent's platform images are published: no pull names their pinned bases,
        # their pins alone do.
        config = attrs.evolve(CONFIG, pin_bases=True)
        pinned = {BASE: {AMD64: digest(7), ARM64: digest(8)}}
        observed = attrs.evolve(
            ARM64_MISSING if child_version == "2.0" else COMPLETE, base_platforms=pinned
        )
        tree = tree_of(config, child_version=child_version)
        saved = plan_from_json(plan_to_json(make(observed, tree, config)), "plan.json")
        assert saved.count(Op.BUILD) == (1 if child_version == "2.0" else 2)
        assert saved.image("parent:amd64").pins == {f"{BASE}-amd64": digest(7)}
        derived = make(claimed_observed(saved, tree), tree, config)
        assert build_differences(saved, derived) == ()

    def test_a_platform_image_held_locally_without_publishing(self) -> None:
        observed = attrs.evolve(ARM64_MISSING, local=frozenset({f"{CHILD}-arm64"}))
        tree = tree_of()
        saved = plan_from_json(plan_to_json(make(observed, tree, no_publish=True)), "plan.json")
        assert saved.image("child").children[ARM64] == f"{CHILD}-arm64"
        derived = make(claimed_observed(saved, tree), tree, no_publish=True)
        assert build_differences(saved, derived) == ()

    def test_platform_images_held_by_the_daemon(self) -> None:
        # parent:arm64 built locally only, child:arm64 to build on it.
        observed = attrs.evolve(ARM64_MISSING, local=frozenset({f"{PARENT}-arm64"}))
        observed = attrs.evolve(
            observed,
            platform_digests={PARENT: {AMD64: digest(1)}, CHILD: {AMD64: digest(3)}},
        )
        saved = self.check(observed)
        assert [s[:2] for s in ops(saved)] == [
            ("verify", "parent:arm64"),
            ("publish", "parent:arm64"),
            ("index", "parent"),
            ("build", "child:arm64"),
            ("verify", "child:arm64"),
            ("publish", "child:arm64"),
            ("index", "child"),
            ("tag-latest", "parent"),
            ("tag-latest", "child"),
        ]


class TestNoPull:
    def test_the_daemons_platform_images_count_and_bases_keep_their_tag(self) -> None:
        observed = attrs.evolve(COMPLETE, local=frozenset({f"{PARENT}-amd64", f"{PARENT}-arm64"}))
        plan = make(observed, pull=False)
        assert [s[:2] for s in ops(plan) if s[0] == "build"] == [
            ("build", "child:amd64"),
            ("build", "child:arm64"),
        ]
        assert plan.count(Op.PULL) == 0
        fresh = make(ONLINE, pull=False)
        assert fresh.image("parent:arm64").dockerfile == f"FROM {BASE}\nRUN uname -m > /arch"
        child = fresh.image("child:arm64").dockerfile
        assert child is not None
        assert child.startswith(f"FROM {PARENT}-arm64\n")


class TestRecordedIndexDigests:
    def test_a_base_recorded_by_its_unchanged_index_has_not_moved(self) -> None:
        observed = attrs.evolve(
            COMPLETE,
            labels_read=True,
            bases={f"{PARENT}-arm64": {f"{BASE}-arm64": digest(10)}},
            base_digests={BASE: digest(10)},
            base_platforms={BASE: {AMD64: digest(7), ARM64: digest(8)}},
        )
        assert make(observed).findings == ()
        moved = attrs.evolve(observed, base_digests={BASE: digest(11)})
        assert [f.image for f in make(moved).findings] == ["parent:arm64"]


def test_a_reports_summary_counts_the_indexes_put() -> None:
    plan = make(ARM64_MISSING)
    outcomes = tuple(StepOutcome(step, Outcome.SUCCEEDED, 0.0, 0.5) for step in plan.steps)
    report = Report(outcomes=outcomes, elapsed=1.0, run_dir="/run")
    logs = {s["image"]: s["log"] for s in report_to_data(report, plan)["steps"]}
    # A platform image's log file has no `:` in its name.
    assert logs["child:arm64"] == "/run/child@arm64.log"
    assert logs["child"] == "/run/child.log"
    assert summary_line(report) == (
        "Done: 1 built, 1 verified, 1 published, 1 indexed, 1 latest set, 0 failed, 0 skipped"
        " in 1.0s."
    )
    assert report_table(report).splitlines()[0].split() == [
        "image",
        "result",
        "pull",
        "build",
        "verify",
        "publish",
        "index",
        "tag-latest",
    ]
