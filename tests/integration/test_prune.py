"""`prune` against the real daemon: old versions go, current ones, nightlies asked for and
images containers use stay.

Each test builds its own images under `127.0.0.1:1/dockerpkg-prune-<random>/` (never pushed:
nothing listens there) with docker-py's classic builder, FROM the session's busybox image, and
removes every image and container it made when it ends.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import docker.errors
import pytest

from dockerpkg.cli import main
from dockerpkg.effects import daemon
from tests.support import cleanup
from tests.support.updates import write_tree

REGISTRY = "127.0.0.1:1"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config file: the tree's config is the only one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


@attrs.define
class World:
    """One test's tree and the daemon objects it made, removed at the end."""

    client: docker.DockerClient
    base_image: str
    namespace: str
    root: Path
    containers: list[str] = attrs.field(factory=list)

    @property
    def prefix(self) -> str:
        return f"{REGISTRY}/{self.namespace}"

    def ref(self, name: str, tag: str) -> str:
        return f"{self.prefix}/{name}:{tag}"

    def build(self, name: str, tag: str, parent: str | None = None) -> str:
        """Build NAME:TAG FROM PARENT (a ref; default the busybox base); returns its ID.

        Two instructions, so the image has an untagged intermediate parent, as real ones do.
        """
        dockerfile = (
            f"FROM {parent or self.base_image}\n"
            f"RUN echo '{self.namespace} {name} {tag}' > /version\n"
            f"RUN echo built >> /version\n"
        )
        stream = self.client.api.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=self.ref(name, tag),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise AssertionError(f"building {name}:{tag} failed: {chunk['error']}")
        image_id: str = daemon.inspect(self.client.api, self.ref(name, tag))["Id"]
        return image_id

    def use(self, ref: str) -> None:
        """Create (not start) a container from REF."""
        self.containers.append(self.client.api.create_container(ref, command=["true"])["Id"])

    def tags(self) -> set[str]:
        """Every tag under this test's prefix that the daemon holds."""
        return {
            tag
            for image in self.client.api.images()
            for tag in image.get("RepoTags") or ()
            if tag.startswith(self.prefix + "/")
        }

    def exists(self, image_id: str) -> bool:
        try:
            daemon.inspect(self.client.api, image_id)
        except docker.errors.ImageNotFound:
            return False
        return True

    @property
    def images(self) -> str:
        return str(self.root / "images")

    @property
    def config(self) -> str:
        return str(self.root / "config.yaml")

    def remove_all(self) -> None:
        for container in self.containers:
            self.client.api.remove_container(container, force=True)
        cleanup.remove_tags_under(self.client, self.prefix + "/")


@pytest.fixture
def world(docker_client: docker.DockerClient, busybox_base: str, tmp_path: Path) -> Iterator[World]:
    namespace = f"dockerpkg-prune-{secrets.token_hex(4)}"
    root = write_tree(
        tmp_path,
        {"base": ("1.1", []), "app": ("2.1", ["base"])},
        config=f"registry: {REGISTRY}\nnamespace: {namespace}\n",
    )
    made = World(docker_client, busybox_base, namespace, root)
    try:
        yield made
    finally:
        made.remove_all()
        assert made.tags() == set()


@attrs.frozen
class Run:
    status: int
    out: str
    err: str


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    status = main(args)
    out, err = capsys.readouterr()
    return Run(status, out, err)


def two_versions(world: World) -> dict[str, str]:
    """base 1.0 and 1.1, app 2.0 (FROM base 1.0) and 2.1 (FROM base 1.1)."""
    ids = {
        "base:1.0": world.build("base", "1.0"),
        "base:1.1": world.build("base", "1.1"),
    }
    ids["app:2.0"] = world.build("app", "2.0", world.ref("base", "1.0"))
    ids["app:2.1"] = world.build("app", "2.1", world.ref("base", "1.1"))
    return ids


