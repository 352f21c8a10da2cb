"""One gate per registry host, shared by every worker, builder and client of a run: at most
the host's cap of requests at once, at most its rate, and one backoff for the whole host when
it says it is limited or down. core/registrylimits.py decides; this module waits and counts.
"""

from __future__ import annotations

import collections
import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import attrs

from dockerpkg.core.registrylimits import (
    Attempt,
    Decision,
    Fault,
    HostLimits,
    RegistryLimits,
    RegistryUsage,
    Verdict,
    decide,
    gate_name,
    limit_message,
)
from dockerpkg.effects.registry.manifestcache import ManifestCache

T = TypeVar("T")

# How a gate sleeps: until SECONDS have passed or the event is set (tests pass a fake clock's).
Sleep = Callable[[threading.Event, float], object]
# How often a request waiting for a free slot looks whether its run was cancelled.
_CANCEL_POLL = 0.25
# The rate's window, in seconds: `per_minute` starts at most in any stretch this long.
_MINUTE = 60.0
# A start this close to a minute after another is a minute after it (float rounding of the
# clock and the wait must not keep a request waiting for a nanosecond again and again).
_EPSILON = 1e-9


def _sleep(cancel: threading.Event, seconds: float) -> object:
    return cancel.wait(seconds)


class GateCancelledError(Exception):
    """The run was cancelled while waiting at a gate."""


class GaveUpError(Exception):
    """A request (or a daemon pull or push) was tried as often, or would have waited as
    long, as its host's limits allow. ``last`` is the last try's answer or exception;
    ``message`` says which registry limited or failed the run and until when."""

    def __init__(
        self,
        host: str,
        decision: Decision,
        attempt: Attempt,
        *,
        tries: int,
        message: str,
        last: object,
    ) -> None:
        self.host = host
        self.decision = decision
        self.attempt = attempt
        self.tries = tries
        self.message = message
        self.last = last
        super().__init__(message)


class HostGate:
    """The gate of one registry host; safe to share between threads."""

    def __init__(
        self,
        host: str,
        limits: HostLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = _sleep,
    ) -> None:
        self.host = host
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._in_flight = 0
        self._backoff_until = clock()
        # The rate: the times of the last `per_minute` starts (older ones cannot matter).
        self._starts: collections.deque[float] = collections.deque(maxlen=limits.per_minute or 1)
        self._requests = self._retries = self._limited = 0
        self._waited = 0.0

    @contextlib.contextmanager
    def slot(self, cancel: threading.Event, *, requests: int = 1) -> Iterator[None]:
        """Hold one of the host's slots for the block: first wait out the host's backoff,
        then for a token of its rate, then for a free slot (a set CANCEL ends the wait with
        GateCancelledError). Counts one request, or REQUESTS for a pipelined batch (which
        starts as many against the rate; a batch of more than `per_minute` waits for a
        minute without starts, and then exceeds the rate: callers keep batches smaller)."""
        began = self._clock()
        try:
            self._acquire(cancel, requests)
        finally:
            self._add_wait(self._clock() - began)
        try:
            yield
        finally:
            with self._freed:
                self._in_flight -= 1
                self._freed.notify()

    def _acquire(self, cancel: threading.Event, requests: int) -> None:
        while True:
            if cancel.is_set():
                raise GateCancelledError(f"cancelled while waiting for registry {self.host}")
            with self._freed:
                now = self._clock()
                delay = max(self._backoff_until - now, self._rate_delay(now, requests))
                if delay <= 0:
                    if self._in_flight < self.limits.max_requests:
                        self._in_flight += 1
                        self._requests += requests
                        if self.limits.per_minute is not None:
                            self._starts.extend([now] * min(requests, self.limits.per_minute))
                        return
                    # A release wakes us; the timeout only lets us see a cancellation.
                    self._freed.wait(_CANCEL_POLL)
                    continue
            self._sleep(cancel, delay)

    def _rate_delay(self, now: float, requests: int) -> float:
        """Seconds until REQUESTS may start at NOW with at most `per_minute` starts in any
        minute (those of the last minute counted); 0 without a rate."""
        per_minute = self.limits.per_minute
        if per_minute is None:
            return 0.0
        starts = self._starts
        while starts and starts[0] + _MINUTE <= now + _EPSILON:
            starts.popleft()
        over = len(starts) + min(requests, per_minute) - per_minute
        # The OVER-th oldest start of the last minute must leave it first.
        return 0.0 if over <= 0 else starts[over - 1] + _MINUTE - now

    def back_off(self, decision: Decision) -> None:
        """After a try DECISION says to repeat: a host-wide decision makes every request to
        the host wait DECISION.wait from now (the longest asked wins); a limited one fills
        the rate's last minute, so that requests come back at the rate's pace, not in a
        burst. Counts the retry (and the limit)."""
        self.back_off_all([decision])

    def back_off_all(self, decisions: Sequence[Decision]) -> None:
        """`back_off` for the answers of one batch, all got at once: a retry counted for
        each, a limit for each limited one, and the host waits the longest host-wide
        wait among them."""
        with self._lock:
            now = self._clock()
            for decision in decisions:
                self._retries += 1
                if decision.host_wide:
                    self._backoff_until = max(self._backoff_until, now + decision.wait)
            limited = sum(decision.limited for decision in decisions)
            self._limited += limited
            if limited:
                self._fill_window(now)

    def _fill_window(self, now: float) -> None:
        """Count the last minute as full, its free places taken by starts spread evenly over
        it: they leave it one by one, at the rate's pace."""
        per_minute = self.limits.per_minute
        if per_minute is None:
            return
        starts = [t for t in self._starts if t + _MINUTE > now + _EPSILON]
        free = per_minute - len(starts)
        step = _MINUTE / per_minute
        spread = [now - _MINUTE + step * (index + 1) for index in range(free)]
        self._starts.clear()
        self._starts.extend(sorted(starts + spread))

    def gave_up(self, decision: Decision) -> None:
        """Count a limit that ended the tries (DECISION gives up)."""
        if decision.limited:
            with self._lock:
                self._limited += 1

    def pause(self, cancel: threading.Event, seconds: float) -> None:
        """Wait SECONDS before one request's next try (the host is not held up); a set
        CANCEL ends the wait with GateCancelledError."""
        began = self._clock()
        try:
            if seconds > 0:
                self._sleep(cancel, seconds)
        finally:
            self._add_wait(self._clock() - began)
        if cancel.is_set():
            raise GateCancelledError(f"cancelled while waiting for registry {self.host}")

    def _add_wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._waited += seconds

    def usage(self) -> RegistryUsage:
        with self._lock:
            return RegistryUsage(
                self.host, self._requests, self._retries, self._limited, self._waited
            )


