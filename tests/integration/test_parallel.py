"""Parallel runs on the real daemon: overlap, isolation, Ctrl-C, and the JSON report."""

from __future__ import annotations

import glob
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support import cleanup
from tests.support.services import Registry

CHANGELOG = (
    "{name} (1.0) wikimedia; urgency=medium\n\n  * x\n\n"
    " -- T <t@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
)


def write_tree(root: Path, images: dict[str, tuple[str | None, str]]) -> None:
    """images: name -> (parent or None for the busybox base, RUN command)."""
    for name, (parent, run) in images.items():
        folder = root / name
        folder.mkdir(parents=True)
        source = f'"{parent}"' if parent else '"busybox"'
        (folder / "Dockerfile.template").write_text(
            f"FROM {{{{ {source} | image_tag }}}}\nRUN {run}\n"
        )
        (folder / "changelog").write_text(CHANGELOG.format(name=name))
        if parent:
            (folder / "control").write_text(f"Package: {name}\nDepends: {parent}\n")


def write_config(path: Path, registry: Registry, base: str) -> Path:
    path.write_text(f"registry: {registry.host}\nbase_images:\n  - {base}\n")
    return path


def dockerpkg(*args: str) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *args]


@pytest.fixture
def cleanup_images(docker_client: docker.DockerClient, registry: Registry) -> Iterator[None]:
    yield
    cleanup.remove_tags_under(docker_client, registry.host + "/")


