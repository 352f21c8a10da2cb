"""One tree built for linux/amd64 and linux/arm64 (arm64 under QEMU) with the real daemon and a
real registry, through the CLI: a parent on the two-platform busybox base, a child on the
parent whose template differs per `arch`, and whose RUN copies a file the parent wrote from
`uname -m`, which proves which parent each platform's child was built on.

What is published is read from the registry's API (the index under the version tag and
`latest`); what runs is run with `docker run --platform`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.test_build import NAMESPACE, Outcome, Site, SiteFactory
from tests.support import cleanup, services
from tests.support.platforms import (
    AMD64,
    ARM64,
    INDEX_MEDIA_TYPE,
    build_platform_busybox,
    manifest,
    push_two_platform_base,
    put_index,
    require_arm64_emulation,
    unavailable,
)
from tests.support.services import ServiceUnavailableError
from tests.support.trees import write_image

pytestmark = pytest.mark.docker

PLATFORMS_CONFIG = "platforms:\n  - linux/amd64\n  - linux/arm64\n"
UNAME = {AMD64: "x86_64", ARM64: "aarch64"}
ENGINES = ("classic", "buildkit")

PARENT = """\
FROM {{ "busybox" | image_tag }}
RUN uname -m > /parent-arch
"""
CHILD = """\
FROM {{ "%s" | image_tag }}
{%% if arch == "arm64" %%}
RUN echo arm > /variant
{%% else %%}
RUN echo amd > /variant
{%% endif %%}
RUN cp /parent-arch /child-copy && uname -m > /child-arch
"""
# Verification runs once per platform, told which: it runs that platform's image.
CHILD_TEST = """\
#!/bin/sh
set -e
case "$DOCKERPKG_PLATFORM" in
    linux/arm64) want=aarch64 ;;
    linux/amd64) want=x86_64 ;;
    *) echo "DOCKERPKG_PLATFORM is '$DOCKERPKG_PLATFORM'" >&2; exit 1 ;;
