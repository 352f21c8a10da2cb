"""Daemon pulls and pushes through the run's registry gates, on the in-memory daemon
(tests/support/fakedaemon.py): a registry's limit or outage is waited out and the transfer
started again, a failure asking again cannot mend is not, a limit that does not end fails
the step with the registry named, and the report counts what each host was asked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dockerpkg.core.plan import Op, PublishMode
from dockerpkg.core.planner import Observed
from dockerpkg.core.registrylimits import HostLimits, RegistryLimits
from dockerpkg.core.report import Outcome, Report, registry_lines, report_to_data
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.tasks import Interrupt
from tests.support.fakedaemon import FakeDaemon, FakeRegistry
from tests.unit.test_executor import (
    APP_LABEL,
    BASE,
    BASE_LABEL,
    HOST,
    outcomes,
    planned,
    run,
    with_base,
    write_image,
    write_tree,
)

BASE_HOST = BASE.partition("/")[0]
# GHCR's form of a limit: the wait is in the message (what the daemon passes on of it).
LIMITED = "toomanyrequests: retry-after: 100ms, allowed: 2000/minute"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path)


def limited_push(label: str) -> str:
    return f"push of {label} failed: {LIMITED}"


def gates(**limits: HostLimits) -> RegistryGates:
    """A run's gates with LIMITS for the tree's registry (`host`) and its base's (`base`)."""
    names = {"host": HOST, "base": BASE_HOST}
    return RegistryGates(RegistryLimits({names[k]: v for k, v in limits.items()}))


def usage(report: Report, host: str) -> tuple[int, int, int]:
    [found] = [u for u in report.registries if u.host == host]
    return found.requests, found.retries, found.limited


