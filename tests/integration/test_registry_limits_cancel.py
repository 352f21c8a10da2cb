"""SIGTERM while a step waits out a registry's limit: a real registry behind the fault proxy
(tests/support/faulty_registry.py) answers the first PUT of `latest` with 429 and
`Retry-After: 50` (under the longest wait, 60 s); the run, cancelled then, ends within
seconds (not after the 50 s asked for), as interrupted, with `latest` not moved; and one
killed (SIGKILL) while it waits leaves `latest` alone for the next run to set."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_build import DOCKERPKG, FROM_BASE, NAMESPACE, SiteFactory
from tests.integration.test_registry_limits_daemon import (
    Proxied,
    proxied,  # noqa: F401 (a fixture)
    proxy_config,
    tags_of,
)
from tests.support.faulty_registry import Limit
from tests.support.trees import write_image

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("isolated_home")]


def test_sigterm_ends_the_wait_for_a_limit_on_latest(
    make_site: SiteFactory,
    proxied: Proxied,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    site = make_site()
    name = site.name("app")
    write_image(site.tree, name, "1.0", FROM_BASE + "RUN echo app > /app\n")
    latest = rf"^PUT /v2/{NAMESPACE}/[^/]+/manifests/latest$"
    proxy = proxied(site, Limit(latest, 1, "retry-after:50"))
    argv = [DOCKERPKG, "-c", proxy_config(site, proxy), "apply"]
    argv += ["--run-dir", tmp_path / "run", site.tree]
    process = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not any(e.fault for e in proxy.entries()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never tagged latest"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = process.communicate(timeout=120)
        # Generous: the 50 s asked for are not waited out.
        assert time.monotonic() - sent < 20, out + err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, out + err
    assert "Traceback" not in err
    # The limited PUT was never asked again: `latest` did not move.
    puts = [e for e in proxy.entries() if e.method == "PUT" and e.path.endswith("/latest")]
    assert len(puts) == 1
    assert "latest" not in tags_of(site, name)


def test_a_run_killed_while_it_waits_for_a_limit_is_finished_by_the_next(
    make_site: SiteFactory,
    proxied: Proxied,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    site = make_site()
    name = site.name("app")
    write_image(site.tree, name, "1.0", FROM_BASE + "RUN echo app > /app\n")
    latest = rf"^PUT /v2/{NAMESPACE}/[^/]+/manifests/latest$"
    proxy = proxied(site, Limit(latest, 1, "retry-after:50"))
    argv = [DOCKERPKG, "-c", proxy_config(site, proxy), "apply"]
    argv += ["--run-dir", tmp_path / "run", site.tree]
    process = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not any(e.fault for e in proxy.entries()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never tagged latest"
            time.sleep(0.2)
        # SIGKILL: nothing of the run gets a say.
        process.kill()
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "latest" not in tags_of(site, name)
    # The next run (the proxy's one limit spent) finds the version published and moves
    # `latest` onto it, without building again.
    argv[argv.index(tmp_path / "run")] = tmp_path / "rerun"
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert {"1.0", "latest"} <= set(tags_of(site, name))
    assert "Done: 0 built, 0 verified, 0 published, 1 latest set, 0 failed" in done.stdout
