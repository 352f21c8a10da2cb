"""The run's gates (effects/registry/gate.py): the cap, the rate, the host-wide backoff and the
retry loop every registry request and daemon transfer goes through, on a fake clock (waits
are recorded, not slept) and with real threads where the cap is what is checked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dockerpkg.core.registrylimits import (
    DEFAULT_LIMITS,
    DOCKER_HUB_GATE,
    DOCKER_HUB_LIMITS,
    HINT_MARGIN,
    Attempt,
    Decision,
    Fault,
    HostLimits,
    RegistryLimits,
    RegistryUsage,
    Verdict,
)
from dockerpkg.effects.registry.gate import (
    GateCancelledError,
    GaveUpError,
    HostGate,
    RegistryGates,
    retried,
)
from dockerpkg.effects.registry.manifestcache import ManifestCache

WALL = 1_796_677_200.0  # 2026-12-07 21:00:00 UTC


class FakeClock:
    """A monotonic clock that moves only when a gate sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, cancel: threading.Event, seconds: float) -> bool:
        if cancel.is_set():
            return True
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        return False


def fake_gate(limits: HostLimits = DEFAULT_LIMITS) -> tuple[HostGate, FakeClock]:
    clock = FakeClock()
    return HostGate("registry.test", limits, clock=clock, sleep=clock.sleep), clock


def answers(*attempts: Attempt | Exception) -> tuple[Callable[[], Any], list[int]]:
    """ONCE giving each of ATTEMPTS in turn (the last one for ever), and the tries made."""
    made: list[int] = []

    def once() -> Attempt:
        made.append(len(made) + 1)
        got = attempts[min(len(made), len(attempts)) - 1]
        if isinstance(got, Exception):
            raise got
        return got

    return once, made


def judge(result: Attempt | Exception) -> Attempt:
    if isinstance(result, Exception):
        return Attempt(None, Fault.CONNECTION if isinstance(result, OSError) else Fault.FINAL)
    return result


def run(gate: HostGate, once: Callable[[], Any], **options: Any) -> Any:
    return retried(
        gate, threading.Event(), once, judge, wall=lambda: WALL, jitter=lambda: 0.0, **options
    )


OK = Attempt(200)
LIMITED = Attempt(429, retry_after="2")


