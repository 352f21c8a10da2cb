"""Build stages with the real daemon and a real registry: Dockerfile.build.template builds an
image whose /build becomes build/ in the image's build context, and nothing of it remains.

The world (a registry holding the busybox base image, unique image names, cleanup) is the one
of test_build.py. "Nothing remains" is checked as: no tag of a `-build` repository in the
daemon, no container made from an image of the test's registry (or running a command naming
the test's prefix), no layer a stage build made, no temporary folder of the test's images,
and no `-build` repository in the registry's catalog.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import docker
import pytest

from dockerpkg.effects import daemon
from tests.integration.test_build import (
    BASE_REPOSITORY,
    DOCKERPKG,
    FROM_BASE,
    NAMESPACE,
    Outcome,
    Site,
    SiteFactory,
    assert_no_traceback,
    container_output,
    leftover_contexts,
    local_tags,
    read_json,
    steps_by_key,
)
from tests.support.processes import wait_for_line
from tests.support.trees import write_config, write_image

pytestmark = pytest.mark.usefixtures("isolated_home")

PROXY = "http://proxy.invalid:3128"


def write_stage_image(
    site: Site, short: str, stage: str, final: str, files: Mapping[str, str] = {}
) -> None:
    """An image SHORT with STAGE as its Dockerfile.build.template and FINAL as its template."""
    files = {"Dockerfile.build.template": stage, **files}
    write_image(site.tree, site.name(short), "1.0", final, files=files)


def stage_tags(client: docker.DockerClient, site: Site) -> list[str]:
    return [tag for tag in local_tags(client, site.registry.host) if "-build:" in tag]


def site_containers(client: docker.DockerClient, site: Site) -> list[str]:
    """Containers, running or not, made from an image of the site's registry, or running a
    command naming the site's prefix (the intermediate containers of its builds)."""
    return [
        c["Id"]
        for c in client.api.containers(all=True)
        if str(c.get("Image", "")).startswith(f"{site.registry.host}/")
        or site.prefix in str(c.get("Command", ""))
    ]


def stage_layers(log: Path) -> list[str]:
    """IDs the stage builds of a log printed for their steps (` ---> ID`), the FROM's included."""
    found: list[str] = []
    for section in re.split(r"^== ", log.read_text(encoding="utf-8"), flags=re.MULTILINE):
        if section.startswith("build stage "):
            found += re.findall(r"^ ---> ([0-9a-f]{12,64})$", section, re.MULTILINE)
    return found


