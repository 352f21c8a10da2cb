"""Nothing a run waits on outlives a signal or its time limit, and no step's output is
unbounded: verifications (their whole process groups), their output, and pulls from a
registry that stalls. A real `python -m dockerpkg`, a real daemon, real processes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.support import cleanup
from tests.support.faulty_registry import start_faulty_registry
from tests.support.processes import step_processes, wait_for_line
from tests.support.services import Registry
from tests.support.trees import unique_prefix, write_image

pytestmark = pytest.mark.docker


def dockerpkg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *(str(a) for a in args)]


@pytest.fixture
def site(
    tmp_path: Path, registry: Registry, busybox_base: str, docker_client: docker.DockerClient
) -> Iterator[tuple[Path, Path, str]]:
    """A config for an anonymous registry (nothing is published), a tree folder, a prefix."""
    config = tmp_path / "config.yaml"
    config.write_text(f"registry: {registry.host}\nbase_images:\n  - {busybox_base}\n")
    try:
        yield config, tmp_path / "tree", unique_prefix()
    finally:
        cleanup.remove_tags_under(docker_client, registry.host + "/")


def verified_image(tree: Path, name: str, test: str) -> None:
    write_image(
        tree,
        name,
        "1.0",
        'FROM {{ "busybox" | image_tag }}\nRUN true\n',
        files={"test.sh": "#!/bin/bash\n" + test},
    )


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_verification_output_is_capped(site: tuple[Path, Path, str], tmp_path: Path) -> None:
    config, tree, prefix = site
    # 200 MB of output, then the last line a reader wants.
    verified_image(
        tree, prefix, "yes 0123456789abcdefghijklmnopqrstu | head -c 200000000\necho END\n"
    )
    run = subprocess.run(
        dockerpkg("-c", config, "build", "--no-pull", "--run-dir", tmp_path / "run", tree),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    log = tmp_path / "run" / f"{prefix}.log"
    size = log.stat().st_size
    assert size < 10.5 * 1024 * 1024, size
    text = log.read_text(encoding="utf-8")
    assert "characters of output left out here" in text
    assert text.rstrip().endswith("END")


def sleeping_test(marker: str) -> str:
    """A test.sh that starts a `sleep` in the background and waits on another; MARKER (a
    fraction of a second) names both on their command lines."""
    return f"echo verifying\nsleep 99999.{marker} &\nsleep 99999.{marker}\n"


def test_sigterm_during_verification_ends_its_whole_group(
    site: tuple[Path, Path, str], tmp_path: Path
) -> None:
    config, tree, prefix = site
    marker = f"{random.randrange(10**8):08d}"
    verified_image(tree, prefix, sleeping_test(marker))
    process = subprocess.Popen(
        dockerpkg("-c", config, "build", "--no-pull", "--run-dir", tmp_path / "run", tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: len(step_processes(f"99999.{marker}")) == 2, 120, "no sleep started")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert time.monotonic() - signalled < 10
    assert "Traceback" not in err
    assert "cancelled" in out
    # Both sleeps went with it: the one waited on and the one in the background.
    wait_until(lambda: not step_processes(f"99999.{marker}"), 10, "a sleep outlived the run")


def test_verify_timeout_ends_the_verification_and_fails_the_image(
    site: tuple[Path, Path, str], tmp_path: Path
) -> None:
    config, tree, prefix = site
    marker = f"{random.randrange(10**8):08d}"
    verified_image(tree, prefix, sleeping_test(marker))
    began = time.monotonic()
    run = subprocess.run(
        dockerpkg("-c", config, "build", "--no-pull", "--verify-timeout", "3", tree),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert f"verify {prefix}: verification timed out after 3 s" in run.stdout
    assert time.monotonic() - began < 120
    wait_until(lambda: not step_processes(f"99999.{marker}"), 10, "a sleep outlived the run")


@pytest.fixture
def stalled_base(tmp_path: Path) -> Iterator[str]:
    """The label of a base image on a registry that never sends a manifest's body."""
    with start_faulty_registry(tmp_path, "stall") as stalling:
        yield f"{stalling.host}/stalled/base:1.0"


def stalled_tree(tmp_path: Path, registry: Registry, base: str) -> tuple[Path, Path]:
    """An image FROM BASE, published to REGISTRY (anonymous: nothing is published)."""
    prefix = unique_prefix()
    config = tmp_path / "stalled.yaml"
    config.write_text(f"registry: {registry.host}\nbase_images:\n  - {base}\n")
    repository = base.rpartition(":")[0]
    write_image(tmp_path / "tree", prefix, "1.0", f'FROM {{{{ "{repository}" | image_tag }}}}\n')
    return config, tmp_path / "tree"


def test_pull_from_a_stalled_registry_ends_at_the_transfer_timeout(
    tmp_path: Path, registry: Registry, stalled_base: str
) -> None:
    config, tree = stalled_tree(tmp_path, registry, stalled_base)
    began = time.monotonic()
    run = subprocess.run(
        dockerpkg("-c", config, "build", "--transfer-timeout", "4", tree),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert time.monotonic() - began < 30
    assert (
        f"pull {stalled_base}: cannot pull {stalled_base}: the daemon said nothing for 4 s "
        "(transfer_timeout)"
    ) in run.stdout
    assert "Traceback" not in run.stderr


def test_sigterm_during_a_stalled_pull_ends_the_run(
    tmp_path: Path, registry: Registry, stalled_base: str
) -> None:
    config, tree = stalled_tree(tmp_path, registry, stalled_base)
    process = subprocess.Popen(
        dockerpkg("-c", config, "build", tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(process, r"start\s+pull")
        time.sleep(1)  # the daemon is waiting on the registry now
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert time.monotonic() - signalled < 10
    assert "Traceback" not in err
    assert "cancelled" in out
