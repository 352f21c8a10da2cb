"""Image indexes against the real daemon and a real registry: one COPY-only image built for
each of two platforms (neither runs anything, so no emulation is needed), each pushed under
its platform tag, then `RegistryClient.put_index` puts the OCI index they make together;
a pull for one platform takes that platform's image, and a child the registry lacks fails
before anything is written."""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from dockerpkg.core.plan import BuildEngine
from dockerpkg.effects import daemon
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.dockerdaemon import DockerDaemon
from dockerpkg.effects.ports import BuildRequest
from dockerpkg.effects.registry import RegistryClient, RegistryError
from tests.support.cleanup import remove_tags_under
from tests.support.services import Registry

pytestmark = pytest.mark.docker

PLATFORMS = ("linux/amd64", "linux/arm64")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# The daemon wants a login with every push; the anonymous registry never asks for it.
UNUSED = Credentials("dockerpkg", "unused")


@pytest.fixture
def repository(registry: Registry, docker_client: docker.DockerClient) -> Iterator[str]:
    """A repository of its own in REGISTRY; whatever the daemon holds of it goes after."""
    name = f"{registry.host}/dockerpkg-test/index-{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        remove_tags_under(docker_client, name)
        # A pull for one platform moves the tag off the other's image, which keeps only
        # its digest.
        for image in docker_client.api.images(name):
            docker_client.api.remove_image(image["Id"], force=True)


def build_for(
    port: DockerDaemon, context: Path, label: str, platform: str, engine: BuildEngine
) -> str:
    """Build a COPY-only image of a file naming PLATFORM, for PLATFORM; its ID."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "platform").write_text(platform + "\n", encoding="utf-8")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY platform /platform\n", "utf-8")
    request = BuildRequest(
        engine=engine, use_cache=False, buildargs={}, container_limits={}, platform=platform
    )
    return port.build(context, label, request, io.StringIO(), threading.Event())


def pushed_platforms(
    port: DockerDaemon, repository: str, tmp_path: Path, engine: BuildEngine
) -> dict[str, str]:
    """Each platform's image built and pushed as REPOSITORY:1.0-SUFFIX; platform -> its ID."""
    made = {}
    for platform in PLATFORMS:
        suffix = platform.split("/")[1]
        label = f"{repository}:1.0-{suffix}"
        made[platform] = build_for(port, tmp_path / suffix, label, platform, engine)
        assert port.image_platform(label) == platform  # what the daemon's inspect records
        port.push(repository, f"1.0-{suffix}", UNUSED, io.StringIO(), threading.Event(), timeout=60)
    return made


@pytest.mark.parametrize("engine", [BuildEngine.BUILDKIT, BuildEngine.CLASSIC])
def test_an_index_of_two_platforms_is_what_a_pull_for_either_resolves(
    engine: BuildEngine,
    registry: Registry,
    repository: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    port = DockerDaemon(docker_client.api)
    made = pushed_platforms(port, repository, tmp_path, engine)
    path = repository.split("/", 1)[1]
    with RegistryClient(registry.host) as client:
        arm_digest = client.manifest_digest(path, "1.0-arm64")
        assert arm_digest is not None
        # One child by tag, one by digest: both as a plan's children may name them.
        children = [("linux/amd64", "1.0-amd64"), ("linux/arm64", arm_digest)]
        digest = client.put_index(path, ("1.0", "latest"), children)
        assert client.manifest_digest(path, "1.0") == digest
        assert client.manifest_digest(path, "latest") == digest
    answer = requests.get(
        f"{registry.url}/v2/{path}/manifests/1.0", headers={"Accept": OCI_INDEX}, timeout=10
    )
    assert answer.headers["Content-Type"] == OCI_INDEX
    index = json.loads(answer.content)
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]
    assert index["manifests"][1]["digest"] == arm_digest
    remove_tags_under(docker_client, repository)  # what is pulled next comes from the index
    for platform in reversed(PLATFORMS):
        label = f"{repository}:1.0"
        daemon.pull(docker_client.api, label, None, platform=platform, timeout=60)
        assert port.image_platform(label) == platform
        assert port.image_id(label) == made[platform]


def test_a_child_the_registry_lacks_fails_before_anything_is_written(
    registry: Registry, repository: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    port = DockerDaemon(docker_client.api)
    build_for(port, tmp_path, f"{repository}:1.0-amd64", "linux/amd64", BuildEngine.BUILDKIT)
    port.push(repository, "1.0-amd64", UNUSED, io.StringIO(), threading.Event(), timeout=60)
    path = repository.split("/", 1)[1]
    with RegistryClient(registry.host) as client:
        children = [("linux/amd64", "1.0-amd64"), ("linux/arm64", "1.0-arm64")]
        with pytest.raises(RegistryError) as raised:
            client.put_index(path, ("1.0", "latest"), children)
        assert str(raised.value) == (
            f"cannot put the image index of {path}: registry {registry.host} has no "
            f"{path}:1.0-arm64 for linux/arm64"
        )
        gone = "sha256:" + "0" * 64
        with pytest.raises(RegistryError, match=f"has no {path}@{gone} for linux/arm64"):
            client.put_index(path, ("1.0",), [("linux/arm64", gone)])
        assert client.manifest_digest(path, "1.0") is None
        assert client.manifest_digest(path, "latest") is None
        # An index is one platform's image of no index.
        digest = client.put_index(path, ("2.0",), [("linux/amd64", "1.0-amd64")])
        with pytest.raises(RegistryError, match="not one platform's image manifest"):
            client.put_index(path, ("3.0",), [("linux/amd64", digest)])
