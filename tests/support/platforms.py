"""A two-platform busybox base image in a test registry, and OCI image indexes written by hand.

The amd64 image holds this machine's /bin/busybox (busybox-static), the arm64 one the arm64
busybox-static that `scripts/services.sh up` fetches from Debian (.run/arm64/bin/busybox).
Both are built from a COPY-only Dockerfile (the applets are links made in the context, not by
running busybox), so building the arm64 one needs no emulation; running anything in it, or
in an image built on it, needs QEMU (`require_arm64_emulation`). Each is pushed under its
platform's tag (`1.36-amd64`, `1.36-arm64`) and an OCI index listing both is PUT under the
base's own tag, as a registry holds an image published for several platforms.

Test support code: it talks to the registry with requests, not through dockerpkg.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import attrs
import docker
import pytest
import requests

from tests.support.services import (
    BUSYBOX_BINARY,
    BUSYBOX_FILES,
    Registry,
    ServiceError,
    ServiceUnavailableError,
    push_image,
    tag_image,
)

__all__ = [
    "AMD64",
    "ARM64",
    "ARM64_BUSYBOX",
    "INDEX_MEDIA_TYPE",
    "Endpoint",
    "TwoPlatformBase",
    "arm64_busybox",
    "build_platform_busybox",
    "index_platforms",
    "manifest",
    "push_two_platform_base",
    "put_index",
    "require_arm64_emulation",
    "unavailable",
]

AMD64, ARM64 = "linux/amd64", "linux/arm64"
ROOT = Path(__file__).resolve().parents[2]
# Where services.sh puts it; DOCKERPKG_ARM64_BUSYBOX names another.
ARM64_BUSYBOX = ROOT / ".run" / "arm64" / "bin" / "busybox"
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        INDEX_MEDIA_TYPE,
    )
)
# Local names of the per-platform builds: kept by the daemon between tests, as BUSYBOX_TAG.
LOCAL_REPOSITORY = "dockerpkg-test/busybox-platform"
PLATFORM_DOCKERFILE = """\
FROM scratch
COPY rootfs/ /
CMD ["/bin/sh"]
"""


@attrs.frozen
class TwoPlatformBase:
    """The base image as the registry holds it: LABEL (`HOST/base/busybox:1.36`, an index)
    and each platform's manifest digest."""

    label: str
    children: Mapping[str, str]
    index_digest: str


def arm64_busybox() -> Path:
    """The arm64 busybox-static binary; ServiceUnavailableError when it was not fetched."""
    path = Path(os.environ.get("DOCKERPKG_ARM64_BUSYBOX") or ARM64_BUSYBOX)
    if not path.is_file():
        raise ServiceUnavailableError(
            f"{path} is missing: run `scripts/services.sh up` (or `qemu`) to fetch the arm64 "
            "busybox from Debian"
        )
    return path


def require_arm64_emulation() -> None:
    """ServiceUnavailableError unless arm64 binaries run here (QEMU in binfmt_misc, with the
    F flag so that they run inside containers too)."""
    try:
        lines = BINFMT_AARCH64.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    flags = next((line for line in lines if line.startswith("flags:")), "")
    if not lines or lines[0] != "enabled" or "F" not in flags:
        raise ServiceUnavailableError(
            f"arm64 is not emulated here ({BINFMT_AARCH64} not enabled with flag F): run "
            "`scripts/services.sh up` (qemu-user-static, binfmt_misc)"
        )


def unavailable(error: ServiceUnavailableError) -> NoReturn:
    """Skip the test for ERROR, or fail it under DOCKERPKG_REQUIRE_DOCKER=1 (as in CI, where
    services.sh sets everything up: these tests must run)."""
    if os.environ.get("DOCKERPKG_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{error} (DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)", pytrace=False)
    pytest.skip(str(error))


def _binary(platform: str) -> Path:
    if platform == AMD64:
        if not BUSYBOX_BINARY.is_file():
            raise ServiceUnavailableError(f"{BUSYBOX_BINARY} is missing; install busybox-static")
        return BUSYBOX_BINARY
    if platform == ARM64:
        return arm64_busybox()
    raise ValueError(f"no busybox for {platform}")


def _applets() -> list[str]:
    """The applet names busybox-static provides (the same version for both platforms)."""
    listed = subprocess.run(
        [str(BUSYBOX_BINARY), "--list"], capture_output=True, text=True, check=True
    ).stdout
    return [name for name in listed.split() if name and name != "busybox"]


def build_platform_busybox(
    client: docker.DockerClient, platform: str, labels: Mapping[str, str] | None = None
) -> str:
    """Build the busybox image for PLATFORM and return its local tag; with LABELS, an image
    of its own, returned by ID and left untagged (the daemon's cache makes both quick the
    second time)."""
    tag = f"{LOCAL_REPOSITORY}:1.36-{platform.rpartition('/')[2]}"
    with tempfile.TemporaryDirectory(prefix="dockerpkg-busybox-platform-") as context:
        rootfs = Path(context, "rootfs")
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "etc").mkdir()
        (rootfs / "tmp").mkdir()
        shutil.copy2(_binary(platform), rootfs / "bin" / "busybox")
        for applet in _applets():
            (rootfs / "bin" / applet).symlink_to("busybox")
        for name, text in BUSYBOX_FILES.items():
            (rootfs / "etc" / name).write_text(text, encoding="utf-8")
        Path(context, "Dockerfile").write_text(PLATFORM_DOCKERFILE, encoding="utf-8")
        output: list[str] = []
        built = ""
        for chunk in client.api.build(
            path=context,
            tag=None if labels else tag,
            rm=True,
            forcerm=True,
            pull=False,
            platform=platform,
            labels=dict(labels or {}),
            decode=True,
        ):
            output.append(chunk.get("stream", ""))
            built = (chunk.get("aux") or {}).get("ID", built)
            if "error" in chunk:
                raise ServiceError(f"building {tag} failed: {chunk['error']}\n{''.join(output)}")
    if labels and not built:
        raise ServiceError(f"building {tag} gave no image ID:\n{''.join(output)}")
    return built if labels else tag


