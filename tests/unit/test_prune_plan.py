"""Prune planning from literal daemon states (no Docker), and the remover against a fake daemon."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerpkg.api import Workspace, load_workspace
from dockerpkg.api.versioning import check_saved_prune
from dockerpkg.core.images import LocalImage
from dockerpkg.core.plan import Op, Plan, Reason, Step
from dockerpkg.core.prune import plan_prune
from dockerpkg.core.serialize import plan_to_text
from dockerpkg.effects.imagestore import ImageStoreError
from dockerpkg.effects.prune import remove_images
from dockerpkg.errors import DockerPkgError
from tests.support.updates import write_tree

REPO = "127.0.0.1:1/ns"


def image_id(char: str) -> str:
    return "sha256:" + char * 64


BUSYBOX = LocalImage(image_id("0"), ("dockerpkg-test/busybox:1.36",), None)
BASE_OLD = LocalImage(image_id("1"), (f"{REPO}/base:1.0",), BUSYBOX.id)
BASE_NEW = LocalImage(image_id("2"), (f"{REPO}/base:1.1",), BUSYBOX.id)
MIDDLE = LocalImage(image_id("3"), (), BASE_OLD.id)  # an intermediate layer of a build
APP_OLD = LocalImage(image_id("4"), (f"{REPO}/app:2.0",), MIDDLE.id)
APP_NEW = LocalImage(image_id("5"), (f"{REPO}/app:2.1",), BASE_NEW.id)
WORLD = (BUSYBOX, BASE_OLD, BASE_NEW, MIDDLE, APP_OLD, APP_NEW)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = write_tree(
        tmp_path_factory.mktemp("tree"),
        {"base": ("1.1", []), "app": ("2.1", ["base"])},
        config="registry: 127.0.0.1:1\nnamespace: ns\n",
    )
    return load_workspace(str(root / "images"), str(root / "config.yaml"), {})


def prune(
    workspace: Workspace,
    images: tuple[LocalImage, ...] = WORLD,
    in_use: frozenset[str] = frozenset(),
    *,
    select: str | None = None,
    nightly: str | None = None,
) -> Plan:
    return plan_prune(
        workspace.tree,
        workspace.config,
        images,
        in_use,
        select=select,
        nightly_suffix=nightly,
        directory="images",
        digest=workspace.digest,
    )


def steps(plan: Plan) -> list[tuple[str, str, str | None, Reason]]:
    return [(s.op.value, s.image, s.label, s.reason) for s in plan.steps]


class TestOldImages:
    """Images of a selected repository without the current tag go, children first."""

    def test_old_versions_removed_children_first(self, workspace: Workspace) -> None:
        plan = prune(workspace)
        assert steps(plan) == [
            ("remove", "app", APP_OLD.id, Reason.OLD_VERSION),
            ("remove", "base", BASE_OLD.id, Reason.OLD_VERSION),
        ]
        assert plan.steps[0].detail == f"444444444444 {REPO}/app:2.0"

    def test_text(self, workspace: Workspace) -> None:
        text = plan_to_text(prune(workspace, in_use=frozenset({APP_OLD.id})))
        assert text == (
            f"keep  app   {APP_OLD.id}  (in_use_by_container) "
            f"[444444444444 {REPO}/app:2.0; used by a container]\n"
            f"keep  base  {BASE_OLD.id}  (in_use_by_container) "
            f"[111111111111 {REPO}/base:1.0; parent of {REPO}/app:2.0, which a container uses]\n"
            "Plan: 2 kept.\n"
        )

    def test_nothing_old(self, workspace: Workspace) -> None:
        plan = prune(workspace, (BUSYBOX, BASE_NEW, APP_NEW))
        assert plan.steps == ()
        assert not plan.has_changes

    def test_select_limits_repositories(self, workspace: Workspace) -> None:
        plan = prune(workspace, select=f"{REPO}/base:*")
        # app is not pruned, so its old image stays, and needs the old base.
        assert steps(plan) == [("keep", "base", BASE_OLD.id, Reason.NEEDED_BY_CURRENT_IMAGE)]
        assert plan.steps[0].detail == (
            f"111111111111 {REPO}/base:1.0; {REPO}/app:2.0 was built from it"
        )
        assert [i.name for i in plan.images] == ["base"]

    def test_select_matching_nothing(self, workspace: Workspace) -> None:
        plan = prune(workspace, select="*/nothing:*")
        assert plan.steps == ()
        assert plan.notes == ("no image matches --select */nothing:*",)

    def test_every_tag_listed(self, workspace: Workspace) -> None:
        tagged = LocalImage(image_id("6"), (f"{REPO}/base:latest", f"{REPO}/base:0.9"), None)
        plan = prune(workspace, (*WORLD, tagged))
        details = [s.detail for s in plan.steps if s.label == tagged.id]
        assert details == [f"666666666666 {REPO}/base:0.9 {REPO}/base:latest"]

    def test_tag_outside_pruned_repositories_left_alone(self, workspace: Workspace) -> None:
        shared = LocalImage(image_id("6"), (f"{REPO}/base:0.9", "mine/base:keep"), None)
        plan = prune(workspace, (*WORLD, shared))
        assert shared.id not in {s.label for s in plan.steps}
        assert plan.notes == (
            "666666666666 (127.0.0.1:1/ns/base:0.9, mine/base:keep) is also tagged outside "
            "the pruned repositories: left alone",
        )


class TestNightly:
    """--nightly SUFFIX keeps VERSION-SUFFIX, as docker-pkg did, and nothing else."""

    def test_keeps_only_the_nightly(self, workspace: Workspace) -> None:
        base_nightly = LocalImage(image_id("7"), (f"{REPO}/base:1.1-20261126",), BUSYBOX.id)
        app_nightly = LocalImage(image_id("8"), (f"{REPO}/app:2.1-20261126",), base_nightly.id)
        plan = prune(workspace, (*WORLD, base_nightly, app_nightly), nightly="20261126")
        assert {(s.op, s.label) for s in plan.steps} == {
            (Op.REMOVE, APP_OLD.id),
            (Op.REMOVE, APP_NEW.id),
            (Op.REMOVE, BASE_OLD.id),
            (Op.REMOVE, BASE_NEW.id),
        }
        assert plan.options.suffix == "-20261126"

    def test_select_sees_the_nightly_label(self, workspace: Workspace) -> None:
        plan = prune(workspace, select="*:1.1-20261126", nightly="20261126")
        assert {s.image for s in plan.steps} == {"base"}


class TestKept:
    """What the daemon would refuse to remove is kept, with the reason."""

    def test_in_use(self, workspace: Workspace) -> None:
        plan = prune(workspace, in_use=frozenset({BASE_OLD.id}))
        assert steps(plan) == [
            ("remove", "app", APP_OLD.id, Reason.OLD_VERSION),
            ("keep", "base", BASE_OLD.id, Reason.IN_USE_BY_CONTAINER),
        ]

    def test_needed_by_current_image(self, workspace: Workspace) -> None:
        app_on_old_base = LocalImage(APP_NEW.id, APP_NEW.tags, BASE_OLD.id)
        world = (BUSYBOX, BASE_OLD, BASE_NEW, MIDDLE, APP_OLD, app_on_old_base)
        plan = prune(workspace, world)
        assert steps(plan) == [
            ("remove", "app", APP_OLD.id, Reason.OLD_VERSION),
            ("keep", "base", BASE_OLD.id, Reason.NEEDED_BY_CURRENT_IMAGE),
        ]
        assert plan.steps[1].detail == (
            f"111111111111 {REPO}/base:1.0; {REPO}/app:2.1 was built from it"
        )

    def test_needed_by_an_untagged_child(self, workspace: Workspace) -> None:
        leftover = LocalImage(image_id("9"), (), BASE_OLD.id)  # e.g. from a failed build
        plan = prune(workspace, (*WORLD, leftover))
        keep = plan.steps[-1]
        assert (keep.op, keep.label, keep.reason) == (
            Op.KEEP,
            BASE_OLD.id,
            Reason.NEEDED_BY_CURRENT_IMAGE,
        )
        assert keep.detail is not None
        assert keep.detail.endswith("untagged image 999999999999 was built from it")


@st.composite
def forests(draw: st.DrawFn) -> tuple[LocalImage, ...]:
    """Random local images of the two repositories, each built from an earlier one or none."""
    count = draw(st.integers(1, 12))
    images: list[LocalImage] = []
    for index in range(count):
        parent = draw(st.none() | st.sampled_from([i.id for i in images])) if images else None
        tags = draw(
            st.lists(
                st.sampled_from(
                    [f"{REPO}/{n}:{v}" for n in ("base", "app") for v in ("1.0", "1.1", "2.0")]
                ),
                max_size=2,
                unique=True,
            )
        )
        images.append(LocalImage(f"sha256:{index:064x}", tuple(tags), parent))
    return tuple(images)


class TestOrder:
    """Whatever the daemon holds, no image is removed after one of its ancestors, and no image
    with a child that stays is removed."""

    @given(forests(), st.sets(st.integers(0, 11)))
    def test_children_first(
        self, workspace: Workspace, images: tuple[LocalImage, ...], used: set[int]
    ) -> None:
        in_use = frozenset(f"sha256:{i:064x}" for i in used)
        plan = prune(workspace, images, in_use)
        parents = {i.id: i.parent for i in images}
        removed = [s.label for s in plan.steps if s.op is Op.REMOVE]
        assert not in_use.intersection(removed)
        position = {label: n for n, label in enumerate(removed)}
        for label, index in position.items():
            node = parents.get(label or "")
            while node is not None:
                assert position.get(node, len(removed)) > index
                node = parents.get(node)
        gone = set(removed)
        for image in images:
            if image.parent in gone:
                assert image.id in gone or (not image.tags and image.id not in in_use)


class FakeDaemon:
    """Enough of an ImageStore's remove_image for the remover: refuses as the daemon does."""

    def __init__(self, images: tuple[LocalImage, ...]) -> None:
        self.tags = {i.id: list(i.tags) for i in images}
        self.parents = {i.id: i.parent for i in images}
        self.calls: list[str] = []

    def remove_image(self, ref: str) -> None:
        self.calls.append(ref)
        if ref not in self.tags:
            owner = next(i for i, tags in self.tags.items() if ref in tags)
            self.tags[owner].remove(ref)
            return
        if any(parent == ref for parent in self.parents.values()):
            raise ImageStoreError("conflict: image has dependent child images")
        if len(self.tags[ref]) > 1:
            raise ImageStoreError("conflict: image is referenced in multiple repositories")
        self._delete(ref)

    def _delete(self, ref: str) -> None:
        """Delete, then the untagged parents left without children (noprune=False)."""
        parent = self.parents.pop(ref)
        del self.tags[ref]
        orphan = (
            parent in self.tags and not self.tags[parent] and parent not in self.parents.values()
        )
        if parent is not None and orphan:
            self._delete(parent)


