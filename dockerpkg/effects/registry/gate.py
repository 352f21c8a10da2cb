"""One gate per registry host, shared by every worker, builder and client of a run: at most
the host's cap of requests at once, at most its rate, and one backoff for the whole host when
it says it is limited or down. core/registrylimits.py decides; this module waits and counts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from dockerpkg.core.registrylimits import (
    Attempt,
    Decision,
    HostLimits,
    RegistryLimits,
    RegistryUsage,
)

T = TypeVar("T")


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
    ) -> None:
        self.host = host
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, cancel: threading.Event) -> Iterator[None]:
        """Hold one of the host's slots for the block: first wait out the host's backoff,
        then for a token of its rate, then for a free slot (a set CANCEL ends the wait with
        GateCancelledError). Counts one request."""
        raise NotImplementedError
        yield

    def back_off(self, decision: Decision) -> None:
        """After a try DECISION says to repeat: a host-wide decision makes every request to
        the host wait DECISION.wait from now (the longest asked wins); a limited one empties
        the rate's bucket. Counts the retry (and the limit)."""
        raise NotImplementedError

    def usage(self) -> RegistryUsage:
        raise NotImplementedError


class RegistryGates:
    """The gates of one run, one per registry host (Docker Hub's names share one), made on
    first use with the host's limits; safe to share between threads."""

    def __init__(
        self,
        limits: RegistryLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RegistryLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._gates: dict[str, HostGate] = {}

    def host(self, host: str) -> HostGate:
        """HOST's gate (``host[:port]``; Docker Hub by any of its names)."""
        raise NotImplementedError

    def usage(self) -> tuple[RegistryUsage, ...]:
        """What the run asked of each host, sorted by host."""
        raise NotImplementedError


def retried(
    gate: HostGate,
    cancel: threading.Event,
    once: Callable[[], T],
    judge: Callable[[T | Exception], Attempt],
    *,
    wall: Callable[[], float] = time.time,
    jitter: Callable[[], float] | None = None,
) -> T:
    """ONCE, each try in one of GATE's slots, until core.registrylimits.decide accepts what
    JUDGE makes of its result (or of the Exception it raised: an accepted exception is raised
    again as it is). Waits as decided between tries (the whole host waits when told).
    Raises GaveUpError when the host's limits are used up, GateCancelledError when CANCEL is
    set."""
    raise NotImplementedError
