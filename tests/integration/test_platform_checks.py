"""The executor's check of a built image's platform, on the real daemon: a classic build for
linux/arm64 whose FROM names a tag the daemon holds for linux/amd64 silently gives an amd64
image (the trap); the build step says so and fails. With the base held for the right
platform, the same step builds, under either engine. The images only COPY files: no
emulation is needed."""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockerpkg.core.plan import BuildEngine
from dockerpkg.core.report import Outcome
from dockerpkg.effects.dockerdaemon import DockerDaemon
from dockerpkg.effects.executor import Executor
from dockerpkg.effects.ports import BuildRequest
from tests.support.cleanup import remove_tags_under
from tests.unit.test_executor import Listener, outcomes, planned, settings_for, write_image
from tests.unit.test_executor_platforms import expanded, only, per_platform_base

pytestmark = pytest.mark.docker

HOST = "registry.example.org"
ARM = "linux/arm64"


@pytest.fixture
def prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    """A repository prefix of the test's own; whatever the daemon holds under it goes."""
    name = f"dockerpkg-test/platform-checks-{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        remove_tags_under(docker_client, name)
        remove_tags_under(docker_client, f"{HOST}/{name}")


def hold_base(port: DockerDaemon, label: str, platform: str, folder: Path) -> None:
    """The daemon holds LABEL as an image of PLATFORM (made here, not pulled)."""
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /base\n", "utf-8")
    request = BuildRequest(
        engine=BuildEngine.CLASSIC,
        use_cache=False,
        buildargs={},
        container_limits={},
        platform=platform,
    )
    port.build(folder, label, request, io.StringIO(), threading.Event())


def build_arm_base(
    tmp_path: Path, prefix: str, port: DockerDaemon, engine: BuildEngine
) -> dict[str, tuple[Outcome, str | None, str | None]]:
    """Run the build step of the tree's base for linux/arm64 on the daemon of PORT."""
    base = f"{prefix}/debian:1"
    write_image(tmp_path, "base", "FROM {{ 'debian' | image_tag }}\nCOPY changelog /\n")
    config = f"registry: {HOST}\nnamespace: {prefix}\nbase_images:\n  - {base}\n"
    (tmp_path / "config.yaml").write_text(config, "utf-8")
    workspace, plan = planned(tmp_path, engine=engine)
    platforms = expanded(plan, (ARM,), base)
    settings = settings_for(workspace, platforms, tmp_path / "run", build_engine=engine)
    executor = Executor(port, None, settings, Listener())
    return outcomes(executor.run(only(platforms, "build:base:arm64")))


def test_a_base_held_for_another_platform_fails_the_build(
    docker_client: docker.DockerClient, prefix: str, tmp_path: Path
) -> None:
    port = DockerDaemon(docker_client.api)
    local = per_platform_base(ARM, f"{prefix}/debian:1")
    hold_base(port, local, "linux/amd64", tmp_path / "held")
    found = build_arm_base(tmp_path, prefix, port, BuildEngine.CLASSIC)
    label = f"{HOST}/{prefix}/base:1.0-arm64"
    assert found["build:base:arm64"] == (
        Outcome.FAILED,
        None,
        f"built a linux/amd64 image for {ARM}: {label} "
        "(a parent or base held locally for another platform?)",
    )


@pytest.mark.parametrize("engine", [BuildEngine.CLASSIC, BuildEngine.BUILDKIT])
def test_a_base_held_for_the_platform_builds(
    engine: BuildEngine, docker_client: docker.DockerClient, prefix: str, tmp_path: Path
) -> None:
    port = DockerDaemon(docker_client.api)
    local = per_platform_base(ARM, f"{prefix}/debian:1")
    hold_base(port, local, ARM, tmp_path / "held")
    found = build_arm_base(tmp_path, prefix, port, engine)
    assert found["build:base:arm64"][0] is Outcome.SUCCEEDED, found
    assert port.image_platform(f"{HOST}/{prefix}/base:1.0-arm64") == ARM
