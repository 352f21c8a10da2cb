"""The executor on a tree with platforms, without Docker: plans of platform images and index
images (made here as literals from the planner's plan of a tree without platforms, as the
planner expands them), carried out on the in-memory daemon and registry
(tests/support/fakedaemon.py): builds and pulls for one platform, checked; verifications
told their platform; platform images published under their tag alone; the index step."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs
import pytest

from dockerpkg.api.workspace import Workspace
from dockerpkg.core.plan import Op, Plan, PlannedImage, Reason, Step, StepKey
from dockerpkg.core.platforms import Platform, platform_name, platform_tag
from dockerpkg.core.report import Outcome
from dockerpkg.core.runrules import PLATFORM_VARIABLE
from tests.support.fakedaemon import NATIVE, FakeDaemon, FakeRegistry, Manifest, digest_of
from tests.unit.test_executor import BASE, HOST, impatient, outcomes, planned, run, write_tree

PLATFORMS = ("linux/amd64", "linux/arm64")
ARM = "linux/arm64"


def per_platform_base(platform: str, base: str = BASE) -> str:
    """The local name of BASE's image for PLATFORM, as the planner names it."""
    return f"{base}-{Platform.parse(platform).suffix}"


def expanded(plan: Plan, platforms: Iterable[str] = PLATFORMS, base: str = BASE) -> Plan:
    """PLAN (base FROM the config's BASE, app FROM base), expanded as the planner expands
    a tree with PLATFORMS: platform images built, verified and pushed, one index each, then
    `latest` moved onto it."""
    chosen = [Platform.parse(p) for p in platforms]
    images: list[PlannedImage] = []
    steps: list[Step] = []
    for p in chosen:
        local = per_platform_base(str(p), base)
        steps.append(Step(Op.PULL, local, Reason.BASE_IMAGE, base, local, platform=str(p)))
    for image in plan.images:
        names = [platform_name(image.name, p) for p in chosen]
        for p, name in zip(chosen, names, strict=True):
            images.append(_platform_image(image, p, base))
            label = f"{image.label}-{p.suffix}"
            pulled = StepKey(Op.PULL, per_platform_base(str(p), base))
            parents = [StepKey(Op.VERIFY, platform_name(n, p)) for n in image.parents]
            steps += [
                Step(
                    Op.BUILD,
                    name,
                    Reason.NOT_IN_REGISTRY,
                    label,
                    needs=(pulled, *parents),
                    platform=str(p),
                ),
                Step(
                    Op.VERIFY,
                    name,
                    Reason.NOT_IN_REGISTRY,
                    label,
                    needs=(StepKey(Op.BUILD, name),),
                    missing_test=None if image.name == "app" else "base/test.sh",
                    platform=str(p),
                ),
                Step(
                    Op.PUBLISH,
                    name,
                    Reason.NOT_IN_REGISTRY,
                    label,
                    needs=(StepKey(Op.VERIFY, name),),
                    platform=str(p),
                ),
            ]
        images.append(
            attrs.evolve(
                image,
                dockerfile=None,
                own_definition=None,
                parents=tuple(names),
                platforms=tuple(str(p) for p in chosen),
                children={str(p): f"{image.label}-{p.suffix}" for p in chosen},
            )
        )
        needs = tuple(StepKey(Op.PUBLISH, n) for n in names)
        steps.append(Step(Op.INDEX, image.name, Reason.NOT_IN_REGISTRY, image.label, needs=needs))
        indexed = (StepKey(Op.INDEX, image.name),)
        steps.append(
            Step(Op.TAG_LATEST, image.name, Reason.LATEST_NOT_CURRENT, image.label, needs=indexed)
        )
    return attrs.evolve(plan, images=tuple(images), steps=tuple(steps))


def _platform_image(image: PlannedImage, platform: Platform, base: str) -> PlannedImage:
    parents = tuple(platform_name(p, platform) for p in image.parents)
    dockerfile = (image.dockerfile or "").replace(base, per_platform_base(str(platform), base))
    for parent in image.parents:
        label = f"{HOST}/ns/{parent}:1.0"
        dockerfile = dockerfile.replace(label, f"{label}-{platform.suffix}")
    return attrs.evolve(
        image,
        name=platform_name(image.name, platform),
        tag=platform_tag(image.tag, platform),
        label=f"{image.label}-{platform.suffix}",
        parents=parents,
        depends=parents,
        dockerfile=dockerfile,
        own_definition=None,  # the context check is the same as without platforms
        records=None,
        platform=str(platform),
    )


