"""The run's gates (effects/registry/gate.py): the cap, the rate, the host-wide backoff and the
retry loop every registry request and daemon transfer goes through, on a fake clock (waits
are recorded, not slept) and with real threads where the cap is what is checked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from dockerpkg.effects.registry import (
    RegistryCancelledError,
    RegistryClient,
    RegistryError,
    RegistryFailure,
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
        with gate.slot(threading.Event()):  # only once the first of them is a minute old
            pass
        assert sum(clock.sleeps) == pytest.approx(60.0)
        assert gate.usage().requests == 61

    def test_a_batch_counts_its_requests_and_starts_them_against_the_rate(self) -> None:
        gate, clock = fake_gate(HostLimits(per_minute=60))
        with gate.slot(threading.Event(), requests=50):
            pass
        clock.now += 30
        with gate.slot(threading.Event(), requests=20):  # 10 free: waits for the 50 to age
            pass
        assert sum(clock.sleeps) == pytest.approx(30.0)
        with gate.slot(threading.Event(), requests=100):  # more than a minute's worth
            pass
        assert sum(clock.sleeps) == pytest.approx(90.0)
        assert gate.usage().requests == 170

    def test_at_most_per_minute_start_in_any_minute(self) -> None:
        """Whatever the mix of single requests, batches, limits and idle time, no stretch
        of 60 s holds more than `per_minute` starts."""
        per_minute = 10
        gate, clock = fake_gate(HostLimits(per_minute=per_minute))
        starts: list[float] = []
        limited = Decision(Verdict.RETRY, wait=1.0, host_wide=True, limited=True)
        for step in range(120):
            requests = (1, 3, 1, 7, 2)[step % 5]
            with gate.slot(threading.Event(), requests=requests):
                starts += [clock()] * requests
            if step % 17 == 5:
                gate.back_off(limited)
            clock.now += (0.0, 0.7, 13.0, 4.1)[step % 4]
        assert sum(clock.sleeps) > 0
        for first in starts:
            # Within a nanosecond of a minute on is the next minute (float rounding).
            in_minute = [t for t in starts if first <= t < first + 60.0 - 1e-6]
            assert len(in_minute) <= per_minute, (first, in_minute)

    def test_a_limit_fills_the_minute_then_requests_come_at_the_rate(self) -> None:
        gate, clock = fake_gate(HostLimits(per_minute=120))
        gate.back_off(Decision(Verdict.RETRY, wait=0.0, host_wide=True, limited=True))
        for _ in range(3):
            with gate.slot(threading.Event()):
                pass
        assert clock.sleeps == [pytest.approx(0.5)] * 3

    def test_a_batch_backs_off_once_for_the_longest_wait(self) -> None:
        gate, clock = fake_gate()
        gate.back_off_all(
            [
                Decision(Verdict.RETRY, wait=0.6, host_wide=True),
                Decision(Verdict.RETRY, wait=10.05, host_wide=True, limited=True),
                Decision(Verdict.RETRY, wait=1.05, host_wide=True, limited=True),
                Decision(Verdict.RETRY, wait=30.0),  # one request's: the host does not wait
            ]
        )
        with gate.slot(threading.Event()):
            pass
        assert clock.sleeps == [pytest.approx(10.05)]
        usage = gate.usage()
        assert (usage.retries, usage.limited) == (4, 2)

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


class _Limiting(BaseHTTPRequestHandler):
    """A registry whose API root answers and whose manifests are limited for half a minute."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        limited = self.path != "/v2/"
        self.send_response(429 if limited else 200)
        if limited:
            self.send_header("Retry-After", "30")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD  # noqa: N815 (http.server's name)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_an_interrupt_ends_a_wait_at_the_gate() -> None:
    """The client's Interrupter ends a backoff the registry asked for, at once."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Limiting)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = RegistryClient(f"127.0.0.1:{server.server_address[1]}", gates=RegistryGates())
    try:
        timer = threading.Timer(0.5, client.interrupt)
        timer.start()
        began = time.monotonic()
        with pytest.raises(RegistryCancelledError):
            client.published("team/app", "1.0")
        assert time.monotonic() - began < 20
        timer.join()
    finally:
        client.close()
        server.shutdown()
        server.server_close()


class _Scripted(BaseHTTPRequestHandler):
    """A registry whose manifests answer as the server's SCRIPT says: path -> the answers
    of its first requests, each (status, Retry-After or None); later ones 200 with a
    digest. Each request is recorded with the run's fake clock's time."""

    protocol_version = "HTTP/1.1"
    server: _ScriptedServer

    def do_HEAD(self) -> None:
        server = self.server
        with server.lock:
            server.log.append((self.command, self.path, server.clock()))
            script = server.script.get(self.path, [])
            status, hint = script.pop(0) if script else (200, None)
        self.send_response(status)
        if hint is not None:
            self.send_header("Retry-After", hint)
        if status == 200 and self.path != "/v2/":
            self.send_header("Docker-Content-Digest", "sha256:" + "ab" * 32)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD  # noqa: N815 (http.server's name)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: dict[str, list[tuple[int, str | None]]], clock: FakeClock) -> None:
        super().__init__(("127.0.0.1", 0), _Scripted)
        self.script = script
        self.clock = clock
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, float]] = []

    def asked(self, path: str) -> list[float]:
        """When PATH was asked (the fake clock's times)."""
        return [when for _, asked, when in self.log if asked == path]


def _checked(
    script: dict[str, list[tuple[int, str | None]]], limits: HostLimits = DEFAULT_LIMITS
) -> tuple[_ScriptedServer, Callable[[list[tuple[str, str]]], Any], RegistryGates]:
    """A scripted registry, and a way to check refs on it in one pipelined batch through
    gates on a fake clock."""
    clock = FakeClock()
    server = _ScriptedServer(script, clock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    gates = RegistryGates(RegistryLimits({host: limits}), clock=clock, sleep=clock.sleep)

    def check(refs: list[tuple[str, str]]) -> Any:
        with RegistryClient(host, workers=1, gates=gates) as client:
            return client.digests_many(refs)

    return server, check, gates


@pytest.fixture
def scripted() -> Any:
    servers: list[_ScriptedServer] = []

    def start(
        script: dict[str, list[tuple[int, str | None]]], limits: HostLimits = DEFAULT_LIMITS
    ) -> tuple[_ScriptedServer, Callable[[list[tuple[str, str]]], Any], RegistryGates]:
        found = _checked(script, limits)
        servers.append(found[0])
        return found

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


A, B = "/v2/team/a/manifests/1.0", "/v2/team/b/manifests/1.0"
REFS = [("team/a", "1.0"), ("team/b", "1.0")]


class TestPipelinedBatch:
    """A pipelined batch's answers are each check's first try: every limited answer counts,
    the host waits for the longest wait asked, and the checks asked again go on counting."""

    @pytest.mark.parametrize(
        ("first", "limited"),
        [((503, None), 1), ((429, "1"), 2)],
        ids=["503-without-a-hint", "429-asking-1s"],
    )
    def test_every_path_waits_what_it_asked(
        self, scripted: Any, first: tuple[int, str | None], limited: int
    ) -> None:
        server, check, gates = scripted({A: [first], B: [(429, "10")]})
        found = check(REFS)
        assert set(found.values()) == {"sha256:" + "ab" * 32}
        for path in (A, B):
            assert len(server.asked(path)) == 2, path
        # B asked for 10 s: neither it nor anything else is asked again sooner (the fake
        # clock's sums are rounded: a nanosecond less is no sooner).
        asked = 10 + HINT_MARGIN - 1e-9
        assert server.asked(B)[1] - server.asked(B)[0] >= asked
        assert server.asked(A)[1] - server.asked(A)[0] >= asked
        usage = gates.usage()[0]
        assert (usage.retries, usage.limited) == (2, limited)

    def test_a_check_asked_again_goes_on_counting_its_tries(self, scripted: Any) -> None:
        server, check, gates = scripted({A: [(429, "1")] * 10}, HostLimits(attempts=3))
        with pytest.raises(RegistryError) as raised:
            check(REFS)
        assert len(server.asked(A)) == 3  # the batch's try and two more
        assert raised.value.failure is RegistryFailure.RATE_LIMITED
        assert "HTTP 429 after 3 tries" in str(raised.value)
        assert gates.usage()[0].limited == 3

    @pytest.mark.parametrize(
        ("limits", "hint"),
        [(HostLimits(attempts=1), "1"), (DEFAULT_LIMITS, "3600")],
        ids=["one-try-allowed", "wait-over-max-wait"],
    )
    def test_a_batch_answer_given_up_on_is_not_asked_again(
        self, scripted: Any, limits: HostLimits, hint: str
    ) -> None:
        server, check, _ = scripted({A: [(429, hint)] * 10}, limits)
        with pytest.raises(RegistryError) as raised:
            check(REFS)
        assert server.asked(A) == [server.asked(A)[0]]
        assert raised.value.failure is RegistryFailure.RATE_LIMITED
        assert "HTTP 429 after 1 try" in str(raised.value)
