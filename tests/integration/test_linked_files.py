"""Files shared through links, with the real daemon under both builders: what a link leads to
is in the image, built by the main daemon, in a build stage, and on a second builder; a link
out of the repository stops the run before anything is built.

Each site is a repository (a `.git` folder in its work folder) holding the tree `tree/` and,
beside it, the shared folder `shared/`, as trees kept inside bigger repositories are.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable

import docker
import pytest

from tests.integration.test_build import (
    FROM_BASE,
    Outcome,
    Site,
    SiteFactory,
    assert_no_traceback,
    container_output,
    read_json,
    steps_by_key,
)
from tests.integration.test_builders import second_daemon  # noqa: F401 (a fixture)
from tests.support.second_daemon import SecondDaemon
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")

# Copies every linked thing to a known place, so one run of the image shows them all.
TEMPLATE = FROM_BASE + (
    "COPY run.sh /opt/run.sh\nCOPY data /opt/data\nCOPY sibling.txt /opt/sibling.txt\n"
)


@pytest.fixture(autouse=True, params=["buildkit", "classic"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCKER_BUILDKIT", "1" if request.param == "buildkit" else "0")
    return str(request.param)


def linked_site(make_site: SiteFactory, template: str = TEMPLATE, **files: str) -> Site:
    """A site whose image `linked` links a script and a folder from shared/ beside the tree
    (the folder holds a link of its own) and a file of its sibling image `other`."""
    site = make_site()
    (site.work / ".git").mkdir()
    shared = site.work / "shared"
    (shared / "data").mkdir(parents=True)
    (shared / "run.sh").write_text("#!/bin/sh\necho shared-script-ran\n")
    (shared / "run.sh").chmod(0o755)
    (shared / "data" / "a.txt").write_text("linked-folder-content\n")
    os.symlink("../run.sh", shared / "data" / "again.sh")
    write_image(site.tree, site.name("other"), "1.0", FROM_BASE, files={"sib.txt": "sibling\n"})
    folder = write_image(site.tree, site.name("linked"), "1.0", template, files=files).path
    os.symlink("../../shared/run.sh", folder / "run.sh")
    os.symlink("../../shared/data", folder / "data")
    os.symlink(f"../{site.name('other')}/sib.txt", folder / "sibling.txt")
    return site


def assert_holds_linked_content(client: docker.DockerClient, label: str) -> None:
    assert container_output(client, label, "/opt/run.sh") == "shared-script-ran\n"
    assert container_output(client, label, "cat", "/opt/data/a.txt") == "linked-folder-content\n"
    assert container_output(client, label, "/opt/data/again.sh") == "shared-script-ran\n"
    assert container_output(client, label, "cat", "/opt/sibling.txt") == "sibling\n"
    # Content, not links: the image does not depend on where the tree was.
    listing = container_output(client, label, "find", "/opt", "-type", "l")
    assert listing == ""


def test_linked_files_and_folders_are_in_the_image(
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
) -> None:
    site = linked_site(make_site)
    outcome = dockerpkg("-c", site.config(), "build", "--run-dir", site.work / "run", site.tree)
    assert outcome.status == 0, outcome.text
    assert_no_traceback(outcome)
    assert_holds_linked_content(docker_client, site.label("linked", "1.0"))


def test_a_build_stage_sees_the_same_content(
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
) -> None:
    stage = FROM_BASE + (
        "COPY data /src/data\nCOPY run.sh /src/run.sh\n"
        "RUN mkdir /build && cat /src/data/a.txt > /build/made.txt\n"
        "RUN /src/run.sh >> /build/made.txt\n"
    )
    site = linked_site(
        make_site,
        TEMPLATE + "COPY build/made.txt /opt/made.txt\n",
        **{"Dockerfile.build.template": stage},
    )
    outcome = dockerpkg("-c", site.config(), "build", "--run-dir", site.work / "run", site.tree)
    assert outcome.status == 0, outcome.text
    label = site.label("linked", "1.0")
    assert container_output(docker_client, label, "cat", "/opt/made.txt") == (
        "linked-folder-content\nshared-script-ran\n"
    )
    assert_holds_linked_content(docker_client, label)


def test_a_link_out_of_the_repository_stops_the_run_before_any_build(
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
) -> None:
    site = linked_site(make_site)
    outside = site.work.parent / "outside.txt"
    outside.write_text("not for images\n")
    folder = site.tree / site.name("linked")
    os.symlink(os.path.relpath(outside, folder), folder / "outside.txt")
    outcome = dockerpkg("-c", site.config(), "build", "--run-dir", site.work / "run", site.tree)
    assert outcome.status == 1, outcome.text
    assert_no_traceback(outcome)
    assert f"{site.name('linked')}/outside.txt: error: symlink to '../../../outside.txt' " in (
        outcome.err
    )
    assert "leads outside the repository holding the tree" in outcome.err
    # Nothing was built, not even the image without the link.
    tags = {tag for image in docker_client.api.images() for tag in image.get("RepoTags") or ()}
    assert not [tag for tag in tags if site.prefix in tag]
    assert not (site.work / "run").exists() or not list((site.work / "run").glob("*.log"))


def test_a_second_builder_gets_the_same_content(
    make_site: SiteFactory,
    second_daemon: SecondDaemon,  # noqa: F811 (the fixture)
) -> None:
    site = linked_site(make_site)
    config = site.config()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockerpkg",
            "-c",
            str(config),
            "build",
            "--builders",
            f"{second_daemon.host}=1",
            "--run-dir",
            str(site.work / "run"),
            str(site.tree),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with contextlib.closing(second_daemon.client()) as client:
        assert_holds_linked_content(client, site.label("linked", "1.0"))


def test_a_link_retargeted_during_the_run_fails_that_image_and_publishes_nothing_of_it(
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
) -> None:
    """The parent's verification (any program of the machine would do) retargets a link of
    the child between planning and the child's build: the child's build context is not the
    one planned, so it fails, naming that, and nothing of it is built or published; the
    next run builds what the tree holds then."""
    site = make_site()
    (site.work / ".git").mkdir()
    shared = site.work / "shared"
    shared.mkdir()
    (shared / "planned.txt").write_text("planned\n")
    (shared / "other.txt").write_text("retargeted\n")
    parent, child = site.name("parent"), site.name("child")
    retarget = f'#!/bin/sh\nln -sfn ../../shared/other.txt "$(dirname "$0")/../{child}/data.txt"\n'
    write_image(site.tree, parent, "1.0", FROM_BASE, files={"test.sh": retarget})
    folder = write_image(
        site.tree,
        child,
        "1.0",
        f'FROM {{{{ "{parent}" | image_tag }}}}\nCOPY data.txt /data.txt\n',
        depends=[parent],
    ).path
    os.symlink("../../shared/planned.txt", folder / "data.txt")
    config = site.config()
    report = site.work / "report.json"
    outcome = dockerpkg("-c", config, "build", "--report", report, site.tree)
    assert outcome.status == 1, outcome.text
    assert_no_traceback(outcome)
    steps = steps_by_key(read_json(report))
    assert steps["publish", parent]["outcome"] == "succeeded"
    build = steps["build", child]
    assert build["outcome"] == "failed"
    assert build["error"].startswith(
        f"the build context is not the one planned: the files of {child} changed after planning"
    )
    assert steps["publish", child]["outcome"] != "succeeded"
    assert site.tags("child") == []
    tags = {tag for image in docker_client.api.images() for tag in image.get("RepoTags") or ()}
    assert site.label("child", "1.0") not in tags

    # The next run builds the tree as it is now, and says so in its label.
    again = dockerpkg("-c", config, "build", site.tree)
    assert again.status == 0, again.text
    label = site.label("child", "1.0")
    assert container_output(docker_client, label, "cat", "/data.txt") == "retargeted\n"
    quiet = dockerpkg("-c", config, "plan", "--detailed-exitcode", site.tree)
    assert quiet.status == 0, quiet.text