class TestRetried:
    """One request's tries: what is retried, after how long, and when it ends."""

    def test_an_answer_is_returned_at_once(self) -> None:
        gate, clock = fake_gate()
        once, made = answers(Attempt(404))
        assert run(gate, once) == Attempt(404)
        assert made == [1]
        assert clock.sleeps == []
        assert gate.usage() == RegistryUsage("registry.test", requests=1)

    def test_a_hint_is_honoured_by_the_whole_host(self) -> None:
        gate, clock = fake_gate()
        once, made = answers(LIMITED, OK)
        assert run(gate, once) == OK
        assert made == [1, 2]
        assert clock.sleeps == [pytest.approx(2 + HINT_MARGIN)]
        usage = gate.usage()
        assert (usage.requests, usage.retries, usage.limited) == (2, 1, 1)
        assert usage.waited == pytest.approx(2 + HINT_MARGIN)

    @pytest.mark.parametrize(
        ("attempt", "wait"),
        [
            (Attempt(429, retry_after="Mon, 07 Dec 2026 21:00:03 GMT"), 3 + HINT_MARGIN),
            (Attempt(429, body="retry-after: 250ms, allowed: 2000/minute"), 0.25 + HINT_MARGIN),
            (Attempt(503), 0.5),
            (Attempt(502), 0.5),
        ],
    )
    def test_host_wide_waits(self, attempt: Attempt, wait: float) -> None:
        gate, clock = fake_gate()
        once, _ = answers(attempt, OK)
        run(gate, once)
        assert clock.sleeps == [pytest.approx(wait)]

    def test_backoff_doubles_without_a_hint(self) -> None:
        gate, clock = fake_gate()
        once, made = answers(Attempt(503), Attempt(503), Attempt(503), OK)
        run(gate, once)
        assert made == [1, 2, 3, 4]
        assert clock.sleeps == [0.5, 1.0, 2.0]

    def test_one_failed_connection_waits_alone(self) -> None:
        """A reset is one request's bad luck: the host is not held up, the request waits."""
        gate, clock = fake_gate()
        once, made = answers(ConnectionResetError("reset"), OK)
        assert run(gate, once) == OK
        assert made == [1, 2]
        assert clock.sleeps == [0.5]
        # Nobody else waits: the host has no backoff.
        with gate.slot(threading.Event()):
            pass
        assert clock.sleeps == [0.5]

    def test_attempts_used_up(self) -> None:
        gate, _ = fake_gate(HostLimits(attempts=3))
        once, made = answers(Attempt(429))
        with pytest.raises(GaveUpError) as raised:
            run(gate, once)
        error = raised.value
        assert made == [1, 2, 3]
        assert error.tries == 3
        assert error.host == "registry.test"
        assert error.decision.verdict is Verdict.GIVE_UP
        assert error.last == Attempt(429)
        assert str(error).startswith("registry registry.test limited the run: HTTP 429 after 3")
        assert gate.usage().limited == 3

    def test_a_wait_longer_than_allowed_gives_up_at_once(self) -> None:
        gate, clock = fake_gate(HostLimits(max_wait=60))
        once, made = answers(Attempt(429, retry_after="3600"))
        with pytest.raises(GaveUpError) as raised:
            run(gate, once)
        assert made == [1]
        assert clock.sleeps == []
        assert "until 2026-12-07 22:00:00 UTC" in str(raised.value)
        assert "max_wait" in str(raised.value)

    def test_a_policy_bounds_failures_not_limits(self) -> None:
        """ATTEMPTS (a caller's RetryPolicy) ends transient failures; limits go on to the
        host's own attempts."""
        gate, _ = fake_gate(HostLimits(attempts=5))
        failing, made = answers(Attempt(503))
        with pytest.raises(GaveUpError) as raised:
            run(gate, failing, attempts=2)
        assert made == [1, 2]
        assert str(raised.value) == "registry registry.test kept failing: HTTP 503 after 2 tries"
        limited, tried = answers(Attempt(429, retry_after="1"))
        with pytest.raises(GaveUpError):
            run(gate, limited, attempts=2)
        assert tried == [1, 2, 3, 4, 5]

    def test_host_attempts_bound_a_larger_policy(self) -> None:
        gate, _ = fake_gate(HostLimits(attempts=2))
        once, made = answers(Attempt(503))
        with pytest.raises(GaveUpError):
            run(gate, once, attempts=9)
        assert made == [1, 2]

    def test_exceptions_accepted_or_final_are_raised_as_they_are(self) -> None:
        gate, _ = fake_gate()
        final, made = answers(ValueError("bad name"))
        with pytest.raises(ValueError, match="bad name"):
            run(gate, final)
        assert made == [1]
        refused = PermissionError("no")

        def accepting(result: Attempt | Exception) -> Attempt:
            return Attempt(401)

        with pytest.raises(PermissionError):
            retried(gate, threading.Event(), answers(refused)[0], accepting, jitter=lambda: 0.0)

    def test_cancelled_before_a_try(self) -> None:
        gate, _ = fake_gate()
        cancel = threading.Event()
        cancel.set()
        once, made = answers(OK)
        with pytest.raises(GateCancelledError):
            retried(gate, cancel, once, judge)
        assert made == []


