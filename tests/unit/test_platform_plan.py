"""Build plans of a tree with platforms, from observed-state values: platform images, index
images and their steps, needs, published-when-complete, golden text, JSON and Markdown."""

from __future__ import annotations

import attrs
import pytest

from dockerpkg.core.config import Config
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import BuildOptions, Op, Plan
from dockerpkg.core.planmatch import build_differences, claimed_observed
from dockerpkg.core.planner import Observed, plan_build
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
    observed: Observed, tree: Tree | None = None, config: Config = CONFIG, **options: object
) -> Plan:
    return plan_build(
        tree or tree_of(config),
        config,
        observed,
        directory="images",
        digest="sha256:test",
        options=BuildOptions(**options),  # type: ignore[arg-type]
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
        ]

    def test_needs_follow_each_platform(self) -> None:
        found = needs(make(ONLINE))
        assert found[f"pull:{BASE}-arm64"] == ()
        assert found["build:parent:arm64"] == (f"pull:{BASE}-arm64",)
        assert found["build:child:arm64"] == ("verify:parent:arm64",)
        assert found["publish:child:arm64"] == ("verify:child:arm64", "publish:parent:arm64")
        assert found["index:child"] == ("publish:child:amd64", "publish:child:arm64")
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

    def test_control_platforms_replace_the_configs(self) -> None:
        config = Config(registry=R, base_images=(BASE,), platforms=(AMD64, ARM64))
        tree = tree_of(config, child_control="Platforms: linux/aarch64\n")
        builds = [s.image for s in make(ONLINE, tree).steps if s.op is Op.BUILD]
        assert builds == ["parent:amd64", "parent:arm64", "child:arm64"]

    def test_a_platform_the_daemon_cannot_build(self) -> None:
        observed = attrs.evolve(ONLINE, emulated=frozenset())
        with pytest.raises(DockerPkgError, match=r"no builder can build linux/arm64 \(image "):
            make(observed)

    def test_unknown_daemon_platform_is_a_note(self) -> None:
        plan = make(attrs.evolve(ONLINE, daemon_platform=None))
        assert any("was not checked" in note for note in plan.notes)

    def test_a_base_lacking_a_platform(self) -> None:
        observed = attrs.evolve(ONLINE, base_platforms={BASE: {AMD64: digest(7)}})
        with pytest.raises(DockerPkgError, match=f"base image {BASE} has no linux/arm64 image"):
            make(observed)


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


class TestSavedPlans:
    @pytest.mark.parametrize("observed", [ONLINE, COMPLETE, ARM64_MISSING], ids=str)
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
