"""A tree built for linux/amd64 and linux/arm64 (arm64 under QEMU) with `--publish
all_or_nothing`, on the real daemon and a real registry, through the CLI: each platform's
image is staged, and each image's version tag and `latest` move only in its promotion, to an
index listing every platform. A failed arm64 verification of the child moves no tag of
either image; the fixed run puts both indexes whole.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.integration.test_all_or_nothing import staging_tags
from tests.integration.test_build import NAMESPACE, Outcome, Site, SiteFactory
from tests.integration.test_platforms import (
    CHILD,
    PARENT,
    PLATFORMS_CONFIG,
    UNAME,
    builds,
    index_platforms,
    plan_steps,
    ready,
    run_on,
)
from tests.support.platforms import AMD64, ARM64, manifest
from tests.support.trees import write_image

pytestmark = pytest.mark.docker
ALL = ("--publish", "all_or_nothing")


def failing_on_arm64_while(flag: Path) -> str:
    """The child's test.sh: checks the platform's image, and fails for arm64 while FLAG
    exists (fixed without changing the image's build context, which test.sh is part of)."""
    return (
        "#!/bin/sh\nset -e\n"
        f'if [ "$DOCKERPKG_PLATFORM" = linux/arm64 ] && [ -e {flag} ]; then exit 1; fi\n'
        'got=$(docker run --rm --platform "$DOCKERPKG_PLATFORM" "$1" uname -m)\n'
        'case "$DOCKERPKG_PLATFORM" in linux/arm64) test "$got" = aarch64 ;;'
        ' *) test "$got" = x86_64 ;; esac\n'
    )


def write_tree(site: Site, flag: Path) -> Path:
    """parent on the two-platform base, child on parent; both platforms; the config."""
    parent, child = site.name("parent"), site.name("child")
    write_image(site.tree, parent, "1.0", PARENT)
    test = {"test.sh": failing_on_arm64_while(flag)}
    write_image(site.tree, child, "2.0", CHILD % parent, depends=[parent], files=test)
    config = site.config()
    with config.open("a", encoding="utf-8") as out:
        out.write(PLATFORMS_CONFIG)
    return config


def tag_status(site: Site, short: str, tag: str) -> int:
    return manifest(site.registry, f"{NAMESPACE}/{site.name(short)}", tag).status_code


def test_nothing_moves_before_every_platform_is_verified(
    make_site: SiteFactory, docker_client: docker.DockerClient, dockerpkg: Callable[..., Outcome]
) -> None:
    site = ready(make_site, docker_client)
    flag = site.work / "broken"
    flag.write_text("", encoding="utf-8")
    config = write_tree(site, flag)

    failed = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert failed.status == 1, failed.text
    assert "verification failed" in failed.text
    # Neither image's version tag nor latest exists: the parent, built and verified on
    # both platforms, is staged and waits; the child's arm64 image is not staged.
    for short, tag in (("parent", "1.0"), ("child", "2.0")):
        assert tag_status(site, short, tag) == 404, short
        assert tag_status(site, short, "latest") == 404, short
        assert tag_status(site, short, f"{tag}-arm64") == 404, short
    assert staging_tags(site, "parent") == ["1.0-amd64", "1.0-arm64"]
    assert staging_tags(site, "child") == ["2.0-amd64"]

    flag.unlink()
    fixed = dockerpkg("-c", config, "build", *ALL, site.tree)
    assert fixed.status == 0, fixed.text
    for short, tag in (("parent", "1.0"), ("child", "2.0")):
        listed = index_platforms(site, short, tag)
        assert set(listed) == {AMD64, ARM64}, short
        assert index_platforms(site, short, "latest") == listed, short
        # The index's children were copied by digest: no platform tag users could pull.
        assert tag_status(site, short, f"{tag}-arm64") == 404, short
        assert staging_tags(site, short) == [], short
    child = site.label("child", "2.0")
    for platform, machine in UNAME.items():
        ran = run_on(child, platform, "cat", "/child-arch", "/child-copy").split()
        assert ran == [machine, machine], platform

    again = plan_steps(dockerpkg, config, site)
    assert builds(again) == []
    assert [s for s in again if s["op"] not in ("pull",)] == []
