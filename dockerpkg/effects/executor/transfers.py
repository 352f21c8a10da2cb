"""Daemon pulls and pushes through the run's registry gates: each holds one slot of its
registry's gate while it runs, and one the daemon ended with a rate limit or a transient
failure is started again under the host's rules (the daemon itself does not retry a 429).

core.registrylimits decides; effects.registry.gate waits and counts; this module says what a
daemon's answer was and writes each retry to the step's log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, TypeVar

from dockerpkg.core.labels import registry_of
from dockerpkg.core.registrylimits import Attempt, Fault, daemon_attempt
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.registry.gate import GateCancelledError, GaveUpError, retried
from dockerpkg.effects.registry.transport import RetryPolicy
from dockerpkg.effects.waits import CancelledError, DaemonError, TimedOutError

T = TypeVar("T")

# Tries of a transfer the registry failed without limiting it (a 5xx, a reset connection):
# as many as a request of dockerpkg's own gets, so an unreachable registry costs seconds,
# not the minute a limit may.
_OUTAGE_TRIES = RetryPolicy().attempts

# What a finished transfer is to the rules: an answer the caller takes.
_DONE = Attempt(status=200)
# A failure asking again cannot mend (a stream past its deadline, a cancelled run, a bug):
# given up at once, and the exception raised as it is.
_FINAL = Attempt(status=None, fault=Fault.FINAL)


def transfer_host(repository: str) -> str:
    """The registry host a pull or push of REPOSITORY (or a label) talks to, as Docker reads
    the name (Docker Hub when it names none)."""
    return registry_of(repository)


def gated(run: Shared, repository: str, log: IO[str], once: Callable[[], T]) -> T:
    """ONCE (a daemon pull or push of REPOSITORY), in one slot of its registry's gate, until
    it succeeds, fails for good, or the host's limits are used up. Every failure is a
    DaemonError for the caller: after a limit, one saying which registry limited the run
    and until when; after an outage or a final failure, the daemon's own; a cancelled wait
    is a CancelledError."""
    host = transfer_host(repository)
    gate = run.settings.gates.host(host)
    limit_tries = gate.limits.attempts
    tries = 0
    # The answer of the try before, and when it ended: what the next try's log line says.
    last: tuple[Attempt, float] = (_DONE, 0.0)

    def attempt() -> T:
        nonlocal tries
        tries += 1
        if tries > 1:
            answer, ended = last
            attempts = limit_tries if answer.status == 429 else min(limit_tries, _OUTAGE_TRIES)
            log.write(
                f"registry {host} answered {_answer(answer)}; trying again after "
                f"{time.monotonic() - ended:.1f} s (try {tries} of {attempts})\n"
            )
        return once()

    def judge(result: T | Exception) -> Attempt:
        nonlocal last
        if not isinstance(result, Exception):
            return _DONE
        if isinstance(result, (TimedOutError, CancelledError)) or run.cancel.is_set():
            return _FINAL
        if not isinstance(result, DaemonError):
            return _FINAL
        found = daemon_attempt(str(result))
        last = (found, time.monotonic())
        return found

    try:
        return retried(gate, run.cancel, attempt, judge, attempts=_OUTAGE_TRIES)
    except GateCancelledError:
        raise CancelledError("cancelled") from None
    except GaveUpError as exc:
        if exc.attempt.fault is Fault.FINAL and isinstance(exc.last, Exception):
            # Not a registry's limit or outage: the daemon's own failure, as it said it.
            raise exc.last from None
        log.write(f"{exc.message}\n")
        if not _limited(exc) and isinstance(exc.last, DaemonError):
            # An outage that outlasted the tries: the daemon's last words say what failed.
            raise exc.last from None
        raise DaemonError(exc.message) from None


def _limited(given_up: GaveUpError) -> bool:
    """Whether the registry limited the transfer given up on (not merely failed)."""
    return given_up.decision.limited or given_up.attempt.status == 429


def _answer(attempt: Attempt) -> str:
    """How a retried daemon failure is named in the log."""
    if attempt.status is not None:
        return f"HTTP {attempt.status}"
    if attempt.fault is Fault.TIMEOUT:
        return "with a timeout"
    return "with a broken connection"
