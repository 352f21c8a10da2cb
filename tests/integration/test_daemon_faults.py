"""The Docker daemon missing or going away, builds that never end or print without end.

A daemon that goes away is a second dockerd of the test's own (tests/support/second_daemon.py),
killed or stopped in the middle of a build: never the shared daemon. The other tests build on
the shared daemon with image names no other run uses.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockerpkg.effects.logs import DEFAULT_LOG_LIMIT
from tests.support import cleanup, services
from tests.support.faulty_registry import closed_port
from tests.support.processes import build_steps, wait_for_line
from tests.support.second_daemon import SecondDaemon, start_second_daemon
from tests.support.services import Registry
from tests.support.trees import unique_prefix, write_image

pytestmark = pytest.mark.usefixtures("isolated_home")


def dockerpkg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *(str(a) for a in args)]


def write_tree(root: Path, images: dict[str, tuple[str | None, str]]) -> None:
    """NAME -> (parent or None for the busybox base, RUN command)."""
    for name, (parent, run) in images.items():
        source = parent or "busybox"
        write_image(
            root,
            name,
            "1.0",
            f'FROM {{{{ "{source}" | image_tag }}}}\nRUN {run}\n',
            depends=[parent] if parent else [],
        )


def write_config(path: Path, registry: str, base: str, extra: str = "") -> Path:
    path.write_text(f"registry: {registry}\nbase_images:\n  - {base}\n{extra}", encoding="utf-8")
    return path


def temp_folders(prefix: str) -> list[str]:
    return glob.glob(str(Path(tempfile.gettempdir()) / f"dockerpkg.*-{prefix}*"))


def steps(report: Path) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    return {(step["op"], step["image"]): step for step in data["steps"]}


def build_steps_left(client: docker.DockerClient, marker: str, timeout: float = 10.0) -> list[str]:
    """Containers and processes of build steps whose command holds MARKER, once the daemon has
    had TIMEOUT to end them (stopping a cut build is the daemon's, and takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        found = build_steps(client, marker)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


@pytest.fixture
def cleanup_images(docker_client: docker.DockerClient, registry: Registry) -> Iterator[None]:
    yield
    cleanup.remove_tags_under(docker_client, registry.host + "/")


# --- no daemon --------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["plan", "apply", "build", "prune"])
def test_daemon_not_running(tmp_path: Path, verb: str) -> None:
    """A clear error naming DOCKER_HOST, with a hint; exit 1; no traceback; nothing left."""
    prefix = unique_prefix()
    write_tree(tmp_path / "tree", {prefix: (None, "true")})
    config = write_config(tmp_path / "config.yaml", closed_port(), "base/busybox:1.36")
    socket = tmp_path / "nothing-listens-here.sock"
    run = subprocess.run(
        dockerpkg("-c", config, verb, tmp_path / "tree"),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "DOCKER_HOST": f"unix://{socket}"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert (
        f"docker: error: cannot reach the Docker daemon (DOCKER_HOST=unix://{socket}): "
        "no such socket; is dockerd running?"
    ) in run.stderr
    assert not temp_folders(prefix)


# --- a daemon that goes away ------------------------------------------------------------------


@pytest.fixture
def second_daemon(busybox_base: str) -> Iterator[SecondDaemon]:
    """A dockerd of this test's own, with the busybox base image built in it."""
    try:
        with start_second_daemon() as daemon:
            with contextlib.closing(daemon.client()) as client:
                services.build_busybox_base(client, busybox_base)
            yield daemon
    except services.ServiceUnavailableError as error:
        if os.environ.get("DOCKERPKG_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{error} (DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)")
        pytest.skip(str(error))


@pytest.mark.parametrize("engine", ["buildkit", "classic"])
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_daemon_gone_mid_build(
    how: str,
    engine: str,
    tmp_path: Path,
    second_daemon: SecondDaemon,
    registry: Registry,
    busybox_base: str,
) -> None:
    """The running build fails, later ones fail with a hint, dependents are skipped, and the
    temporary build folders are removed."""
    prefix = unique_prefix()
    first, child, other = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    write_tree(
        tmp_path / "tree",
        {
            # Ends at SIGTERM (a plain sleep, as process 1, would not): a stopping daemon then
            # need not wait its ten seconds before killing it.
            first: (None, f"trap 'exit 143' TERM; echo {prefix}; sleep 30 & wait"),
            child: (first, "true"),
            other: (None, "true"),
        },
    )
    config = write_config(
        tmp_path / "config.yaml", registry.host, busybox_base, f"build_engine: {engine}\n"
    )
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        # --info echoes build output as dockerpkg reads it: the test sees what it has seen.
        dockerpkg(
            "-c",
            config,
            "--info",
            "apply",
            "--no-pull",
            "-j",
            "1",
            "--report",
            report,
            tmp_path / "tree",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOCKER_HOST": second_daemon.host},
    )
    # The RUN step runs: the classic builder names its container, BuildKit shows its output.
    running = " ---> Running in " if engine == "classic" else rf"#\d+ {prefix}$"
    wait_for_line(process, f"^{first} \\| {running}")
    if how == "killed":
        second_daemon.kill()
    else:
        second_daemon.stop()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert "Traceback" not in out + err
    outcome = steps(report)
    assert outcome[("build", first)]["outcome"] == "failed"
    assert outcome[("build", child)]["outcome"] == "skipped"
    assert outcome[("build", other)]["outcome"] == "failed"
    assert outcome[("build", other)]["error"].endswith("is dockerd still running?")
    assert "Failures:" in out
    assert not temp_folders(prefix)
    if how == "killed" and engine == "buildkit":
        # BuildKit's step runs without a container: nothing is left for the user to remove.
        error = outcome[("build", first)]["error"]
        assert error.startswith("build failed: lost the Docker daemon"), error
        assert "may be left" not in error
    if how == "killed" and engine == "classic":
        # Nobody could remove the running step's container: the error names it.
        error = outcome[("build", first)]["error"]
        assert error.startswith("build failed: lost the Docker daemon")
        container = error.partition("Its build container ")[2].partition(" ")[0]
        assert error.endswith(f"may be left: `docker rm {container}`")
        second_daemon.start()
        with contextlib.closing(second_daemon.client()) as client:
            assert [c["Id"][:12] for c in client.api.containers(all=True)] == [container[:12]]


# --- builds that print without end, or never end ----------------------------------------------

MEASURE_MEMORY = (
    "import resource, sys\n"
    "from dockerpkg.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "print('maxrss-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def _capped_build(tmp_path: Path, registry: Registry, base: str, size: int) -> tuple[str, float]:
    """Build one image printing SIZE bytes with the classic builder, in a process of its own;
    its log and the process's peak memory (MiB)."""
    prefix = unique_prefix()
    tree = tmp_path / f"tree-{size}"
    write_tree(tree, {prefix: (None, f"yes | head -c {size} && echo the-end-{prefix}")})
    config = write_config(
        tmp_path / f"config-{size}.yaml", registry.host, base, "build_engine: classic\n"
    )
    run_dir = tmp_path / f"run-{size}"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE_MEMORY,
            *("-c", str(config), "apply", "--no-pull", "--run-dir", str(run_dir)),
            str(tree),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    log = run_dir / f"{prefix}.log"
    assert log.stat().st_size < DEFAULT_LOG_LIMIT + 1000
    text = log.read_text(encoding="utf-8")
    assert f"the-end-{prefix}" in text
    return text, int(run.stderr.split("maxrss-kib ")[1].split()[0]) / 1024


@pytest.mark.usefixtures("cleanup_images")
def test_huge_build_output_is_capped(tmp_path: Path, registry: Registry, busybox_base: str) -> None:
    """100 MB of output: the log keeps its first and last 5 MiB, memory stays flat.

    With the classic builder, which streams all of a step's output; BuildKit clips a step's
    output itself (2 MiB by default) before it reaches dockerpkg. Flat is measured against
    the same build printing 1 MB, in the same conditions: the process's own size (its
    modules, the machine's allocator) is not what is tested.
    """
    text, huge = _capped_build(tmp_path, registry, busybox_base, 100_000_000)
    head, marker, tail = text.partition("\n[dockerpkg: ")
    assert marker, "no truncation marker"
    assert "Step 1/" in head
    assert "characters of output left out here" in tail
    assert "Successfully built" in tail
    _, small = _capped_build(tmp_path, registry, busybox_base, 1_000_000)
    # The log keeps 10 MiB at most; anything near the 100 MB would be output held in memory.
    assert huge - small < 40, f"{huge:.0f} MiB for 100 MB of output, {small:.0f} MiB for 1 MB"


@pytest.mark.usefixtures("cleanup_images")
@pytest.mark.parametrize("given", ["option", "config"])
def test_build_timeout(
    given: str,
    tmp_path: Path,
    registry: Registry,
    busybox_base: str,
    docker_client: docker.DockerClient,
) -> None:
    """A build past its time is stopped and fails; its dependents are skipped; others go on."""
    prefix = unique_prefix()
    slow, child, fast = f"{prefix}-slow", f"{prefix}-slowchild", f"{prefix}-fast"
    write_tree(
        tmp_path / "tree",
        {
            slow: (None, f"echo {prefix} && sleep 60 && echo done"),  # the shell stays
            child: (slow, "true"),
            fast: (None, "true"),
        },
    )
    # Room for the fast build on a loaded machine (a container started and removed).
    extra = "build_timeout: 10\n" if given == "config" else "build_timeout: 600\n"
    config = write_config(tmp_path / "config.yaml", registry.host, busybox_base, extra)
    report = tmp_path / "report.json"
    option = ["--build-timeout", "10"] if given == "option" else []
    run_dir = tmp_path / "run"
    began = time.monotonic()
    run = subprocess.run(
        dockerpkg(
            "-c",
            config,
            "apply",
            "--no-pull",
            "-j",
            "2",
            *option,
            "--report",
            report,
            "--run-dir",
            run_dir,
            tmp_path / "tree",
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    elapsed = time.monotonic() - began
    assert run.returncode == 1, run.stderr
    outcome = steps(report)
    assert outcome[("build", slow)]["outcome"] == "failed"
    assert outcome[("build", slow)]["error"] == "build timed out after 10 s"
    assert outcome[("build", child)]["outcome"] == "skipped"
    assert outcome[("build", fast)]["outcome"] == "succeeded"
    assert f"build {slow}: build timed out after 10 s" in run.stdout
    assert "build timed out after 10 s: stopped" in (run_dir / f"{slow}.log").read_text()
    assert elapsed < 30, elapsed
    assert not temp_folders(prefix)
    # The daemon stops the build's step (and removes its container) when the build is cut off.
    assert build_steps_left(docker_client, prefix) == []
