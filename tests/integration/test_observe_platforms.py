"""Observing a tree with platforms against the real daemon and a real registry: the platforms
an index under a version tag lists (and a single image's own), those of the base images, the
labels of each platform's image, the daemon's platform and what its machine emulates; and a
tree without platforms asking nothing more than it did."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import pytest
import requests

from dockerpkg.api import Workspace, load_workspace
from dockerpkg.core.definition import DEFINITION_LABEL
from dockerpkg.core.observed import Observed
from dockerpkg.core.platforms import Platform
from dockerpkg.effects import imagestore, observe
from dockerpkg.effects.observe import Observation
from tests.support import cleanup
from tests.support.faulty_registry import start_faulty_registry
from tests.support.platforms import (
    AMD64,
    ARM64,
    TwoPlatformBase,
    manifest,
    push_platform_images,
    push_two_platform_base,
    put_index,
    require_arm64_emulation,
    unavailable,
)
from tests.support.services import Registry, ServiceUnavailableError
from tests.support.trees import unique_prefix
from tests.support.updates import write_tree

BASE = "base/busybox:1.36"
TWO = (AMD64, ARM64)
pytestmark = pytest.mark.docker


@attrs.frozen
class World:
    registry: Registry
    base: TwoPlatformBase
    prefix: str
    tree_root: Path

    @property
    def app(self) -> str:
        return f"{self.prefix}/app"

    def workspace(self, platforms: tuple[str, ...] = TWO, host: str | None = None) -> Workspace:
        """The tree (one image, app 2.0 on the base) with its config asking PLATFORMS (set on
        the value: the YAML key is read elsewhere), through HOST if given."""
        config = (
            f"registry: {host or self.registry.host}\nnamespace: {self.prefix}\n"
            f"base_images:\n  - {self.registry.ref(BASE)}\n"
        )
        (self.tree_root / "config.yaml").write_text(config, encoding="utf-8")
        loaded = load_workspace(
            str(self.tree_root / "images"), str(self.tree_root / "config.yaml"), {}
        )
        return attrs.evolve(loaded, config=attrs.evolve(loaded.config, platforms=platforms))

    def digest(self, reference: str) -> str:
        return str(manifest(self.registry, self.app, reference).headers["Docker-Content-Digest"])


def observed(workspace: Workspace, *, definitions: bool = False) -> Observed:
    observation = Observation(workspace.config, None, os.environ, [], definitions=definitions)
    return observation.result(workspace.tree)


@pytest.fixture
def world(
    docker_client: docker.DockerClient, registry: Registry, tmp_path: Path
) -> Iterator[World]:
    try:
        base = push_two_platform_base(docker_client, registry, BASE)
    except ServiceUnavailableError as error:
        unavailable(error)
    prefix = unique_prefix()
    write_tree(tmp_path, {"app": ("2.0", ["busybox"])})
    try:
        yield World(registry, base, prefix, tmp_path)
    finally:
        cleanup.remove_tags_under(docker_client, f"{registry.host}/")


def test_an_index_its_bases_and_each_platforms_labels(
    world: World, docker_client: docker.DockerClient
) -> None:
    labels = {p: {DEFINITION_LABEL: f"definition of {p}"} for p in TWO}
    pushed = push_platform_images(docker_client, world.registry, world.app, "2.0", TWO, labels)
    put_index(world.registry, world.app, ["2.0"], pushed)
    workspace = world.workspace()
    seen = observed(workspace, definitions=True)
    label = f"{world.registry.host}/{world.app}:2.0"
    assert seen.platform_digests == {label: {p: world.digest(t) for p, t in pushed.items()}}
    assert seen.base_platforms == {world.base.label: dict(world.base.children)}
    assert seen.recorded == {
        f"{label}-amd64": f"definition of {AMD64}",
        f"{label}-arm64": f"definition of {ARM64}",
    }
    assert seen.published == {label}


def test_a_single_image_lists_its_own_platform(
    world: World, docker_client: docker.DockerClient
) -> None:
    pushed = push_platform_images(docker_client, world.registry, world.app, "2.0", (ARM64,))
    # The arm64 image alone under the version tag, as a single-platform push leaves it.
    put = manifest(world.registry, world.app, pushed[ARM64])
    assert put.status_code == 200
    stored = requests.put(
        f"{world.registry.url}/v2/{world.app}/manifests/2.0",
        data=put.content,
        headers={"Content-Type": put.headers["Content-Type"]},
        timeout=30,
    )
    assert stored.status_code == 201, stored.text
    workspace = world.workspace()
    seen = observed(workspace)
    label = f"{world.registry.host}/{world.app}:2.0"
    assert seen.platform_digests == {label: {ARM64: world.digest("2.0")}}


def test_the_daemons_platform_and_emulation(world: World) -> None:
    workspace = world.workspace()
    seen = observed(workspace)
    assert seen.platform_digests == {}  # app is not published
    assert seen.daemon_platform == str(Platform.of_image("linux", platform.machine(), None))
    try:
        require_arm64_emulation()
    except ServiceUnavailableError as error:
        unavailable(error)
    assert ARM64 in seen.emulated
    assert seen.daemon_platform not in seen.emulated


def test_the_daemon_answers_info_both_ways() -> None:
    fast = imagestore.connect(dict(os.environ))
    try:
        assert fast.info()["OSType"] == "linux"
    finally:
        fast.close()
    slow = imagestore.DockerPyImageStore.connect(dict(os.environ))
    try:
        assert slow.info()["Architecture"] == platform.machine()
    finally:
        slow.close()


def test_a_tree_without_platforms_asks_nothing_more(
    world: World,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pushed = push_platform_images(docker_client, world.registry, world.app, "2.0", (AMD64,))
    put_index(world.registry, world.app, ["2.0"], pushed)
    asked_daemon: list[object] = []
    real = observe.daemon_facts

    def counted(*args: object) -> object:
        asked_daemon.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(observe, "daemon_facts", counted)
    never = (world.registry.host, "(?!)", 0)
    with start_faulty_registry(tmp_path, "proxy", proxy=never) as proxy:
        plain = world.workspace((), host=proxy.host)
        seen = observed(plain)
        assert seen.published == {f"{proxy.host}/{world.app}:2.0"}
        assert seen.platform_digests == {}
        assert [r for r in proxy.requests() if not r.startswith("HEAD ") and r != "GET /v2/"] == []
        assert asked_daemon == []

        # The same tree with platforms reads the index and asks the daemon: the check above
        # could have failed.
        several = world.workspace(TWO, host=proxy.host)
        seen = observed(several)
        amd64 = world.digest(pushed[AMD64])
        assert seen.platform_digests == {f"{proxy.host}/{world.app}:2.0": {AMD64: amd64}}
        assert any(r.startswith(f"GET /v2/{world.app}/manifests/2.0") for r in proxy.requests())
        assert len(asked_daemon) == 1


def test_labels_read_only_for_the_platforms_built(
    world: World, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """The version's index lists amd64 and arm64; the image is built for arm64 only: only
    arm64's image is read for its labels."""
    labels = {p: {DEFINITION_LABEL: f"definition of {p}"} for p in TWO}
    pushed = push_platform_images(docker_client, world.registry, world.app, "2.0", TWO, labels)
    put_index(world.registry, world.app, ["2.0"], pushed)
    amd64, arm64 = world.digest(pushed[AMD64]), world.digest(pushed[ARM64])
    never = (world.registry.host, "(?!)", 0)
    with start_faulty_registry(tmp_path, "proxy", proxy=never) as proxy:
        seen = observed(world.workspace((ARM64,), host=proxy.host), definitions=True)
        label = f"{proxy.host}/{world.app}:2.0"
        assert seen.platform_digests == {label: {AMD64: amd64, ARM64: arm64}}
        assert seen.recorded == {f"{label}-arm64": f"definition of {ARM64}"}
        asked = proxy.requests()
        assert any(r.startswith(f"GET /v2/{world.app}/manifests/{arm64}") for r in asked)
        assert not [r for r in asked if amd64 in r]