class RegistryGates:
    """The gates of one run, one per registry host (Docker Hub's names share one), made on
    first use with the host's limits; safe to share between threads. Also holds the run's
    manifests read by digest (`manifests`), which never change."""

    def __init__(
        self,
        limits: RegistryLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = _sleep,
    ) -> None:
        self.limits = limits or RegistryLimits()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._gates: dict[str, HostGate] = {}
        self.manifests = ManifestCache()

    def host(self, host: str) -> HostGate:
        """HOST's gate (``host[:port]``; Docker Hub by any of its names)."""
        name = gate_name(host)
        with self._lock:
            gate = self._gates.get(name)
            if gate is None:
                limits = self.limits.for_host(name)
                gate = HostGate(name, limits, clock=self._clock, sleep=self._sleep)
                self._gates[name] = gate
            return gate

    def usage(self) -> tuple[RegistryUsage, ...]:
        """What the run asked of each host, sorted by host (hosts asked nothing left out)."""
        with self._lock:
            gates = sorted(self._gates.items())
        return tuple(usage for _, gate in gates if (usage := gate.usage()).requests)


def retried(
    gate: HostGate,
    cancel: threading.Event,
    once: Callable[[], T],
    judge: Callable[[T | Exception], Attempt],
    *,
    wall: Callable[[], float] = time.time,
    jitter: Callable[[], float] | None = None,
    attempts: int | None = None,
    tried: int = 0,
) -> T:
    """ONCE, each try in one of GATE's slots, until core.registrylimits.decide accepts what
    JUDGE makes of its result (or of the Exception it raised: an accepted exception is raised
    again as it is, and so is one judged final). Waits as decided between tries (the whole
    host waits when told). ATTEMPTS, when given (a caller's RetryPolicy), bounds the tries of
    failures that are not limits: the fewer tries wins. TRIED: the tries of the same request
    made already elsewhere (a pipelined batch, which waited or set their waits): the count
    goes on from there. Raises GaveUpError when the host's limits are used up,
    GateCancelledError when CANCEL is set."""
    draw = jitter or random.random
    tries = tried
    while True:
        with gate.slot(cancel):
            tries += 1
            result: T | Exception
            try:
                result = once()
            except Exception as exc:  # noqa: BLE001 (judged below; raised again unless retried)
                result = exc
        if isinstance(result, Exception) and cancel.is_set():
            raise GateCancelledError(f"cancelled while asking registry {gate.host}") from result
        attempt = judge(result)
        decision = judged(attempt, tries, gate.limits, wall(), draw(), attempts=attempts)
        if decision.verdict is Verdict.ACCEPT:
            if isinstance(result, Exception):
                raise result
            return result
        if decision.verdict is Verdict.GIVE_UP:
            if attempt.fault is Fault.FINAL and isinstance(result, Exception):
                gate.gave_up(decision)
                raise result
            raise give_up(gate, decision, attempt, tries=tries, now=wall(), last=result)
        gate.back_off(decision)
        if not decision.host_wide:
            gate.pause(cancel, decision.wait)


def judged(
    attempt: Attempt,
    tries: int,
    limits: HostLimits,
    now: float,
    jitter: float,
    *,
    attempts: int | None,
) -> Decision:
    """`decide`, with ATTEMPTS (a caller's RetryPolicy, when given) also bounding the tries
    of failures that are not limits."""
    decision = decide(attempt, tries, limits, now, jitter)
    if (
        decision.verdict is Verdict.RETRY
        and attempts is not None
        and tries >= attempts
        and not decision.limited
    ):
        return attrs.evolve(decision, verdict=Verdict.GIVE_UP, wait=0.0)
    return decision


def give_up(
    gate: HostGate, decision: Decision, attempt: Attempt, *, tries: int, now: float, last: object
) -> GaveUpError:
    """The error ending a request DECISION gives up on after TRIES (counted on GATE); LAST
    is its last answer or exception."""
    gate.gave_up(decision)
    message = limit_message(gate.host, decision, attempt, tries, now)
    return GaveUpError(gate.host, decision, attempt, tries=tries, message=message, last=last)