class TestPushes:
    def test_a_push_limited_twice_is_pushed_again_and_published(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("push", BASE_LABEL, message=limited_push(BASE_LABEL), times=2)
        report = run(workspace, plan, daemon, registry, tmp_path)
        found = outcomes(report)
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        assert daemon.calls.count(("push", BASE_LABEL)) == 3
        assert registry.tags["ns/base", "latest"] == registry.tags["ns/base", "1.0"]
        log = (tmp_path / "run" / "base.log").read_text("utf-8")
        assert f"registry {HOST} answered HTTP 429; trying again after" in log
        assert "(try 2 of 6)" in log
        assert "(try 3 of 6)" in log
        assert "(try 4 of 6)" not in log
        # Three pushes of base and one of app; two of them again, after two limits.
        assert usage(report, HOST) == (4, 2, 2)
        [limited] = [u for u in report.registries if u.host == HOST]
        assert limited.waited >= 0.2  # at least the 100 ms asked, twice
        assert registry_lines(report) == [
            f"registry {HOST}: 4 requests, 2 limited, waited {limited.waited:.1f} s for its limits"
        ]

    def test_an_unauthorized_push_is_not_pushed_again(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        refused = f"push of {BASE_LABEL} failed: unauthorized: authentication required"
        daemon.fault("push", BASE_LABEL, message=refused)
        report = run(workspace, plan, daemon, registry, tmp_path)
        found = outcomes(report)
        assert found["publish:base"] == (Outcome.FAILED, None, refused)
        assert daemon.calls.count(("push", BASE_LABEL)) == 1
        assert "trying again" not in (tmp_path / "run" / "base.log").read_text("utf-8")
        assert usage(report, HOST) == (1, 0, 0)
        assert registry_lines(report) == []

    def test_a_registry_limiting_every_push_fails_the_step_and_a_rerun_publishes(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("push", BASE_LABEL, message=limited_push(BASE_LABEL))
        three = gates(host=HostLimits(attempts=3))
        report = run(workspace, plan, daemon, registry, tmp_path, gates=three)
        found = outcomes(report)
        outcome, _, error = found["publish:base"]
        assert outcome is Outcome.FAILED
        assert error is not None
        assert error.startswith(f"registry {HOST} limited the run: HTTP 429 after 3 tries")
        assert LIMITED not in error  # the registry's words stay in the log
        assert daemon.calls.count(("push", BASE_LABEL)) == 3
        assert found["publish:app"][0] is Outcome.SKIPPED
        # Nothing users pull was put: no version tag, no latest.
        assert ("ns/base", "1.0") not in registry.tags
        assert ("ns/base", "latest") not in registry.tags
        assert usage(report, HOST) == (3, 2, 3)
        assert error in (tmp_path / "run" / "base.log").read_text("utf-8")
        # The registry lets pushes through again: a rerun of the same plan finishes the job.
        del daemon.faults["push", BASE_LABEL]
        again = outcomes(run(workspace, plan, daemon, registry, tmp_path / "again"))
        assert {o for o, _, _ in again.values()} == {Outcome.SUCCEEDED}, again
        assert registry.tags["ns/base", "latest"] == registry.tags["ns/base", "1.0"]
        assert ("ns/app", "1.0") in registry.tags

    def test_a_staging_push_limited_once_is_staged_and_promoted(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        daemon, registry = with_base()
        staging = f"{HOST}/ns/dockerpkg-staging/app:1.0"
        daemon.fault("push", staging, message=limited_push(staging), times=1)
        report = run(workspace, plan, daemon, registry, tmp_path)
        found = outcomes(report)
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        assert report.count(Op.PROMOTE) == 2
        assert daemon.calls.count(("push", staging)) == 2

    def test_pushes_to_a_host_are_never_more_at_once_than_its_cap(
        self, tree: Path, tmp_path: Path
    ) -> None:
        for n in range(6):
            write_image(tree, f"leaf{n}", "FROM {{ 'base' | image_tag }}\n")
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.push_delay = 0.05
        capped = gates(host=HostLimits(max_requests=2))
        report = run(workspace, plan, daemon, registry, tmp_path, jobs=4, push_jobs=4, gates=capped)
        assert report.count(Op.PUBLISH) == 8
        assert daemon.most_pushes_at_once <= 2
        assert usage(report, HOST) == (8, 0, 0)

    def test_a_cancel_ends_the_wait_for_a_limit(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        # Asked to come back in 50 s (under the longest wait, 60 s): the run waits...
        asked = "toomanyrequests: retry-after: 50000ms, allowed: 2000/minute"
        daemon.fault("push", BASE_LABEL, message=f"push of {BASE_LABEL} failed: {asked}")
        interrupt = Interrupt()

        def cancel_once_limited() -> None:
            while ("push", BASE_LABEL) not in daemon.calls:
                time.sleep(0.01)
            interrupt.cancel()

        threading.Thread(target=cancel_once_limited, daemon=True).start()
        began = time.monotonic()
        report = run(workspace, plan, daemon, registry, tmp_path, interrupt)
        # ...until the run is cancelled: the step ends then, not 50 s later.
        assert time.monotonic() - began < 30
        assert outcomes(report)["publish:base"][0] is Outcome.CANCELLED
        assert daemon.calls.count(("push", BASE_LABEL)) == 1
        assert ("ns/base", "1.0") not in registry.tags


class TestPulls:
    def test_a_pull_the_registry_limited_is_pulled_again(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("pull", BASE, message=f"cannot pull {BASE}: {LIMITED}", times=1)
        report = run(workspace, plan, daemon, registry, tmp_path)
        assert outcomes(report)[f"pull:{BASE}"][0] is Outcome.SUCCEEDED
        assert daemon.images[APP_LABEL]
        assert usage(report, BASE_HOST) == (2, 1, 1)
        log = (tmp_path / "run" / "pulls.log").read_text("utf-8")
        assert f"registry {BASE_HOST} answered HTTP 429; trying again after" in log

    def test_a_registry_failing_for_a_moment_is_asked_again(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        failing = f"cannot pull {BASE}: received unexpected HTTP status: 502 Bad Gateway"
        daemon.fault("pull", BASE, message=failing, times=1)
        report = run(workspace, plan, daemon, registry, tmp_path)
        assert outcomes(report)[f"pull:{BASE}"][0] is Outcome.SUCCEEDED
        # Asked again, but not limited: no line after the summary.
        assert usage(report, BASE_HOST) == (2, 1, 0)
        assert registry_lines(report) == []
        log = (tmp_path / "run" / "pulls.log").read_text("utf-8")
        assert f"registry {BASE_HOST} answered HTTP 502; trying again after" in log

    def test_a_pull_limited_for_good_goes_on_with_the_local_copy_when_the_plan_says(
        self, tree: Path, tmp_path: Path
    ) -> None:
        observed = Observed(offline=False, credentials=True, local=frozenset({BASE}))
        workspace, plan = planned(tree, observed)
        daemon = FakeDaemon({BASE: "sha256:local"}, registry=FakeRegistry(HOST))
        daemon.fault("pull", BASE, message=f"cannot pull {BASE}: {LIMITED}")
        report = run(
            workspace,
            plan,
            daemon,
            daemon.registry,
            tmp_path,
            gates=gates(base=HostLimits(attempts=2)),
        )
        assert outcomes(report)[f"pull:{BASE}"] == (Outcome.SUCCEEDED, "local copy", None)
        log = (tmp_path / "run" / "pulls.log").read_text("utf-8")
        assert f"registry {BASE_HOST} limited the run" in log
        assert "using the local copy" in log


class TestTheReport:
    def test_the_json_report_counts_each_host_asked(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("push", BASE_LABEL, message=limited_push(BASE_LABEL), times=1)
        report = run(workspace, plan, daemon, registry, tmp_path)
        data = report_to_data(report, plan)
        assert data["format_version"] == 4
        hosts = {entry["host"]: entry for entry in data["registries"]}
        assert set(hosts) == {HOST, BASE_HOST}
        assert hosts[HOST]["requests"] == 3
        assert hosts[HOST]["retries"] == 1
        assert hosts[HOST]["limited"] == 1
        assert hosts[HOST]["waited_s"] >= 0.1
        assert hosts[BASE_HOST] == {
            "host": BASE_HOST,
            "requests": 1,
            "retries": 0,
            "limited": 0,
            "waited_s": hosts[BASE_HOST]["waited_s"],
        }

    def test_a_run_asking_no_registry_reports_none(self, tree: Path, tmp_path: Path) -> None:
        _, plan = planned(tree)
        report = Report(outcomes=())
        assert report_to_data(report, plan)["registries"] == []
        assert registry_lines(report) == []