def only(plan: Plan, *keys: str) -> Plan:
    """PLAN with the steps KEYS alone, waiting for nothing."""
    kept = tuple(attrs.evolve(s, needs=()) for s in plan.steps if str(s.key) in keys)
    assert len(kept) == len(keys)
    return attrs.evolve(plan, steps=kept)


def two_platform_base() -> tuple[FakeDaemon, FakeRegistry]:
    """A daemon whose registry holds BASE for both platforms (and BASE's tag alone: amd64)."""
    registry = FakeRegistry(HOST)
    daemon = FakeDaemon(remote={BASE: digest_of("debian", NATIVE)}, registry=registry)
    daemon.remote_platforms[BASE] = {p: digest_of("debian", p) for p in PLATFORMS}
    return daemon, registry


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base (FROM the config's debian, no test) and app (FROM base, with a test.sh), as in
    test_executor."""
    return write_tree(tmp_path)


class TestAWholeRun:
    def test_every_platform_is_built_verified_pushed_and_indexed(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        plan = expanded(plan)
        daemon, registry = two_platform_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        # Each build asked for its platform, FROM its parent's image of that platform.
        built = {b.label: b for b in daemon.builds}
        app_arm = built[f"{HOST}/ns/app:1.0-arm64"]
        assert app_arm.request.platform == ARM
        assert app_arm.dockerfile.splitlines()[0] == f"FROM {HOST}/ns/base:1.0-arm64"
        assert built[f"{HOST}/ns/base:1.0-amd64"].request.platform == "linux/amd64"
        for name in ("base", "app"):
            index = registry.tags[f"ns/{name}", "1.0"]
            assert registry.tags[f"ns/{name}", "latest"] == index
            assert found[f"index:{name}"][1] == index
            children = registry.manifests[f"ns/{name}", index].children
            # The index lists each platform tag's manifest, in the plan's order.
            assert list(children) == list(PLATFORMS)
            for platform in PLATFORMS:
                suffix = Platform.parse(platform).suffix
                pushed = registry.tags[f"ns/{name}", f"1.0-{suffix}"]
                assert children[platform] == pushed
                assert registry.manifests[f"ns/{name}", pushed].platform == platform
                assert found[f"publish:{name}:{suffix}"][1] == pushed

    def test_each_platform_is_verified_with_its_label_and_told_its_platform(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        run(workspace, expanded(plan), daemon, registry, tmp_path)
        told = {argv[-1].split()[-1]: env[PLATFORM_VARIABLE] for argv, env in daemon.verified}
        assert told == {
            f"{HOST}/ns/app:1.0-amd64": "linux/amd64",
            f"{HOST}/ns/app:1.0-arm64": ARM,
        }

    def test_logs_are_named_without_colons(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        report = run(workspace, expanded(plan), daemon, registry, tmp_path)
        names = sorted(p.name for p in (tmp_path / "run").iterdir())
        assert "app@arm64.log" in names
        assert not [n for n in names if ":" in n]
        log = (tmp_path / "run" / "app@arm64.log").read_text("utf-8")
        assert f"{HOST}/ns/app:1.0-arm64: {ARM}, as asked" in log
        assert not report.failed

    def test_a_failed_verification_leaves_the_index_alone(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.exits[f"{HOST}/ns/app:1.0-arm64"] = 1
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        assert found["verify:app:arm64"][2] == "verification failed (exit 1); see app@arm64.log"
        assert found["index:app"][0] is Outcome.SKIPPED
        assert ("ns/app", "1.0") not in registry.tags
        assert ("ns/app", "1.0-amd64") in registry.tags  # pushed, but in no index


class TestTheBuiltPlatform:
    def test_an_image_of_another_platform_fails_its_build(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        label = f"{HOST}/ns/base:1.0-arm64"
        daemon.forge(label, "linux/amd64")
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        assert found["build:base:arm64"] == (
            Outcome.FAILED,
            None,
            f"built a linux/amd64 image for {ARM}: {label} "
            "(a parent or base held locally for another platform?)",
        )
        assert found["build:base:amd64"][0] is Outcome.SUCCEEDED
        skipped = ("publish:base:arm64", "build:app:arm64", "index:base", "index:app")
        assert {found[k][0] for k in skipped} == {Outcome.SKIPPED}
        assert ("ns/base", "1.0-arm64") not in registry.tags
        log = (tmp_path / "run" / "base@arm64.log").read_text("utf-8")
        assert f"built a linux/amd64 image for {ARM}" in log

    def test_a_variant_spelled_otherwise_is_the_same_platform(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.forge(f"{HOST}/ns/base:1.0-arm64", "linux/arm64/v8")
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        assert found["build:base:arm64"][0] is Outcome.SUCCEEDED


def test_a_build_stage_is_built_for_its_images_platform(tree: Path, tmp_path: Path) -> None:
    """What /build holds goes into one platform's image: the stage is built for it too."""
    workspace, plan = planned(tree)
    plan = expanded(plan)
    arm = platform_name("base", Platform.parse(ARM))
    images = tuple(
        attrs.evolve(i, build_dockerfile="FROM scratch\n") if i.name == arm else i
        for i in plan.images
    )
    stage = Step(Op.BUILD_STAGE, arm, Reason.BUILD_TEMPLATE, f"{HOST}/ns/base-build:1.0-arm64")
    plan = attrs.evolve(plan, images=images, steps=(attrs.evolve(stage, platform=ARM),))
    daemon, registry = two_platform_base()
    found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
    assert found[f"build-stage:{arm}"][0] is Outcome.SUCCEEDED
    [built] = daemon.builds
    assert built.request.platform == ARM


class TestPulls:
    def test_each_platforms_base_is_pulled_for_it_and_named_apart(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.pull_delay = 0.1  # long enough for two pulls to overlap, were they let
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        assert sorted(daemon.pulls) == [(BASE, p) for p in PLATFORMS]
        for platform in PLATFORMS:
            local = per_platform_base(platform)
            assert found[f"pull:{local}"][0] is Outcome.SUCCEEDED
            assert daemon.images[local] == digest_of("debian", platform)
            assert daemon.platforms[local] == platform
        # The daemon moves BASE's tag while pulling: the two pulls of it never overlapped.
        assert daemon.overlapped == set()

    def test_the_bases_own_tag_is_left_where_it_was(self, tree: Path, tmp_path: Path) -> None:
        """Images without platforms build FROM the base's own tag: a pull for a platform,
        which moves it, puts it back."""
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.images[BASE] = "sha256:held"
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        assert {k: v for k, v in found.items() if v[0] is not Outcome.SUCCEEDED} == {}
        assert daemon.images[BASE] == "sha256:held"
        assert daemon.platforms.get(BASE, NATIVE) == NATIVE
        for platform in PLATFORMS:
            assert daemon.images[per_platform_base(platform)] == digest_of("debian", platform)

    @pytest.mark.parametrize("first", PLATFORMS)
    def test_the_tag_is_put_back_whichever_platform_is_pulled_first(
        self, tree: Path, tmp_path: Path, first: str
    ) -> None:
        """The daemon held the base's own tag on the native image: a pull giving that same
        image, before or after the other platform's, leaves it there."""
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.images[BASE] = digest_of("debian", NATIVE)
        pulls = [s for s in expanded(plan).steps if s.op is Op.PULL]
        [before] = [s for s in pulls if s.platform == first]
        [after] = [s for s in pulls if s.platform != first]
        ordered = (before, attrs.evolve(after, needs=(before.key,)))
        found = outcomes(
            run(workspace, attrs.evolve(plan, steps=ordered), daemon, registry, tmp_path)
        )
        assert {k: v[0] for k, v in found.items()} == {
            str(s.key): Outcome.SUCCEEDED for s in ordered
        }
        assert daemon.images[BASE] == digest_of("debian", NATIVE)

    def test_pulls_of_other_labels_run_side_by_side(self, tree: Path, tmp_path: Path) -> None:
        """The lock is per label: it serialises nothing else."""
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        other = "docker-registry.example.org/other:1"
        daemon.remote_platforms[other] = {ARM: "sha256:other"}
        daemon.pull_delay = 0.3
        step = Step(Op.PULL, "o", Reason.BASE_IMAGE, other, f"{other}-arm64", platform=ARM)
        pulls = [s for s in expanded(plan).steps if s.op is Op.PULL] + [step]
        report = run(workspace, attrs.evolve(plan, steps=tuple(pulls)), daemon, registry, tmp_path)
        assert not report.failed
        # BASE's two pulls one after the other, `other` beside one of them.
        assert daemon.overlapped == set()
        assert daemon.most_at_once == 2

    def test_a_pull_that_gives_another_platform_fails(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        registry = FakeRegistry(HOST)
        daemon = FakeDaemon(remote={BASE: "sha256:debian"}, registry=registry)  # amd64 only
        found = outcomes(run(workspace, expanded(plan), daemon, registry, tmp_path))
        local = per_platform_base(ARM)
        assert found[f"pull:{local}"][2] == (
            f"pulled a linux/amd64 image for {ARM}: {local} "
            "(the registry holds no image of that platform under it?)"
        )
        assert found["build:base:arm64"][0] is Outcome.SKIPPED
        assert found[f"pull:{per_platform_base('linux/amd64')}"][0] is Outcome.SUCCEEDED

    def test_a_failed_pull_goes_on_with_the_platforms_local_copy_when_the_plan_says(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        local = per_platform_base(ARM)
        [step] = [s for s in expanded(plan).steps if str(s.key) == f"pull:{local}"]
        pulls = attrs.evolve(plan, steps=(attrs.evolve(step, local_copy=True),))
        daemon = FakeDaemon({BASE: "sha256:amd", local: "sha256:arm"}, registry=FakeRegistry(HOST))
        daemon.fault("pull", BASE, message=f"cannot pull {BASE}: connection refused")
        daemon.platforms[local] = ARM
        found = outcomes(
            run(workspace, pulls, daemon, daemon.registry, tmp_path, gates=impatient())
        )
        assert found[f"pull:{local}"] == (Outcome.SUCCEEDED, "local copy", None)
        # The copy held under the platform's name is checked too.
        daemon.platforms[local] = NATIVE
        found = outcomes(
            run(workspace, pulls, daemon, daemon.registry, tmp_path, gates=impatient())
        )
        assert found[f"pull:{local}"][2] == (
            f"found a linux/amd64 image for {ARM}: {local} "
            "(the daemon's own copy, taken as the pull failed)"
        )
        # Without the plan's word, no copy serves.
        found = outcomes(
            run(
                workspace,
                attrs.evolve(plan, steps=(step,)),
                daemon,
                None,
                tmp_path,
                gates=impatient(),
            )
        )
        assert found[f"pull:{local}"][2] == f"cannot pull {BASE}: connection refused"

    def test_a_parent_is_pulled_by_its_platforms_digest(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        digest = "sha256:" + "a" * 64
        by_digest = f"{HOST}/ns/base@{digest}"
        daemon.remote_platforms[by_digest] = {ARM: "sha256:base-arm"}
        named = f"{HOST}/ns/base:1.0-arm64"
        step = Step(
            Op.PULL, "base:arm64", Reason.PUBLISHED_DEPENDENCY, by_digest, named, platform=ARM
        )
        found = outcomes(
            run(workspace, attrs.evolve(plan, steps=(step,)), daemon, registry, tmp_path)
        )
        assert found["pull:base:arm64"][0] is Outcome.SUCCEEDED
        assert daemon.images[named] == "sha256:base-arm"
        assert daemon.platforms[named] == ARM
        # Not an earlier run's staging: no build identity is asked of the registry.
        assert not [c for c in registry.calls if c[0] == "image_labels"]


class TestPublishing:
    LABEL = f"{HOST}/ns/base:1.0-arm64"

    def built(self, tree: Path) -> tuple[Workspace, Plan, FakeDaemon, FakeRegistry]:
        """The expanded plan of TREE, and a daemon holding base's arm64 image, built."""
        workspace, plan = planned(tree)
        daemon, registry = two_platform_base()
        daemon.images[self.LABEL] = "sha256:built"
        return workspace, expanded(plan), daemon, registry

    def test_a_platform_image_is_pushed_under_its_tag_and_latest_stays(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan, daemon, registry = self.built(tree)
        daemon.platforms[self.LABEL] = ARM
        found = outcomes(
            run(workspace, only(plan, "publish:base:arm64"), daemon, registry, tmp_path)
        )
        pushed = registry.tags["ns/base", "1.0-arm64"]
        assert found["publish:base:arm64"] == (Outcome.SUCCEEDED, pushed, None)
        assert set(registry.tags) == {("ns/base", "1.0-arm64")}
        assert not [t for c, t in daemon.calls if c == "tag"]  # no local latest either

    def test_a_platform_tag_with_other_content_is_pushed_over(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan, daemon, registry = self.built(tree)
        registry.put("ns/base", "1.0-arm64", Manifest("sha256:an-earlier-build"))
        publish = only(plan, "publish:base:arm64")
        found = outcomes(run(workspace, publish, daemon, registry, tmp_path))
        assert found["publish:base:arm64"][0] is Outcome.SUCCEEDED
        held = registry.tags["ns/base", "1.0-arm64"]
        assert registry.manifests["ns/base", held].config == "sha256:built"
        again = outcomes(run(workspace, publish, daemon, registry, tmp_path))
        assert again["publish:base:arm64"][1] == held
        # The same content: not pushed again.
        assert daemon.calls.count(("push", self.LABEL)) == 1


class TestTheIndexStep:
    def index_plan(self, tree: Path, children: dict[str, str]) -> tuple[Workspace, Plan]:
        workspace, plan = planned(tree)
        full = only(expanded(plan), "index:base")
        images = tuple(
            attrs.evolve(i, children=children) if i.name == "base" else i for i in full.images
        )
        return workspace, attrs.evolve(full, images=images)

    def test_children_by_tag_or_digest_in_the_platforms_order(
        self, tree: Path, tmp_path: Path
    ) -> None:
        registry = FakeRegistry(HOST)
        amd = registry.put("ns/base", "1.0-amd64", Manifest("sha256:amd", platform=NATIVE))
        arm = registry.put("ns/base", "old-arm", Manifest("sha256:arm", platform=ARM))
        children = {ARM: f"{HOST}/ns/base@{arm}", "linux/amd64": f"{HOST}/ns/base:1.0-amd64"}
        workspace, plan = self.index_plan(tree, children)
        daemon = FakeDaemon(registry=registry)
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        index = registry.tags["ns/base", "1.0"]
        assert found["index:base"] == (Outcome.SUCCEEDED, index, None)
        # The index step puts the version tag only: `latest` is the planner's to move.
        assert ("ns/base", "latest") not in registry.tags
        assert dict(registry.manifests["ns/base", index].children) == {
            "linux/amd64": amd,
            ARM: arm,
        }
        assert ("put_index", "ns/base", "1.0") in registry.calls
        assert daemon.calls == []  # the registry alone

    def test_a_child_the_registry_lacks_fails_and_moves_nothing(
        self, tree: Path, tmp_path: Path
    ) -> None:
        registry = FakeRegistry(HOST)
        registry.put("ns/base", "1.0-amd64", Manifest("sha256:amd", platform=NATIVE))
        children = {p: f"{HOST}/ns/base:1.0-{Platform.parse(p).suffix}" for p in PLATFORMS}
        workspace, plan = self.index_plan(tree, children)
        found = outcomes(run(workspace, plan, FakeDaemon(registry=registry), registry, tmp_path))
        assert found["index:base"][2] == (
            f"cannot put the image index of {HOST}/ns/base:1.0: registry {HOST} has no "
            f"ns/base:1.0-arm64 for {ARM}"
        )
        assert set(registry.tags) == {("ns/base", "1.0-amd64")}

    def test_children_the_plan_cannot_give(self, tree: Path, tmp_path: Path) -> None:
        registry = FakeRegistry(HOST)
        workspace, plan = self.index_plan(tree, {"linux/amd64": f"{HOST}/ns/base:1.0-amd64"})
        found = outcomes(run(workspace, plan, FakeDaemon(registry=registry), registry, tmp_path))
        assert found["index:base"][2] == f"the plan names no {ARM} image for the index of base"
        children = dict.fromkeys(PLATFORMS, f"{HOST}/ns/other:1.0")
        workspace, plan = self.index_plan(tree, children)
        found = outcomes(run(workspace, plan, FakeDaemon(registry=registry), registry, tmp_path))
        assert found["index:base"][2] == (
            f"the linux/amd64 image {HOST}/ns/other:1.0 of base is not in its repository"
        )
        assert registry.tags == {}

    def test_a_registry_that_refuses_the_index(self, tree: Path, tmp_path: Path) -> None:
        registry = FakeRegistry(HOST)
        registry.fail("put_index", "answered HTTP 400")
        children = {p: f"{HOST}/ns/base:1.0-{Platform.parse(p).suffix}" for p in PLATFORMS}
        workspace, plan = self.index_plan(tree, children)
        found = outcomes(run(workspace, plan, FakeDaemon(registry=registry), registry, tmp_path))
        assert found["index:base"][2] == (
            f"cannot put the image index of {HOST}/ns/base:1.0: answered HTTP 400"
        )