class TestHostGate:
    """The cap, the rate and the backoff, as every request meets them."""

    def test_backoff_holds_every_request(self) -> None:
        gate, clock = fake_gate()
        gate.back_off(Decision(Verdict.RETRY, wait=5.0, host_wide=True, limited=True))
        with gate.slot(threading.Event()):
            pass
        assert clock.sleeps == [5.0]
        with gate.slot(threading.Event()):
            pass
        assert clock.sleeps == [5.0]

    def test_the_longest_backoff_wins(self) -> None:
        gate, clock = fake_gate()
        gate.back_off(Decision(Verdict.RETRY, wait=5.0, host_wide=True))
        gate.back_off(Decision(Verdict.RETRY, wait=2.0, host_wide=True))
        with gate.slot(threading.Event()):
            pass
        assert sum(clock.sleeps) == 5.0

    def test_rate(self) -> None:
        gate, clock = fake_gate(HostLimits(per_minute=60))
        for _ in range(60):  # a minute's worth at once
            with gate.slot(threading.Event()):
                pass
        assert clock.sleeps == []
        with gate.slot(threading.Event()):
            pass
        assert sum(clock.sleeps) == pytest.approx(1.0)
        assert gate.usage().requests == 61

    def test_a_limit_empties_the_bucket(self) -> None:
        gate, clock = fake_gate(HostLimits(per_minute=120))
        gate.back_off(Decision(Verdict.RETRY, wait=0.0, host_wide=True, limited=True))
        with gate.slot(threading.Event()):
            pass
        assert sum(clock.sleeps) == pytest.approx(0.5)

    def test_cap_with_threads(self) -> None:
        gate = HostGate("registry.test", HostLimits(max_requests=3))
        lock = threading.Lock()
        now = most = 0

        def request() -> None:
            nonlocal now, most
            with gate.slot(threading.Event()):
                with lock:
                    now += 1
                    most = max(most, now)
                time.sleep(0.02)
                with lock:
                    now -= 1

        threads = [threading.Thread(target=request) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert most == 3
        assert gate.usage().requests == 16
        assert gate.usage().waited > 0

    def test_cancel_ends_a_wait_for_a_slot(self) -> None:
        gate = HostGate("registry.test", HostLimits(max_requests=1))
        cancel = threading.Event()
        errors: list[BaseException] = []
        held = threading.Event()
        release = threading.Event()

        def holder() -> None:
            with gate.slot(threading.Event()):
                held.set()
                release.wait(10)

        def waiter() -> None:
            try:
                with gate.slot(cancel):
                    pass
            except GateCancelledError as exc:
                errors.append(exc)

        first = threading.Thread(target=holder)
        first.start()
        held.wait(10)
        second = threading.Thread(target=waiter)
        second.start()
        cancel.set()
        second.join(5)
        release.set()
        first.join()
        assert not second.is_alive()
        assert len(errors) == 1

    def test_cancel_ends_a_backoff(self) -> None:
        gate = HostGate("registry.test", HostLimits())
        gate.back_off(Decision(Verdict.RETRY, wait=600.0, host_wide=True))
        cancel = threading.Event()
        threading.Timer(0.1, cancel.set).start()
        began = time.monotonic()
        with pytest.raises(GateCancelledError), gate.slot(cancel):
            pass
        assert time.monotonic() - began < 60


class TestRegistryGates:
    """One gate per host, with its limits; Docker Hub's names share one."""

    def test_docker_hub_names_share_a_gate(self) -> None:
        gates = RegistryGates()
        hub = gates.host("docker.io")
        assert gates.host("registry-1.docker.io") is hub
        assert gates.host("index.docker.io") is hub
        assert (hub.host, hub.limits) == (DOCKER_HUB_GATE, DOCKER_HUB_LIMITS)
        assert gates.host("127.0.0.1:5000") is not hub

    def test_configured_limits(self) -> None:
        own = HostLimits(max_requests=2, per_minute=30)
        gates = RegistryGates(RegistryLimits({"registry.example.org": own}))
        assert gates.host("Registry.Example.org").limits == own
        assert gates.host("other.example.org").limits == HostLimits()

    def test_usage_sorted_and_only_hosts_asked(self) -> None:
        gates = RegistryGates()
        for host in ("b.example", "a.example", "b.example"):
            with gates.host(host).slot(threading.Event()):
                pass
        gates.host("c.example")  # made, never asked
        assert [(u.host, u.requests) for u in gates.usage()] == [("a.example", 1), ("b.example", 2)]


class TestManifestCache:
    """Manifests by digest, bounded in entries and bytes."""

    def test_kept_and_bounded(self) -> None:
        cache = ManifestCache(max_entries=2, max_bytes=10)
        cache.put("h", "r", "sha256:1", b"1234", "application/json")
        cache.put("h", "r", "sha256:2", b"5678")
        assert cache.get("h", "r", "sha256:1") == (b"1234", "application/json")
        cache.put("h", "r", "sha256:3", b"9")  # drops the least recently used: 2
        assert cache.get("h", "r", "sha256:2") is None
        assert cache.get("h", "r", "sha256:1") == (b"1234", "application/json")
        cache.put("h", "r", "sha256:4", b"abcdefgh")  # bytes: drops 1, then 3
        assert cache.get("h", "r", "sha256:1") is None
        assert cache.get("h", "r", "sha256:4") == (b"abcdefgh", "")
        cache.put("h", "r", "sha256:5", b"x" * 11)  # larger than the whole cache
        assert cache.get("h", "r", "sha256:5") is None
        assert cache.get("other", "r", "sha256:4") is None
        cache.drop("h", "r", "sha256:4")  # deleted during the run
        assert cache.get("h", "r", "sha256:4") is None
        cache.put("h", "r", "sha256:6", b"0123456789")  # the bytes dropped are free again
        assert cache.get("h", "r", "sha256:6") is not None