class TestRemover:
    """The remover untags extra names, removes by ID, and skips the parents of a failure."""

    def test_untags_then_removes(self, workspace: Workspace) -> None:
        tagged = LocalImage(image_id("6"), (f"{REPO}/base:latest", f"{REPO}/base:0.9"), None)
        world = (*WORLD, tagged)
        daemon = FakeDaemon(world)
        plan = prune(workspace, world)
        results = remove_images(daemon, plan, {i.id: i for i in world})
        assert [r.error for r in results] == [None, None, None]
        assert daemon.calls[-2:] == [f"{REPO}/base:0.9", tagged.id]
        assert tagged.id not in daemon.tags

    def test_parent_of_a_failure_is_skipped(self, workspace: Workspace) -> None:
        plan = prune(workspace)
        daemon = FakeDaemon(WORLD)
        daemon.parents[image_id("a")] = APP_OLD.id  # a child appeared since the plan
        results = remove_images(daemon, plan, {i.id: i for i in WORLD})
        assert [(r.step.label, r.failed, r.skipped) for r in results] == [
            (APP_OLD.id, True, False),
            (BASE_OLD.id, False, True),
        ]
        assert daemon.calls == [APP_OLD.id]


class TestSavedPrunePlan:
    """A saved prune plan is a claim: only what planning again removes is removed."""

    def test_a_removal_added_to_the_file_is_refused(self, workspace: Workspace) -> None:
        planned = prune(workspace)
        extra = Step(Op.REMOVE, "app", Reason.OLD_VERSION, APP_NEW.id, "current app")
        hostile = attrs.evolve(planned, steps=(*planned.steps, extra))
        with pytest.raises(DockerPkgError) as caught:
            check_saved_prune(hostile, planned, "p.json")
        lines = [str(p) for p in caught.value.problems]
        assert lines[0].startswith("p.json: error: stale plan")
        assert lines[1:] == [
            f"p.json: error: app: the saved plan removes {APP_NEW.id}; planned now, it does not"
        ]
        check_saved_prune(planned, prune(workspace), "p.json")  # the plan as made is good