esac
got=$(docker run --rm --platform "$DOCKERPKG_PLATFORM" "$1" cat /child-arch)
test "$got" = "$want"
"""


def ready(site_factory: SiteFactory, docker_client: docker.DockerClient) -> Site:
    """A site (an anonymous registry: `docker run` pulls from it without a login) whose base
    image is an index of amd64 and arm64 busybox images, on a machine that runs arm64 under
    QEMU; skipped (failed under DOCKERPKG_REQUIRE_DOCKER=1) otherwise."""
    try:
        require_arm64_emulation()
        site = site_factory("none")
        push_two_platform_base(docker_client, site.registry)
    except ServiceUnavailableError as error:
        unavailable(error)
    return site


def write_tree(site: Site, *, child_test: bool = True) -> Path:
    """The two-level tree and its config (both platforms); returns the config."""
    parent, child = site.name("parent"), site.name("child")
    write_image(site.tree, parent, "1.0", PARENT)
    files = {"test.sh": CHILD_TEST} if child_test else {}
    write_image(site.tree, child, "2.0", CHILD % parent, depends=[parent], files=files)
    config = site.config()
    with config.open("a", encoding="utf-8") as out:
        out.write(PLATFORMS_CONFIG)
    return config


def index_platforms(site: Site, short: str, tag: str) -> dict[str, str]:
    """Platform -> child digest of the index under SHORT:TAG; fails unless it is an index."""
    found = manifest(site.registry, f"{NAMESPACE}/{site.name(short)}", tag)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body.get("mediaType", found.headers["Content-Type"]) == INDEX_MEDIA_TYPE, body
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in body["manifests"]
    }


def run_on(label: str, platform: str, *command: str) -> str:
    """COMMAND's output in LABEL run for PLATFORM, pulled from the registry."""
    result = subprocess.run(
        ["docker", "run", "--rm", "--pull", "always", "--platform", platform, label, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def plan_steps(dockerpkg: Callable[..., Outcome], config: Path, site: Site) -> list[Any]:
    planned = dockerpkg("-c", config, "plan", "--json", site.tree)
    assert planned.status in (0, 2), planned.text
    steps: list[Any] = json.loads(planned.out)["steps"]
    return steps


def builds(steps: list[Any]) -> list[tuple[str, str | None]]:
    return sorted((s["image"], s.get("platform")) for s in steps if s["op"] == "build")


def test_the_base_is_an_index_each_platform_runs(
    make_site: SiteFactory, docker_client: docker.DockerClient
) -> None:
    site = ready(make_site, docker_client)
    base = site.registry.ref("base/busybox:1.36")
    docker_client.api.remove_image(base, force=True)  # the amd64 copy make_site left
    assert run_on(base, ARM64, "uname", "-m").strip() == "aarch64"
    assert run_on(base, AMD64, "uname", "-m").strip() == "x86_64"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tree_on_two_platforms(
    make_site: SiteFactory,
    docker_client: docker.DockerClient,
    dockerpkg: Callable[..., Outcome],
    engine: str,
) -> None:
    site = ready(make_site, docker_client)
    config = write_tree(site)
    built = dockerpkg("-c", config, "build", "--engine", engine, site.tree)
    assert built.status == 0, built.text

    for short, tag in (("parent", "1.0"), ("child", "2.0")):
        listed = index_platforms(site, short, tag)
        assert set(listed) == {AMD64, ARM64}
        assert index_platforms(site, short, "latest") == listed
        # Each platform's image is also under its own tag, and is what the index lists.
        for platform, digest in listed.items():
            own = f"{tag}-{platform.rpartition('/')[2]}"
            assert site.digest(short, own) == digest
    child = site.label("child", "2.0")
    for platform, machine in UNAME.items():
        ran = run_on(child, platform, "cat", "/child-arch", "/child-copy", "/variant").split()
        assert ran == [machine, machine, "arm" if platform == ARM64 else "amd"]

    again = plan_steps(dockerpkg, config, site)
    assert builds(again) == []
    assert [s for s in again if s["op"] in ("publish", "index")] == []


def test_a_platform_missing_from_the_index_is_built_alone(
    make_site: SiteFactory, docker_client: docker.DockerClient, dockerpkg: Callable[..., Outcome]
) -> None:
    site = ready(make_site, docker_client)
    config = write_tree(site, child_test=False)
    built = dockerpkg("-c", config, "build", site.tree)
    assert built.status == 0, built.text
    child = site.name("child")
    # The child's version becomes an amd64-only index (its arm64 tag is left in place: a
    # platform tag does not count as published).
    put_index(site.registry, f"{NAMESPACE}/{child}", ["2.0"], {AMD64: "2.0-amd64"})

    # The daemon still holds the arm64 image: it is verified and pushed again, not rebuilt.
    steps = plan_steps(dockerpkg, config, site)
    assert builds(steps) == []
    assert sorted((s["op"], s["image"]) for s in steps) == [
        ("index", child),
        ("publish", f"{child}:arm64"),
        ("verify", f"{child}:arm64"),
    ]
    # On a machine holding none of the tree, only the arm64 child is built.
    cleanup.remove_tags_under(docker_client, f"{site.registry.host}/{NAMESPACE}/")
    steps = plan_steps(dockerpkg, config, site)
    assert builds(steps) == [(f"{child}:arm64", ARM64)]
    assert [(s["op"], s["image"]) for s in steps if s["op"] == "index"] == [("index", child)]
    assert {s.get("platform") for s in steps if s["op"] != "index"} == {ARM64}

    rebuilt = dockerpkg("-c", config, "build", site.tree)
    assert rebuilt.status == 0, rebuilt.text
    assert set(index_platforms(site, "child", "2.0")) == {AMD64, ARM64}
    ran = run_on(site.label("child", "2.0"), ARM64, "cat", "/child-copy").strip()
    assert ran == "aarch64"


def test_the_trap_a_parent_held_locally_for_the_other_platform(
    make_site: SiteFactory, docker_client: docker.DockerClient, dockerpkg: Callable[..., Outcome]
) -> None:
    site = ready(make_site, docker_client)
    config = write_tree(site, child_test=False)
    parent = site.label("parent", "1.0")
    first = dockerpkg("-c", config, "build", "--select", parent, site.tree)
    assert first.status == 0, first.text
    # The daemon now holds the parent's amd64 image under the parent's version tag and
    # under its arm64 tag: a classic build for arm64 using either would give amd64.
    amd64 = f"{parent}-amd64"
    services.tag_image(docker_client, amd64, parent)
    services.tag_image(docker_client, amd64, f"{parent}-arm64")

    built = dockerpkg("-c", config, "build", "--engine", "classic", site.tree)
    assert built.status == 0, built.text
    ran = run_on(site.label("child", "2.0"), ARM64, "cat", "/child-copy", "/child-arch").split()
    assert ran == ["aarch64", "aarch64"]


def test_a_forged_mismatch_fails_the_build(
    make_site: SiteFactory, docker_client: docker.DockerClient, dockerpkg: Callable[..., Outcome]
) -> None:
    site = ready(make_site, docker_client)
    # An image on a local amd64-only image, named outside the tree and its bases: a classic
    # build for arm64 takes the local image as it is, and the result is amd64.
    local = build_platform_busybox(docker_client, AMD64)
    write_image(site.tree, site.name("odd"), "1.0", f"FROM {local}\nRUN true\n")
    config = site.config()
    with config.open("a", encoding="utf-8") as out:
        out.write(PLATFORMS_CONFIG)
    failed = dockerpkg("-c", config, "build", "--engine", "classic", site.tree)
    assert failed.status == 1, failed.text
    assert "built a linux/amd64 image for linux/arm64" in failed.text
    assert "Traceback" not in failed.text


# The core rewrites a parent's label to its platform label in FROM lines only: `COPY --from`
# still names the shared version label, which the daemon does not hold. The classic engine
# then fails (strict: it fails loudly once that is fixed, to drop this mark); BuildKit pulls
# the label for the build's platform, which works only when the parent's index is already in
# the registry (its index step is not among what the build waits for): a race.
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(
            "classic",
            marks=pytest.mark.xfail(strict=True, reason="COPY --from a parent: not rewritten"),
        ),
        pytest.param(
            "buildkit",
            marks=pytest.mark.xfail(strict=False, reason="COPY --from a parent: a race"),
        ),
    ],
)
def test_copy_from_a_parent_takes_its_platform(
    make_site: SiteFactory,
    docker_client: docker.DockerClient,
    dockerpkg: Callable[..., Outcome],
    engine: str,
) -> None:
    site = ready(make_site, docker_client)
    parent, other = site.name("parent"), site.name("other")
    write_image(site.tree, parent, "1.0", PARENT)
    # `other` copies the file its parent wrote from `uname -m`: per platform, that parent's.
    copy = f'COPY --from={{{{ "{parent}" | image_tag }}}} /parent-arch /copied\n'
    write_image(
        site.tree, other, "1.0", 'FROM {{ "busybox" | image_tag }}\n' + copy, depends=[parent]
    )
    config = site.config()
    with config.open("a", encoding="utf-8") as out:
        out.write(PLATFORMS_CONFIG)
    built = dockerpkg("-c", config, "build", "--engine", engine, site.tree)
    assert built.status == 0, built.text
    for platform, machine in UNAME.items():
        assert run_on(site.label("other", "1.0"), platform, "cat", "/copied").strip() == machine