@pytest.mark.usefixtures("cleanup_images")
class TestParallelRun:
    """With --jobs 4, independent branches build at the same time; a failure stays local."""

    def test_branches_overlap_and_failure_is_isolated(
        self, tmp_path: Path, registry: Registry, busybox_base: str
    ) -> None:
        write_tree(
            tmp_path / "tree",
            {
                "a1": (None, "sleep 1"),
                "a2": ("a1", "sleep 1"),
                "b1": (None, "sleep 1"),
                "b2": ("b1", "false"),
                "b3": ("b2", "true"),
            },
        )
        config = write_config(tmp_path / "c.yaml", registry, busybox_base)
        report = tmp_path / "report.json"
        run = subprocess.run(
            dockerpkg(
                "-c",
                str(config),
                "apply",
                "--no-pull",
                "--jobs",
                "4",
                "--report",
                str(report),
                str(tmp_path / "tree"),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 1, run.stderr
        data = json.loads(report.read_text())
        steps = {(s["op"], s["image"]): s for s in data["steps"]}
        a1, b1 = steps[("build", "a1")], steps[("build", "b1")]
        # Both roots were running at the same moment.
        assert a1["started"] < b1["started"] + b1["duration"]
        assert b1["started"] < a1["started"] + a1["duration"]
        assert steps[("build", "b2")]["outcome"] == "failed"
        assert steps[("build", "b3")]["outcome"] == "skipped"
        assert "b2" in steps[("build", "b3")]["error"]
        assert steps[("build", "a2")]["outcome"] == "succeeded"
        assert "a2" in run.stdout
        assert "failed" in run.stdout

    def test_report_covers_every_planned_step(
        self, tmp_path: Path, registry: Registry, busybox_base: str
    ) -> None:
        write_tree(tmp_path / "tree", {"p": (None, "true"), "q": ("p", "true")})
        config = write_config(tmp_path / "c.yaml", registry, busybox_base)
        plan_file, report = tmp_path / "plan.json", tmp_path / "report.json"
        common = ["-c", str(config)]
        subprocess.run(
            dockerpkg(
                *common, "plan", "--no-pull", "--out", str(plan_file), str(tmp_path / "tree")
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            dockerpkg(*common, "apply", "--report", str(report), str(plan_file)),
            check=True,
            capture_output=True,
        )
        plan = json.loads(plan_file.read_text())
        data = json.loads(report.read_text())
        assert data["digest"] == plan["digest"]
        planned = [(s["op"], s["image"], s["reason"]) for s in plan["steps"]]
        reported = [(s["op"], s["image"], s["reason"]) for s in data["steps"]]
        assert reported == planned
        assert {s["outcome"] for s in data["steps"]} == {"succeeded"}
        for step in data["steps"]:
            assert Path(step["log"]).is_file()


def _temp_folders(prefix: str) -> set[str]:
    return set(glob.glob(str(Path(tempfile.gettempdir()) / f"dockerpkg.*-{prefix}*")))


def _start(config: Path, tree: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        dockerpkg("-c", str(config), "apply", "--no-pull", "--jobs", "1", str(tree)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(process: subprocess.Popen[str], text: str) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        if text in line:
            return
    raise AssertionError(f"never saw {text!r}")


@pytest.mark.usefixtures("cleanup_images")
class TestInterrupt:
    """Ctrl-C: running work finishes, nothing new starts, nothing is left behind, exit 130."""

    def test_ctrl_c_stops_cleanly(
        self,
        tmp_path: Path,
        registry: Registry,
        busybox_base: str,
        docker_client: docker.DockerClient,
    ) -> None:
        prefix = f"intr{uuid.uuid4().hex[:6]}"
        # The prefix in the command identifies this run's intermediate containers.
        run = f"echo {prefix} && sleep 2"
        write_tree(tmp_path / "tree", {f"{prefix}{i}": (None, run) for i in range(3)})
        config = write_config(tmp_path / "c.yaml", registry, busybox_base)
        process = _start(config, tmp_path / "tree")
        _wait_for(process, "start   build")
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "stopping" in err
        assert "not started (interrupted)" in out
        assert "1 built" in out
        assert not _temp_folders(prefix)
        leftovers = [
            c.id
            for c in docker_client.containers.list(all=True)
            if prefix in str(c.attrs["Config"])
        ]
        assert leftovers == []

    def test_second_ctrl_c_cancels_running_work(
        self, tmp_path: Path, registry: Registry, busybox_base: str
    ) -> None:
        prefix = f"canc{uuid.uuid4().hex[:6]}"
        write_tree(tmp_path / "tree", {f"{prefix}0": (None, "true"), f"{prefix}1": (None, "true")})
        # A verification that would take a minute: only cancelling ends it early.
        (tmp_path / "tree" / f"{prefix}0" / "test.sh").write_text("#!/bin/sh\nsleep 60\n")
        (tmp_path / "tree" / f"{prefix}0" / "test.sh").chmod(0o755)
        config = write_config(tmp_path / "c.yaml", registry, busybox_base)
        began = time.monotonic()
        process = _start(config, tmp_path / "tree")
        _wait_for(process, "start   verify")
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert time.monotonic() - began < 30
        assert "cancelling" in err
        assert "cancelled" in out
        assert not _temp_folders(prefix)


@pytest.mark.usefixtures("cleanup_images")
def test_info_streams_build_output(tmp_path: Path, registry: Registry, busybox_base: str) -> None:
    """--info shows each image's build output on the terminal, prefixed with its name; it is
    in the image's log file as well."""
    prefix = f"info{uuid.uuid4().hex[:6]}"
    write_tree(tmp_path / "tree", {prefix: (None, f"echo marker-{prefix}")})
    config = write_config(tmp_path / "c.yaml", registry, busybox_base)
    run_dir = tmp_path / "run"
    run = subprocess.run(
        dockerpkg(
            "-c",
            str(config),
            "--info",
            "apply",
            "--no-pull",
            "--run-dir",
            str(run_dir),
            str(tmp_path / "tree"),
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    # BuildKit's plain progress prefixes a step's output with its number: "#5 marker-...".
    assert re.search(rf"^{prefix} \| #\d+ marker-{prefix}$", run.stderr, re.MULTILINE)
    assert f"marker-{prefix}" in (run_dir / f"{prefix}.log").read_text()