class TestPrune:
    """docker-pkg's verb removes exactly the old versions, children first."""

    def test_removes_old_keeps_current(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ids = two_versions(world)
        result = run(["-c", world.config, "prune", world.images], capsys)
        assert result.status == 0, result.err
        plan_lines = [line.split()[:2] for line in result.out.splitlines()[:-1]]
        assert plan_lines == [["remove", "app"], ["remove", "base"]]
        assert world.tags() == {world.ref("base", "1.1"), world.ref("app", "2.1")}
        assert not world.exists(ids["app:2.0"])
        assert not world.exists(ids["base:1.0"])
        assert "Done: 2 removed, 0 failed, 0 skipped." in result.err

        again = run(["-c", world.config, "plan", "prune", world.images], capsys)
        assert again.out == "Plan: nothing to do.\n"

    def test_nightly_keeps_that_nightly(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        two_versions(world)
        base_nightly = world.build("base", "1.1-20261126")
        app_nightly = world.build("app", "2.1-20261126", world.ref("base", "1.1-20261126"))
        result = run(["-c", world.config, "prune", "--nightly", "20261126", world.images], capsys)
        assert result.status == 0, result.err
        assert world.tags() == {world.ref("base", "1.1-20261126"), world.ref("app", "2.1-20261126")}
        assert world.exists(base_nightly)
        assert world.exists(app_nightly)

    def test_image_in_use_is_kept_and_reported(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ids = two_versions(world)
        world.use(world.ref("base", "1.0"))
        result = run(["-c", world.config, "prune", world.images], capsys)
        assert result.status == 0, result.err
        kept = [line for line in result.out.splitlines() if line.startswith("keep")]
        assert len(kept) == 1
        assert kept[0].split()[:4] == ["keep", "base", ids["base:1.0"], "(in_use_by_container)"]
        assert "used by a container" in result.out
        assert world.tags() == {
            world.ref("base", "1.0"),
            world.ref("base", "1.1"),
            world.ref("app", "2.1"),
        }
        assert not world.exists(ids["app:2.0"])

    def test_parent_of_a_current_image_is_kept(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        world.build("base", "1.0")
        world.build("base", "1.1")
        world.build("app", "2.1", world.ref("base", "1.0"))  # built before base 1.1 existed
        result = run(["-c", world.config, "prune", world.images], capsys)
        assert result.status == 0, result.err
        assert "(needed_by_current_image)" in result.out
        assert f"{world.ref('app', '2.1')} was built from it" in result.out
        assert world.ref("base", "1.0") in world.tags()

    def test_several_tags_removed_without_force(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ids = two_versions(world)
        world.client.api.tag(ids["base:1.0"], f"{world.prefix}/base", "latest")
        result = run(["-c", world.config, "prune", world.images], capsys)
        assert result.status == 0, result.err
        assert not world.exists(ids["base:1.0"])
        assert world.tags() == {world.ref("base", "1.1"), world.ref("app", "2.1")}


class TestSavedPlan:
    """`plan prune --out` then `apply prune`: carried out as planned, or refused if stale."""

    def test_apply_saved_plan(
        self, world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        two_versions(world)
        saved = str(tmp_path / "prune.json")
        planned = run(["-c", world.config, "plan", "prune", world.images, "--out", saved], capsys)
        assert planned.out.endswith("Plan: 2 to remove.\n")
        assert len(world.tags()) == 4  # planning removes nothing
        applied = run(["-c", world.config, "apply", "prune", saved], capsys)
        assert applied.status == 0, applied.err
        assert world.tags() == {world.ref("base", "1.1"), world.ref("app", "2.1")}

    def test_stale_plan_refused(
        self, world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        two_versions(world)
        saved = str(tmp_path / "prune.json")
        run(["-c", world.config, "plan", "prune", world.images, "--out", saved], capsys)
        world.use(world.ref("app", "2.0"))
        applied = run(["-c", world.config, "apply", "prune", saved], capsys)
        assert applied.status == 1
        assert "stale plan: the daemon's images or containers changed" in applied.err
        assert len(world.tags()) == 4