@pytest.fixture(autouse=True, params=["buildkit", "classic"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with each of the daemon's builders (DOCKER_BUILDKIT, as the docker CLI)."""
    monkeypatch.setenv("DOCKER_BUILDKIT", "1" if request.param == "buildkit" else "0")
    return str(request.param)


def step_failed(engine: str, code: int) -> str:
    """How the builder words a RUN step's exit status."""
    if engine == "buildkit":
        return f"exit code: {code}"
    return f"returned a non-zero code: {code}"


def assert_layers_gone(client: docker.DockerClient, log: Path, engine: str) -> None:
    """Every layer a stage build made is gone; only tagged images (its base) remain.

    BuildKit commits no image per step: only the stage image, checked by the callers.
    """
    if engine == "buildkit":
        assert stage_layers(log) == []
        assert re.search(r"^#\d+ \[internal\] load", log.read_text(encoding="utf-8"), re.MULTILINE)
        return
    layers = stage_layers(log)
    assert layers, log.read_text(encoding="utf-8")
    for layer in layers:
        try:
            tags = daemon.inspect(client.api, layer)["RepoTags"]
        except docker.errors.NotFound:
            continue
        assert tags, f"layer {layer} of a build stage remains"


def layers_running(client: docker.DockerClient, text: str) -> list[str]:
    """Untagged images made by a step whose command mentions TEXT."""
    found = []
    for image in client.api.images(all=True):
        if image.get("RepoTags") not in (None, [], ["<none>:<none>"]):
            continue
        try:
            config = daemon.inspect(client.api, image["Id"]).get("ContainerConfig") or {}
        except docker.errors.NotFound:  # removed meanwhile by someone else
            continue
        if text in " ".join(config.get("Cmd") or ()):
            found.append(image["Id"])
    return found


def assert_nothing_left(client: docker.DockerClient, site: Site) -> None:
    assert stage_tags(client, site) == []
    assert site_containers(client, site) == []
    assert leftover_contexts(site) == []
    assert not any(r.endswith("-build") for r in site.catalog())


class TestBuildStage:
    def test_artifact_reaches_the_image_and_the_stage_goes(
        self,
        engine: str,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site()
        hello, plain = site.name("hello"), site.name("plain")
        write_stage_image(
            site,
            "hello",
            FROM_BASE + "COPY src/ /src/\n"
            "RUN mkdir /build && echo artifact > /build/hello.txt"
            " && tr a-z A-Z < /src/greeting.txt > /build/greeting.txt"
            ' && echo "$http_proxy" > /build/proxy.txt\n',
            FROM_BASE + "COPY build/hello.txt /hello.txt\nCOPY build/ /opt/stage/\n",
            files={"src/greeting.txt": "hello from the stage\n"},
        )
        write_image(site.tree, plain, "1.0", FROM_BASE + "RUN echo plain > /plain\n")
        creds = site.credentials
        config = write_config(
            site.work / "proxy.yaml",
            site.registry,
            namespace=NAMESPACE,
            username=creds.username,
            password=creds.password,
            extra={"http_proxy": PROXY},
        )

        planned = dockerpkg("-c", config, "plan", "--json", site.tree)
        assert planned.status == 0, planned.text
        plan = json.loads(planned.out)
        stage_label = f"{site.registry.host}/{NAMESPACE}/{hello}-build:1.0"
        ops = [(s["op"], s["image"], s["label"]) for s in plan["steps"] if s["image"] == hello]
        assert ops[:2] == [
            ("build-stage", hello, stage_label),
            ("build", hello, site.label("hello", "1.0")),
        ]
        assert (
            "mkdir /build"
            in next(i for i in plan["images"] if i["name"] == hello)["build_dockerfile"]
        )

        report_path, run_dir = site.work / "report.json", site.work / "run"
        outcome = dockerpkg(
            "-c", config, "apply", "--report", report_path, "--run-dir", run_dir, site.tree
        )
        assert outcome.status == 0, outcome.text
        assert_no_traceback(outcome)
        steps = steps_by_key(read_json(report_path))
        stage = steps["build-stage", hello]
        assert stage["outcome"] == "succeeded"
        assert stage["reason"] == "build_template"
        assert stage["duration"] is not None
        assert stage["label"] == stage_label
        for op in ("build", "verify", "publish"):
            assert steps[op, hello]["outcome"] == "succeeded", op
        # The report rounds times to milliseconds: allow that much.
        assert steps["build", hello]["started"] >= stage["started"] + stage["duration"] - 0.002
        assert "build-stage" in outcome.out  # the table's column

        label = site.label("hello", "1.0")
        assert container_output(docker_client, label, "cat", "/hello.txt") == "artifact\n"
        listing = container_output(docker_client, label, "ls", "/opt/stage").split()
        assert listing == ["greeting.txt", "hello.txt", "proxy.txt"]
        shout = container_output(docker_client, label, "cat", "/opt/stage/greeting.txt")
        assert shout == "HELLO FROM THE STAGE\n"
        proxy = container_output(docker_client, label, "cat", "/opt/stage/proxy.txt")
        assert proxy == f"{PROXY}\n"
        log = (run_dir / f"{hello}.log").read_text(encoding="utf-8")
        assert f"== build stage {stage_label} from {hello}/Dockerfile.build.template" in log
        if engine == "classic":
            assert len(stage_layers(run_dir / f"{hello}.log")) == 3  # FROM, COPY, RUN
        assert_layers_gone(docker_client, run_dir / f"{hello}.log", engine)

        # The stage image is gone (its ID too), and the registry never saw it.
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(stage["detail"])
        assert_nothing_left(docker_client, site)
        assert site.catalog() == sorted(
            [BASE_REPOSITORY, f"{NAMESPACE}/{hello}", f"{NAMESPACE}/{plain}"]
        )
        assert site.tags("hello") == ["1.0", "latest"]

        # Built and published: nothing to do, and no stage either.
        again = json.loads(dockerpkg("-c", config, "plan", "--json", site.tree).out)
        assert again["steps"] == []

    def test_failed_stages_fail_their_image_only(
        self,
        engine: str,
        make_site: SiteFactory,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
    ) -> None:
        site = make_site()
        broken, empty, child, sibling = (
            site.name(n) for n in ("broken", "empty", "child", "sibling")
        )
        final = FROM_BASE + "COPY build/ /opt/\n"
        write_stage_image(
            site,
            "broken",
            FROM_BASE + f"RUN echo {site.prefix} > /step\nRUN echo trying && false\n",
            final,
        )
        write_stage_image(site, "empty", FROM_BASE + "RUN echo no artifacts > /stage.txt\n", final)
        write_image(
            site.tree,
            child,
            "1.0",
            f'FROM {{{{ "{broken}" | image_tag }}}}\n',
            depends=[broken],
        )
        write_image(site.tree, sibling, "1.0", FROM_BASE + "RUN echo sibling > /sibling\n")

        report_path, run_dir = site.work / "report.json", site.work / "run"
        outcome = dockerpkg(
            "-c", site.config(), "apply", "--report", report_path, "--run-dir", run_dir, site.tree
        )
        assert outcome.status == 1, outcome.text
        assert_no_traceback(outcome)
        steps = steps_by_key(read_json(report_path))

        failed = steps["build-stage", broken]
        assert failed["outcome"] == "failed"
        assert failed["error"].startswith(
            f"build stage from {broken}/Dockerfile.build.template failed: build failed:"
        )
        assert step_failed(engine, 1) in failed["error"]
        missing = steps["build-stage", empty]
        assert missing["outcome"] == "failed"
        assert missing["error"] == (
            f"build stage from {empty}/Dockerfile.build.template failed: "
            f"{site.registry.host}/{NAMESPACE}/{empty}-build:1.0 has no /build"
        )
        for name in (broken, empty):
            for op in ("build", "verify", "publish"):
                assert steps[op, name]["outcome"] == "skipped", (op, name)
                assert steps[op, name]["error"] == f"build-stage {name} failed"
        for op in ("build", "verify", "publish"):
            assert steps[op, child]["outcome"] == "skipped", op
            assert steps[op, child]["error"] == f"build-stage {broken} failed"
            assert steps[op, sibling]["outcome"] == "succeeded", op
        assert f"build-stage {broken}: build stage from {broken}/Dockerfile.build" in outcome.out

        assert site.tags("sibling") == ["1.0", "latest"]
        assert site.catalog() == sorted([BASE_REPOSITORY, f"{NAMESPACE}/{sibling}"])
        assert local_tags(docker_client, site.registry.host) == sorted(
            [site.label("sibling", "1.0"), site.label("sibling", "latest")]
        )
        assert_nothing_left(docker_client, site)
        # Not even the layer of the broken stage's first RUN, nor the empty stage's.
        if engine == "classic":
            assert len(stage_layers(run_dir / f"{broken}.log")) == 2
        for name in (broken, empty):
            assert_layers_gone(docker_client, run_dir / f"{name}.log", engine)
        assert layers_running(docker_client, site.prefix) == []


def start_apply(site: Site) -> subprocess.Popen[str]:
    run_dir = str(site.work / "run")
    return subprocess.Popen(
        [str(DOCKERPKG), "-c", str(site.config()), "apply", "--run-dir", run_dir, str(site.tree)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestInterrupted:
    """Ctrl-C during a stage: whether it finishes or is cancelled, nothing of it remains."""

    def test_stop_after_the_stage_drops_its_artifacts(
        self, engine: str, make_site: SiteFactory, docker_client: docker.DockerClient
    ) -> None:
        site = make_site()
        hello = site.name("hello")
        write_stage_image(
            site,
            "hello",
            FROM_BASE + "RUN sleep 3 && mkdir /build && echo x > /build/x\n",
            FROM_BASE + "COPY build/x /x\n",
        )
        process = start_apply(site)
        wait_for_line(process, re.escape(f"start   build-stage {hello}"))
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 130, err
        assert "stopping" in err
        assert f"done    build-stage {hello}" in err
        assert f"start   build {hello}" not in err
        assert "not started (interrupted)" in out
        assert local_tags(docker_client, site.registry.host) == []
        assert_nothing_left(docker_client, site)
        assert_layers_gone(docker_client, site.work / "run" / f"{hello}.log", engine)

    def test_cancel_during_the_stage(
        self, make_site: SiteFactory, docker_client: docker.DockerClient
    ) -> None:
        """A build ends at its next output: the stage's RUN is short, and the race between
        the daemon finishing the stage and dockerpkg removing it is part of the test."""
        site = make_site()
        hello = site.name("hello")
        write_stage_image(
            site,
            "hello",
            FROM_BASE + f"RUN echo {site.prefix} && sleep 4 && mkdir /build\n"
            f"RUN echo {site.prefix} > /build/x\n",
            FROM_BASE + "COPY build/ /opt/\n",
        )
        process = start_apply(site)
        wait_for_line(process, re.escape(f"start   build-stage {hello}"))
        time.sleep(2)  # the RUN has started
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 130, err
        assert "cancelling" in err
        assert f"cancelled build-stage {hello}" in err
        assert "Done: 0 built" in out
        # Whatever the daemon still does with the abandoned build, nothing of it stays.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert stage_tags(docker_client, site) == []
            time.sleep(0.5)
        assert local_tags(docker_client, site.registry.host) == []
        assert_nothing_left(docker_client, site)
        # The first RUN finished before the build was abandoned: its layer went too.
        assert layers_running(docker_client, site.prefix) == []
