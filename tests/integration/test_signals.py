"""SIGTERM and Ctrl-C sent to a real `python -m dockerpkg` in the middle of its work.

apply: SIGTERM cancels running builds at once; the report of what was done is printed; no
temporary folder or build container is left; exit 143 (Ctrl-C is tests/integration/
test_parallel.py's). update: no changelog is ever half-written or left staged; the message says
what the files hold; exit 130 or 143.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockerpkg.effects.changelogs import TEMP_NAME
from tests.support import cleanup
from tests.support.processes import build_steps
from tests.support.services import Registry
from tests.support.trees import unique_prefix, write_image
from tests.support.updates import write_tree as write_update_tree


def dockerpkg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *(str(a) for a in args)]


@pytest.fixture
def cleanup_images(docker_client: docker.DockerClient, registry: Registry) -> Iterator[None]:
    yield
    cleanup.remove_tags_under(docker_client, registry.host + "/")


@pytest.mark.usefixtures("cleanup_images")
def test_sigterm_during_apply(
    tmp_path: Path, registry: Registry, busybox_base: str, docker_client: docker.DockerClient
) -> None:
    prefix = unique_prefix()
    for index in range(2):
        write_image(
            tmp_path / "tree",
            f"{prefix}-{index}",
            "1.0",
            # The shell stays (a last command would be exec'd): its command line names PREFIX.
            f'FROM {{{{ "busybox" | image_tag }}}}\nRUN echo {prefix} && sleep 60 && echo done\n',
        )
    config = tmp_path / "config.yaml"
    config.write_text(f"registry: {registry.host}\nbase_images:\n  - {busybox_base}\n")
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        dockerpkg(
            "-c", config, "apply", "--no-pull", "-j", "1", "--report", report, tmp_path / "tree"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    began = time.monotonic()
    while not build_steps(docker_client, prefix):  # the first build's RUN is running
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - began < 60
        time.sleep(0.1)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    # The build was cut, not waited for (it sleeps a minute).
    assert time.monotonic() - signalled < 15
    assert "terminating: cancelling running work" in err
    assert "Traceback" not in err
    assert "cancelled" in out
    assert "not started (interrupted)" in out
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    outcomes = {(s["op"], s["image"]): s["outcome"] for s in data["steps"]}
    assert outcomes[("build", f"{prefix}-0")] == "cancelled"
    assert outcomes[("build", f"{prefix}-1")] == "cancelled"
    assert not glob.glob(str(Path(tempfile.gettempdir()) / f"dockerpkg.*-{prefix}*"))
    deadline = time.monotonic() + 10
    while build_steps(docker_client, prefix) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert build_steps(docker_client, prefix) == []


IMAGES = 1500


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_update(tmp_path: Path, signum: int, status: int) -> None:
    """Sent while the new changelogs are being staged: all of them or none, nothing staged."""
    images: dict[str, tuple[str, list[str]]] = {"root": ("1.0", [])}
    images.update({f"leaf{index:04d}": ("2.0", ["root"]) for index in range(IMAGES)})
    root = write_update_tree(tmp_path, images)
    before = {name: (root / "images" / name / "changelog").read_bytes() for name in images}
    process = subprocess.Popen(
        dockerpkg("-c", root / "config.yaml", "update", "root", root / "images"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    staged = root / "images" / "root" / TEMP_NAME
    while not staged.exists():
        assert process.poll() is None, "the update ended before it was seen staging"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert "Traceback" not in err
    changed = [
        name
        for name in images
        if (root / "images" / name / "changelog").read_bytes() != before[name]
    ]
    if "Interrupted: no changelog was changed." in err:
        assert changed == []
    else:
        assert f"Interrupted after writing all {len(images)} changelog(s)." in err
        assert len(changed) == len(images)
    leftovers = [
        os.path.join(folder, name)
        for folder, _, files in os.walk(root)
        for name in files
        if name == TEMP_NAME
    ]
    assert leftovers == []