def _auth(registry: Registry) -> tuple[str, str] | None:
    if registry.auth == "token":
        raise ValueError("platforms.py speaks to registries without tokens only")
    if registry.username is None or registry.password is None:
        return None
    return registry.username, registry.password


@attrs.frozen
class Endpoint:
    """Where a registry answers, as requests needs it: its URL, the login (None: anonymous)
    and what `verify=` takes (a CA file, or True)."""

    url: str
    auth: tuple[str, str] | None = None
    verify: str | bool = True

    @classmethod
    def of(cls, registry: Registry) -> Endpoint:
        return cls(registry.url, _auth(registry), registry.verify)


def manifest(registry: Registry | Endpoint, repository: str, reference: str) -> requests.Response:
    """The registry's answer to GET REPOSITORY's manifest REFERENCE (a tag or a digest)."""
    where = registry if isinstance(registry, Endpoint) else Endpoint.of(registry)
    return requests.get(
        f"{where.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": MANIFEST_ACCEPT},
        auth=where.auth,
        verify=where.verify,
        timeout=30,
    )


def put_index(
    registry: Registry | Endpoint,
    repository: str,
    tags: Sequence[str],
    children: Mapping[str, str],
) -> str:
    """PUT an OCI index under each of TAGS of REPOSITORY listing CHILDREN (platform ->
    a tag or digest of REPOSITORY); returns the index's digest."""
    where = registry if isinstance(registry, Endpoint) else Endpoint.of(registry)
    entries = []
    for platform, reference in children.items():
        child = manifest(where, repository, reference)
        child.raise_for_status()
        os_name, _, rest = platform.partition("/")
        architecture, _, variant = rest.partition("/")
        described: dict[str, object] = {"os": os_name, "architecture": architecture}
        if variant:
            described["variant"] = variant
        entries.append(
            {
                "mediaType": child.headers["Content-Type"].split(";")[0],
                "digest": child.headers["Docker-Content-Digest"],
                "size": len(child.content),
                "platform": described,
            }
        )
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries}
    ).encode()
    digest = ""
    for tag in tags:
        response = requests.put(
            f"{where.url}/v2/{repository}/manifests/{tag}",
            data=body,
            headers={"Content-Type": INDEX_MEDIA_TYPE},
            auth=where.auth,
            verify=where.verify,
            timeout=30,
        )
        if response.status_code != 201:
            raise ServiceError(
                f"PUT index {repository}:{tag}: {response.status_code} {response.text}"
            )
        digest = response.headers["Docker-Content-Digest"]
    return digest


def index_platforms(registry: Registry | Endpoint, repository: str, tag: str) -> set[str]:
    """The platforms the index under REPOSITORY:TAG lists; empty when it is not an index."""
    found = manifest(registry, repository, tag)
    if found.status_code != 200:
        return set()
    listed = found.json().get("manifests")
    if not isinstance(listed, list):
        return set()
    return {
        "/".join(
            part
            for part in (
                m["platform"].get("os"),
                m["platform"].get("architecture"),
                m["platform"].get("variant"),
            )
            if part
        )
        for m in listed
        if isinstance(m, dict) and isinstance(m.get("platform"), dict)
    }


def push_platform_images(
    client: docker.DockerClient,
    registry: Registry,
    repository: str,
    tag: str,
    platforms: Sequence[str] = (AMD64, ARM64),
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """Push the busybox image of each of PLATFORMS under REPOSITORY:TAG-ARCH (with the
    LABELS given for its platform); platform -> its tag."""
    pushed = {}
    for platform in platforms:
        local = build_platform_busybox(client, platform, (labels or {}).get(platform))
        target = f"{tag}-{platform.rpartition('/')[2]}"
        push_image(
            client, tag_image(client, local, registry.ref(f"{repository}:{target}")), registry
        )
        pushed[platform] = target
    return pushed


def push_two_platform_base(
    client: docker.DockerClient, registry: Registry, base: str = "base/busybox:1.36"
) -> TwoPlatformBase:
    """BASE in REGISTRY as an index of its amd64 and arm64 images (each also under its own
    platform tag)."""
    repository, _, tag = base.rpartition(":")
    pushed = push_platform_images(client, registry, repository, tag)
    digest = put_index(registry, repository, [tag], pushed)
    children = {
        platform: manifest(registry, repository, target).headers["Docker-Content-Digest"]
        for platform, target in pushed.items()
    }
    return TwoPlatformBase(registry.ref(base), children, digest)
