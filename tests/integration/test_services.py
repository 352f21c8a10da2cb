"""The fixtures themselves work: a real daemon, a runnable base image, real registries."""

from __future__ import annotations

import docker
import pytest
import requests

from tests.support import services
from tests.support.services import Registry, RegistryFactory

pytestmark = pytest.mark.docker

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def head_manifest(registry: Registry, name: str, tag: str, *, anonymous: bool = False) -> int:
    """The status of HEAD /v2/NAME/manifests/TAG, with the registry's credentials if any."""
    headers = {"Accept": MANIFEST_TYPES}
    auth = None
    if not anonymous and registry.auth == "htpasswd":
        auth = (registry.username or "", registry.password or "")
    if not anonymous and registry.auth == "token":
        headers["Authorization"] = "Bearer " + registry.token(f"repository:{name}:pull")
    response = requests.head(
        f"{registry.url}/v2/{name}/manifests/{tag}",
        headers=headers,
        auth=auth,
        verify=registry.verify,
        timeout=10,
    )
    return response.status_code


class TestBusyboxBase:
    """The base image builds from scratch and runs."""

    def test_runs_a_command(self, docker_client: docker.DockerClient, busybox_base: str) -> None:
        output = docker_client.containers.run(busybox_base, ["echo", "hi"], remove=True)
        assert output == b"hi\n"


class TestRegistry:
    """Registries start fresh and enforce the authentication asked for."""

    def test_anonymous_registry_answers(self, registry: Registry) -> None:
        assert head_manifest(registry, "base/busybox", "1.36") == 404
        assert registry.auth_config is None

    def test_htpasswd_needs_credentials(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd")
        anonymous = requests.get(f"{registry.url}/v2/", timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        with_credentials = requests.get(
            f"{registry.url}/v2/",
            auth=(registry.username or "", registry.password or ""),
            timeout=10,
        )
        assert with_credentials.status_code == 200

    def test_token_registry_challenges_then_accepts_a_token(
        self, registry_factory: RegistryFactory
    ) -> None:
        registry = registry_factory(auth="token")
        anonymous = requests.head(f"{registry.url}/v2/x/manifests/y", timeout=10)
        assert anonymous.status_code == 401
        challenge = anonymous.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Bearer realm="{registry.token_realm}"')
        assert 'scope="repository:x:pull"' in challenge
        assert head_manifest(registry, "x", "y") == 404

    def test_token_server_refuses_wrong_password(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="token")
        assert registry.token_realm is not None
        response = requests.get(registry.token_realm, auth=("dockerpkg", "wrong"), timeout=10)
        assert response.status_code == 401

    def test_tls_registry_is_trusted_through_its_ca(
        self, registry_factory: RegistryFactory
    ) -> None:
        registry = registry_factory(tls=True)
        assert registry.url.startswith("https://")
        assert registry.ca_path is not None
        trusted = services.DOCKER_CERTS_DIR / registry.host / "ca.crt"
        assert trusted.read_bytes() == registry.ca_path.read_bytes()
        assert head_manifest(registry, "x", "y") == 404


@pytest.mark.parametrize(
    ("auth", "tls"),
    [("none", False), ("htpasswd", False), ("token", False), ("htpasswd", True)],
)
def test_daemon_pushes_to_registry(
    docker_client: docker.DockerClient,
    busybox_base: str,
    registry_factory: RegistryFactory,
    auth: services.Auth,
    tls: bool,
) -> None:
    """The daemon can push to every kind of registry, which then serves the tag."""
    registry = registry_factory(auth=auth, tls=tls)
    target = services.tag_image(docker_client, busybox_base, registry.ref("base/busybox:1.36"))
    try:
        services.push_image(docker_client, target, registry)
    finally:
        docker_client.images.remove(target)
    assert head_manifest(registry, "base/busybox", "1.36") == 200
    if auth != "none":
        assert head_manifest(registry, "base/busybox", "1.36", anonymous=True) == 401
