"""The registry layer cache: a build on a machine with no local cache reuses the layers of
the image's published version (BuildKit inline cache), and without the cache it does not.

Each later build runs on a Docker daemon of its own started for it, a fresh CI machine: no
layer, no build cache. (Removing images and pruning the shared daemon's build cache instead
races the daemon's own deferred removal of the layers: a build started meanwhile can find a
layer that then goes, and fails with "failed to get layer".)"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_build import FROM_BASE, Outcome, Site
from tests.support.second_daemon import second_daemon_or_skip
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")
STEP = "RUN sleep 1 && echo layer > /layer\n"


def new_version(folder: Path, name: str, version: str) -> None:
    changelog = folder / "changelog"
    entry = (
        f"{name} ({version}) wikimedia; urgency=medium\n\n  * Next.\n\n"
        " -- Test Maintainer <maintainer@example.org>  Thu, 26 Nov 2026 11:00:00 +0000\n\n"
    )
    changelog.write_text(entry + changelog.read_text(encoding="utf-8"), encoding="utf-8")


def step_cached(log: str) -> bool:
    """Whether BuildKit took the RUN step from cache (its vertex says CACHED)."""
    match = re.search(r"^#(\d+) \[\d+/\d+\] RUN sleep 1", log, re.MULTILINE)
    assert match is not None, log
    return re.search(rf"^#{match[1]} CACHED$", log, re.MULTILINE) is not None


def test_builds_reuse_published_layers_only_with_the_cache(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Outcome]
) -> None:
    site = make_site()
    image = write_image(site.tree, site.name("app"), "1.0", FROM_BASE + STEP)
    config = site.config()
    first = dockerpkg("-c", config, "build", "--cache", "registry", site.tree)
    assert first.status == 0, first.text

    new_version(image.path, image.name, "1.1")
    plan = dockerpkg("-c", config, "plan", "--json", "--cache", "registry", site.tree)
    repository = site.label("app", "1.1").rpartition(":")[0]
    [planned] = json.loads(plan.out)["images"]
    assert planned["cache_from"] == [f"{repository}:1.0", f"{repository}:latest"]
    run_dir = site.work / "cached"
    with second_daemon_or_skip() as machine:
        cached = dockerpkg(
            "-c", config, "build", "--cache", "registry", "--builders", machine.host,
            "--run-dir", run_dir, site.tree,
        )  # fmt: skip
    assert cached.status == 0, cached.text
    assert step_cached((run_dir / f"{image.name}.log").read_text(encoding="utf-8"))

    new_version(image.path, image.name, "1.2")
    run_dir = site.work / "uncached"
    with second_daemon_or_skip() as machine:
        plain = dockerpkg(
            "-c", config, "build", "--builders", machine.host, "--run-dir", run_dir, site.tree
        )
    assert plain.status == 0, plain.text
    assert not step_cached((run_dir / f"{image.name}.log").read_text(encoding="utf-8"))
