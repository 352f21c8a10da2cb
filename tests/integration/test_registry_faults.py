"""Registries that refuse, fail, hang or stop in the middle of a run: real processes, no mocks.

The misbehaving registries are real servers in their own process (tests/support/
faulty_registry.py) or a port where nothing listens; the one that stops mid-publish is Debian's
docker-registry, stopped and started again on the same port and storage. What is checked:
bounded retries, clear per-image errors, and that nothing the registry did not confirm is
reported as published.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dockerpkg import api
from dockerpkg.core.plan import BuildOptions, Op, StepKey
from dockerpkg.core.report import Outcome, Report
from dockerpkg.effects import daemon
from dockerpkg.effects.apply import Executor, Settings
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import (
    Interrupter,
    RegistryCancelledError,
    RegistryClient,
    RegistryError,
    RegistryFailure,
    RetryPolicy,
)
from dockerpkg.effects.tasks import TaskResult
from tests.support import cleanup, services
from tests.support.faulty_registry import FaultyRegistry, closed_port, start_faulty_registry
from tests.support.services import Registry, RegistryFactory
from tests.support.trees import BASE_IMAGE, unique_prefix, write_config, write_image

# Short pauses and timeouts: the same code paths as the defaults, in a fraction of the time.
FAST = RetryPolicy(attempts=3, base_delay=0.05, jitter=0, connect_timeout=0.5, read_timeout=0.5)
NAMESPACE = "tests"


pytestmark = pytest.mark.usefixtures("isolated_home")


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Any]:
    """`faulty(mode, status, ping_ok=..., fail_first=...)`: start a misbehaving registry."""
    with contextlib.ExitStack() as stack:

        def start(mode: str, status: int = 503, **options: Any) -> FaultyRegistry:
            return stack.enter_context(start_faulty_registry(tmp_path, mode, status, **options))

        yield start


# --- the registry client ----------------------------------------------------------------------


class TestRetries:
    """Idempotent requests are retried a bounded number of times, then fail clearly."""

    def test_refused_connections(self) -> None:
        host = closed_port()
        began = time.monotonic()
        with RegistryClient(host, retry=FAST) as client, pytest.raises(RegistryError) as raised:
            client.published("team/app", "1.0")
        error = raised.value
        assert error.failure is RegistryFailure.UNREACHABLE
        assert str(error).startswith(f"cannot reach registry {host}")
        assert "after 3 attempts: connection refused" in str(error)
        # Two pauses, 0.05 s then 0.1 s: the backoff doubles.
        assert time.monotonic() - began >= 0.15

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_server_errors_on_every_request(self, faulty: Any, status: int) -> None:
        registry = faulty("status", status)
        client = RegistryClient(registry.host, retry=FAST)
        with client, pytest.raises(RegistryError) as raised:
            client.published("team/app", "1.0")
        error = raised.value
        assert error.failure is RegistryFailure.UNEXPECTED_STATUS
        assert str(error) == (
            f"registry {registry.host} answered HTTP {status} for its API root /v2/ after 3 "
            "attempts: UNAVAILABLE service unavailable"
        )
        assert registry.requests() == ["GET /v2/"] * 3

    def test_server_error_for_one_image_names_it(self, faulty: Any) -> None:
        registry = faulty("status", 503, ping_ok=True)
        with RegistryClient(registry.host, retry=FAST) as client:
            with pytest.raises(RegistryError) as published:
                client.published("team/app", "1.0")
            with pytest.raises(RegistryError) as digest:
                client.manifest_digest("team/db", "2.0")
            # The concurrent checks of a plan: a failure, never "not published".
            with pytest.raises(RegistryError, match="answered HTTP 503 for team/"):
                client.published_many([("team/app", "1.0"), ("team/db", "2.0")])
        assert str(published.value) == (
            f"registry {registry.host} answered HTTP 503 for team/app:1.0 after 3 attempts"
        )
        assert "answered HTTP 503 for team/db:2.0 after 3 attempts" in str(digest.value)
        heads = [r for r in registry.requests() if r.startswith("HEAD ")]
        assert heads[:3] == ["HEAD /v2/team/app/manifests/1.0"] * 3

    def test_recovery_within_the_attempts_is_an_answer(self, faulty: Any) -> None:
        registry = faulty("status", 503, ping_ok=True, fail_first=2)
        with RegistryClient(registry.host, retry=FAST) as client:
            assert client.published("team/app", "1.0") is False
        assert registry.requests().count("HEAD /v2/team/app/manifests/1.0") == 3

    def test_one_attempt_when_the_policy_says_so(self, faulty: Any) -> None:
        registry = faulty("status", 500, ping_ok=True)
        policy = RetryPolicy(attempts=1, base_delay=5, jitter=0)
        began = time.monotonic()
        client = RegistryClient(registry.host, retry=policy)
        with client, pytest.raises(RegistryError) as raised:
            client.published("team/app", "1.0")
        assert str(raised.value) == f"registry {registry.host} answered HTTP 500 for team/app:1.0"
        assert time.monotonic() - began < 2

    def test_hanging_registry_is_bounded_by_the_timeouts(self, faulty: Any) -> None:
        registry = faulty("hang")
        # A TLS handshake that never completes waits for the connect timeout, a request for
        # the read timeout.
        policy = RetryPolicy(
            attempts=2, base_delay=0.05, jitter=0, connect_timeout=0.4, read_timeout=0.4
        )
        began = time.monotonic()
        client = RegistryClient(registry.host, retry=policy)
        with client, pytest.raises(RegistryError) as raised:
            client.published("team/app", "1.0")
        elapsed = time.monotonic() - began
        assert raised.value.failure is RegistryFailure.UNREACHABLE
        assert "after 2 attempts: timed out" in str(raised.value)
        # Two waits of 0.4 s and one pause: bounded, and not a minute.
        assert 0.8 <= elapsed < 5, elapsed

    def test_default_policy(self) -> None:
        policy = RetryPolicy()
        assert (policy.attempts, policy.timeout) == (3, (10.0, 30.0))
        steady = RetryPolicy(jitter=0)
        assert [steady.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
        for attempt in (1, 2, 3):
            assert steady.delay(attempt) <= policy.delay(attempt) <= steady.delay(attempt) * 1.1
        with pytest.raises(ValueError, match="attempts"):
            RetryPolicy(attempts=0)

    @pytest.mark.docker
    def test_tls_failures_are_not_retried(self, registry_factory: RegistryFactory) -> None:
        """A certificate does not get better by asking again."""
        registry = registry_factory(tls=True)
        began = time.monotonic()
        policy = RetryPolicy(attempts=3, base_delay=2, jitter=0)
        client = RegistryClient(registry.host, retry=policy)
        with client, pytest.raises(RegistryError) as raised:
            client.published("secure/app", "1.0")
        assert raised.value.failure is RegistryFailure.TLS
        assert "attempts" not in str(raised.value)
        assert time.monotonic() - began < 2


# --- whole runs -------------------------------------------------------------------------------


def dockerpkg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *(str(a) for a in args)]


def write_images(root: Path, prefix: str, count: int, run: str = "true") -> list[str]:
    names = [f"{prefix}-{index}" for index in range(count)]
    for name in names:
        write_image(
            root, name, "1.0", f'FROM {{{{ "busybox" | image_tag }}}}\nRUN echo {name} && {run}\n'
        )
    return names


@pytest.mark.docker
@pytest.mark.usefixtures("docker_client")
class TestRegistryDownBeforeTheRun:
    """A plan needs to know what is published: an unusable registry stops the run at once."""

    @pytest.mark.parametrize("fault", ["refused", "503"])
    def test_apply_stops_before_building(
        self, fault: str, faulty: Any, tmp_path: Path, busybox_base: str
    ) -> None:
        host = closed_port() if fault == "refused" else faulty("status", 503).host
        prefix = unique_prefix()
        write_images(tmp_path / "tree", prefix, 2)
        config = tmp_path / "config.yaml"
        config.write_text(f"registry: {host}\nbase_images:\n  - {busybox_base}\n")
        began = time.monotonic()
        run = subprocess.run(
            dockerpkg("-c", config, "apply", "--no-pull", tmp_path / "tree"),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert run.returncode == 1, run.stderr
        assert "Traceback" not in run.stderr
        expected = "connection refused" if fault == "refused" else "answered HTTP 503"
        assert f"{host}: error: " in run.stderr
        assert expected in run.stderr
        assert "after 3 attempts" in run.stderr
        assert "nothing was changed" in run.stderr
        assert "start   build" not in run.stderr
        # Three attempts with 0.5 s and 1 s pauses: seconds, not minutes.
        assert time.monotonic() - began < 30


class RecordingListener:
    """Calls ON_FINISHED for every finished task (from the scheduler's thread)."""

    def __init__(self, on_finished: Any = None) -> None:
        self.finished: list[TaskResult] = []
        self._on_finished = on_finished

    def task_started(self, key: StepKey) -> None:
        pass

    def task_finished(self, result: TaskResult) -> None:
        self.finished.append(result)
        if self._on_finished is not None:
            self._on_finished(result)


def publish_outcomes(report: Report) -> dict[str, tuple[Outcome, str | None, str | None]]:
    return {
        o.step.image: (o.outcome, o.detail, o.error)
        for o in report.outcomes
        if o.step.op is Op.PUBLISH
    }


@pytest.fixture
def site(
    tmp_path: Path,
    registry_factory: RegistryFactory,
    docker_client: docker.DockerClient,
    busybox_base: str,
) -> Iterator[tuple[Registry, Path, str]]:
    """An htpasswd registry holding the base image, a config for it and a name prefix."""
    registry = registry_factory("htpasswd")
    base = services.tag_image(docker_client, busybox_base, registry.ref(BASE_IMAGE))
    services.push_image(docker_client, base, registry)
    config = write_config(
        tmp_path / "config.yaml",
        registry,
        namespace=NAMESPACE,
        username=registry.username,
        password=registry.password,
    )
    try:
        yield registry, config, unique_prefix()
    finally:
        cleanup.remove_tags_under(docker_client, f"{registry.host}/")


def real_digest(registry: Registry, name: str) -> str | None:
    credentials = Credentials(registry.username or "", registry.password or "")
    with RegistryClient(registry.host, credentials) as client:
        return client.manifest_digest(f"{NAMESPACE}/{name}", "1.0")


@pytest.mark.docker
class TestRegistryStopsMidPublish:
    """Published is what the registry confirmed; a second apply finishes without rebuilding."""

    def test_report_then_finish_the_job(
        self, site: tuple[Registry, Path, str], tmp_path: Path
    ) -> None:
        registry, config, prefix = site
        tree = tmp_path / "tree"
        # Builds one at a time, each longer than a push: the first publish ends while the
        # second image still builds, and the registry is stopped right then.
        names = write_images(tree, prefix, 3, run="sleep 1.5")
        env = dict(os.environ)
        workspace = api.load_workspace(str(tree), str(config), env)
        observed, credentials = api.observe_workspace(workspace, env, offline=False)
        plan = api.build_plan(workspace, observed, BuildOptions(pull=False))
        assert sum(step.op is Op.PUBLISH for step in plan.steps) == 3

        def stop_after_first_publish(result: TaskResult) -> None:
            published = (
                str(result.key).startswith("publish:") and result.outcome is Outcome.SUCCEEDED
            )
            if published and not stopped:
                registry.stop()
                stopped.append(str(result.key))

        stopped: list[str] = []
        listener = RecordingListener(stop_after_first_publish)
        report = api.apply_build_plan(
            plan, workspace, env, credentials, run_dir=tmp_path / "run1", listener=listener, jobs=1
        )

        outcomes = publish_outcomes(report)
        published = {n for n, (outcome, _, _) in outcomes.items() if outcome is Outcome.SUCCEEDED}
        failed = {n for n, (outcome, _, _) in outcomes.items() if outcome is Outcome.FAILED}
        assert stopped[0].partition(":")[2] in published
        assert failed
        assert published | failed == set(names)
        errors = [outcomes[name][2] or "" for name in sorted(failed)]
        # Each failure names the registry; pushes started after the stop were refused.
        assert all(registry.host in error for error in errors), errors
        assert any("connection refused" in error for error in errors), errors
        assert report.count(Op.BUILD) == 3
        assert report.count(Op.PUBLISH) == len(published)

        # Back on the same port and storage: what was reported published is there.
        registry.start()
        for name in published:
            assert real_digest(registry, name) == outcomes[name][1]
        # (A push that ended just before the stop but could not be confirmed is there too,
        # yet reported failed: never the other way round.)
        missing = {name for name in failed if real_digest(registry, name) is None}
        assert missing

        # The second run publishes what is missing, from the images already built.
        report_path = tmp_path / "report.json"
        run = subprocess.run(
            dockerpkg("-c", config, "apply", "--report", report_path, tree),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        steps = json.loads(report_path.read_text())["steps"]
        assert {(s["op"], s["image"]) for s in steps} == {
            (op, name) for name in missing for op in ("verify", "publish")
        }
        assert {s["reason"] for s in steps} == {"built_locally_not_published"}
        assert {s["outcome"] for s in steps} == {"succeeded"}
        for name in names:
            assert real_digest(registry, name) is not None


@pytest.mark.docker
class TestUnconfirmedPushes:
    """A push the registry API cannot confirm is a failure of that image, never "published"."""

    def test_registry_answering_503_to_checks(
        self, site: tuple[Registry, Path, str], tmp_path: Path, faulty: Any
    ) -> None:
        _, config, prefix = site
        tree = tmp_path / "tree"
        names = write_images(tree, prefix, 2)
        env = dict(os.environ)
        workspace = api.load_workspace(str(tree), str(config), env)
        observed, credentials = api.observe_workspace(workspace, env, offline=False)
        plan = api.build_plan(workspace, observed, BuildOptions(pull=False))
        # The pushes go to the registry; the API that should confirm them answers 503 (a
        # front end in trouble): here, the client asks a server that answers nothing else.
        # Its first answer for each manifest (the check before the push) is "not published".
        checks = faulty("status", 503, ping_ok=True, absent_first=1)
        settings = Settings(
            directory=Path(workspace.directory),
            run_dir=tmp_path / "run",
            config=workspace.config,
            credentials=credentials,
            jobs=2,
        )
        client = daemon.connect(env)
        with RegistryClient(checks.host, credentials, retry=FAST) as confirming:
            report = Executor(client, confirming, settings, RecordingListener()).run(plan)
        client.close()
        outcomes = publish_outcomes(report)
        assert report.count(Op.PUBLISH) == 0
        for name in names:
            outcome, detail, error = outcomes[name]
            assert outcome is Outcome.FAILED
            assert detail is None
            assert error == (
                f"pushed, but cannot confirm it or tag it latest: registry {checks.host} "
                f"answered HTTP 503 for the manifest of {NAMESPACE}/{name}:1.0 after 3 attempts"
                ": UNAVAILABLE service unavailable"  # the error the registry's body gives
            )
            assert checks.requests().count(f"GET /v2/{NAMESPACE}/{name}/manifests/1.0") == 1 + 3


def latest_digest(registry: Registry, name: str, tag: str = "latest") -> str | None:
    credentials = Credentials(registry.username or "", registry.password or "")
    with RegistryClient(registry.host, credentials) as client:
        return client.manifest_digest(f"{NAMESPACE}/{name}", tag)


@pytest.mark.docker
class TestLatestOfAPublishedVersion:
    """Every tag a run moves is checked: `latest` left behind by a failed run is set by the
    next one (no build, no push); one moved by someone else to a newer version is left."""

    def test_latest_failed_then_set_by_the_next_run(
        self, site: tuple[Registry, Path, str], tmp_path: Path, faulty: Any
    ) -> None:
        registry, config, prefix = site
        tree = tmp_path / "tree"
        names = write_images(tree, prefix, 2)
        env = dict(os.environ)
        workspace = api.load_workspace(str(tree), str(config), env)
        observed, credentials = api.observe_workspace(workspace, env, offline=False)
        plan = api.build_plan(workspace, observed, BuildOptions(pull=False))
        settings = Settings(
            directory=Path(workspace.directory),
            run_dir=tmp_path / "run",
            config=workspace.config,
            credentials=credentials,
            jobs=2,
        )
        # The version tags are pushed; the registry API that moves `latest` answers 503.
        client = daemon.connect(env)
        try:
            with RegistryClient(
                faulty("status", 503, ping_ok=True, absent_first=1).host, credentials, retry=FAST
            ) as bad:
                failed = Executor(client, bad, settings, RecordingListener()).run(plan)
            assert {o for o, _, _ in publish_outcomes(failed).values()} == {Outcome.FAILED}
            for name in names:
                assert latest_digest(registry, name, "1.0") is not None
                assert latest_digest(registry, name) is None

            # Unless told not to look (check_latest: false), the next plan moves `latest` and
            # nothing else.
            unchecked = tmp_path / "unchecked.yaml"
            unchecked.write_text(config.read_text() + "check_latest: false\n", encoding="utf-8")
            blind = api.load_workspace(str(tree), str(unchecked), env)
            blind_observed, _ = api.observe_workspace(blind, env, offline=False)
            assert api.build_plan(blind, blind_observed, BuildOptions(pull=False)).steps == ()
            observed, credentials = api.observe_workspace(workspace, env, offline=False)
            again = api.build_plan(workspace, observed, BuildOptions(pull=False))
            assert [(s.op, s.image, s.reason.value, s.detail) for s in again.steps] == [
                (Op.TAG_LATEST, name, "latest_not_current", "latest not set") for name in names
            ]
            with RegistryClient(registry.host, credentials) as good:
                report = Executor(client, good, settings, RecordingListener()).run(again)
        finally:
            client.close()
        assert report.count(Op.TAG_LATEST) == len(names)
        assert not report.failed
        for name in names:
            assert latest_digest(registry, name) == latest_digest(registry, name, "1.0")
        observed, _ = api.observe_workspace(workspace, env, offline=False)
        assert api.build_plan(workspace, observed, BuildOptions(pull=False)).steps == ()

    def test_latest_on_a_newer_version_is_left_alone(
        self, site: tuple[Registry, Path, str], tmp_path: Path, busybox_base: str
    ) -> None:
        registry, config, prefix = site
        name = f"{prefix}-x"
        for version, folder in (("1.0", "old"), ("2.0", "new")):
            write_image(
                tmp_path / folder, name, version, f"FROM {busybox_base}\nRUN echo {version}\n"
            )
            run = subprocess.run(
                dockerpkg("-c", config, "build", "--no-pull", tmp_path / folder),
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            assert run.returncode == 0, run.stderr
        newer = latest_digest(registry, name, "2.0")
        assert newer is not None
        assert latest_digest(registry, name) == newer
        # The old tree's version is published, its latest elsewhere: reported, not moved.
        planned = subprocess.run(
            dockerpkg("-c", config, "plan", "--no-pull", tmp_path / "old"),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert planned.returncode == 0, planned.stderr
        assert "tag-latest" not in planned.stdout
        assert (
            f"note: {registry.host}/{NAMESPACE}/{name}:latest is on 2.0, not on a version in "
            f"{name}/changelog: left alone, as this tree did not set it"
        ) in planned.stdout
        assert "Plan: nothing to do." in planned.stdout
        assert latest_digest(registry, name) == newer


class TestInterrupter:
    """What a signal does to a client's waits, without the signal: an Interrupter shared by
    clients ends each wait at once, TLS handshake and pipelined reads included."""

    @pytest.mark.parametrize("mode", ["hang", "stall"])
    def test_interrupt_ends_every_wait(self, mode: str, faulty: Any) -> None:
        registry = faulty(mode)
        interrupter = Interrupter()
        refs = [("team/app", f"1.{n}") for n in range(20)]
        timer = threading.Timer(1.0, interrupter.interrupt)
        began = time.monotonic()
        timer.start()
        try:
            with (
                RegistryClient(registry.host, interrupter=interrupter) as client,
                pytest.raises(RegistryCancelledError),
            ):
                # hang: the TLS handshake of the API root's check never ends; stall: the
                # pipelined HEADs are never answered.
                client.digests_many(refs)
        finally:
            timer.cancel()
        assert time.monotonic() - began < 2.5
        # A client sharing it after the interrupt does not wait at all.
        with (
            RegistryClient(registry.host, interrupter=interrupter) as late,
            pytest.raises(RegistryCancelledError),
        ):
            late.published("team/app", "1.0")


class TestSignalWhileWaiting:
    """SIGTERM while `plan` waits on a registry that says nothing ends the run within about a
    second, not after the timeouts (30 s per attempt). Two builders, so that no daemon is
    asked: the registry is the only thing waited on."""

    @pytest.mark.parametrize(
        ("mode", "waited_on"),
        # hang: the API root's GET never answered (requests' connection); stall: the root
        # answers, the pipelined HEADs of the plan's checks never are.
        [("hang", None), ("stall", "HEAD /v2/")],
    )
    def test_sigterm_ends_the_wait(
        self, mode: str, waited_on: str | None, faulty: Any, tmp_path: Path
    ) -> None:
        registry = faulty(mode)
        prefix = unique_prefix()
        write_images(tmp_path / "tree", prefix, 3)
        config = tmp_path / "config.yaml"
        config.write_text(f"registry: {registry.host}\nnamespace: t\nbase_images:\n  - busybox\n")
        builders = "tcp://127.0.0.1:1,tcp://127.0.0.1:2"
        process = subprocess.Popen(
            dockerpkg("-c", config, "plan", "--builders", builders, tmp_path / "tree"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                asked = registry.requests()
                if waited_on is None or any(r.startswith(waited_on) for r in asked):
                    break
                time.sleep(0.1)
            time.sleep(1.5)  # well into the wait
            assert process.poll() is None, process.communicate()
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
            elapsed = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 143, err
        assert elapsed < 3, elapsed
        assert err == "dockerpkg: terminated\n"
        assert out == ""
