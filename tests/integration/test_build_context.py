"""The build context with the real daemon: links inside the image folder reach Docker, a link
to a config file is refused when the context is copied, even one made after planning.

Planning refuses such a link already (tests/unit/test_bad_input.py); this is the last check,
on the copy itself, for a tree changed between planning and building.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from dockerpkg import api
from dockerpkg.core.plan import Op
from dockerpkg.core.report import Outcome, Report
from dockerpkg.effects import scratch
from dockerpkg.effects.progress import LineProgress
from tests.support.trees import unique_prefix, write_image


@pytest.fixture
def image_name(docker_client: docker.DockerClient) -> Iterator[str]:
    """A name no other run uses; its images are removed afterwards."""
    name = unique_prefix() + "-context"
    yield name
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(f"{name}:1.0", force=True)


def build(
    tree: Path, tmp_path: Path, change: Callable[[], object] | None = None
) -> tuple[Report, api.Workspace]:
    """Plan TREE (offline: every image is built), call CHANGE, then apply the plan."""
    workspace = api.load_workspace(str(tree), str(tmp_path / "config.yaml"), {})
    plan = api.build_plan(workspace)
    if change is not None:
        change()
    report = api.apply_build_plan(
        plan,
        workspace,
        dict(os.environ),
        None,
        run_dir=tmp_path / "logs",
        listener=LineProgress(io.StringIO(), total=len(plan.steps)),
    )
    return report, workspace


def test_link_inside_the_folder_reaches_docker(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    image_name: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")
    folder = write_image(
        tmp_path / "tree",
        image_name,
        "1.0",
        "FROM scratch\nCOPY data/ /data/\n",
        files={"data/hello.txt": "hello\n"},
    ).path
    os.symlink("hello.txt", folder / "data" / "same.txt")
    report, _ = build(Path("tree"), tmp_path)
    assert [o.outcome for o in report.outcomes if o.step.op is Op.BUILD] == [Outcome.SUCCEEDED]
    docker_client.images.get(f"{image_name}:1.0")


def test_link_made_after_planning_is_refused_when_copying(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    image_name: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("password: not-for-docker\n", encoding="utf-8")
    folder = write_image(
        tmp_path / "tree", image_name, "1.0", "FROM scratch\nCOPY . /context/\n"
    ).path
    link = folder / "settings.yaml"
    report, _ = build(Path("tree"), tmp_path, lambda: os.symlink("../../config.yaml", link))
    (outcome,) = [o for o in report.outcomes if o.step.op is Op.BUILD]
    assert outcome.outcome is Outcome.FAILED
    assert outcome.error is not None
    assert outcome.error.startswith(
        f"refused to copy into the build context: {image_name}/settings.yaml: symlink to "
        "'../../config.yaml' leads to what may hold credentials"
    )
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{image_name}:1.0")
    assert os.readlink(link) == "../../config.yaml"


def test_a_run_removes_the_folders_killed_runs_left(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    image_name: str,
) -> None:
    """A run killed by SIGKILL leaves its build context; the next building run removes it,
    and keeps a folder whose owner still runs."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    ended = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    began = scratch.start_time(ended.pid)
    ended.communicate(b"")
    left = temp / f"dockerpkg.{ended.pid}.{began}.context-{image_name}.abcdef"
    (left / "context").mkdir(parents=True)
    (left / "context" / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    running = temp / f"dockerpkg.{os.getpid()}.{scratch.start_time(os.getpid())}.context-x.ghijkl"
    running.mkdir()
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")
    write_image(
        tmp_path / "tree", image_name, "1.0", "FROM scratch\nCOPY a.txt /\n", files={"a.txt": "a\n"}
    )
    report, _ = build(tmp_path / "tree", tmp_path)
    assert [o.outcome for o in report.outcomes if o.step.op is Op.BUILD] == [Outcome.SUCCEEDED]
    assert sorted(p.name for p in temp.iterdir()) == [running.name]
