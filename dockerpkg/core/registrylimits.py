"""How hard dockerpkg may press a registry, and what to do with each answer: pure rules.

Every request to a registry host and every daemon pull or push from it goes through one gate
per host (effects/registry/gate.py), shared by all workers and builders of a run. This module
says how many may be in flight at once and how many may start a minute (`HostLimits`, the
config's `registries` key), and, for each answer, whether to hand it to the caller, try again
(after how long, and whether the whole host waits) or give up (`decide`). The clock's value
and the jitter are passed in: nothing here reads a clock or draws a random number.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from dockerpkg.core.retryafter import body_seconds, header_seconds, utc_text

# The names Docker Hub goes by; they share one gate and Docker Hub's own limits.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# The API host Docker Hub's gate is known by.
DOCKER_HUB_GATE = "registry-1.docker.io"


@attrs.frozen
class HostLimits:
    """The limits of one registry host (a `registries` entry, or the defaults).

    ``max_requests``: requests (and daemon pulls and pushes) in flight at once; a pipelined
    batch of checks on one connection is one. ``per_minute``: at most this many start in any
    60 seconds (a sliding window of the last `per_minute` start times; a limit fills it, so
    that requests come back at the rate's pace); None: no rate. ``attempts``: tries of one
    request before its step fails. ``max_wait``: the longest single wait honoured, in
    seconds; a registry asking for longer fails the step at once, saying until when.
    """

    max_requests: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    per_minute: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(1))
    )
    attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    max_wait: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))


DEFAULT_LIMITS = HostLimits()
# Docker Hub counts manifest GETs against small hourly allowances and limits API rates.
DOCKER_HUB_LIMITS = HostLimits(max_requests=3, per_minute=300)


def _frozen(hosts: Mapping[str, HostLimits]) -> Mapping[str, HostLimits]:
    return MappingProxyType(dict(hosts))


@attrs.frozen
class RegistryLimits:
    """The config's `registries` key: host (`host[:port]`, as in image names) -> its limits."""

    hosts: Mapping[str, HostLimits] = attrs.field(factory=dict, converter=_frozen)

    def for_host(self, host: str) -> HostLimits:
        """HOST's limits: configured, else Docker Hub's own for Docker Hub, else the
        defaults. Docker Hub's names all give the same answer."""
        name = gate_name(host)
        # Configured names are matched as gates are, so `docker.io:` covers Docker Hub.
        for configured, limits in self.hosts.items():
            if gate_name(configured) == name:
                return limits
        return DOCKER_HUB_LIMITS if name == DOCKER_HUB_GATE else DEFAULT_LIMITS


def gate_name(host: str) -> str:
    """The name of HOST's gate: Docker Hub's names are one host."""
    name = host.strip().lower()
    return DOCKER_HUB_GATE if not name or name in DOCKER_HUB_HOSTS else name


class Fault(enum.Enum):
    """What kind of failure one try met, when it got no HTTP answer."""

    NONE = "none"  # an HTTP answer came: see its status
    CONNECTION = "connection"  # refused, reset, closed mid-body
    TIMEOUT = "timeout"
    FINAL = "final"  # a failure asking again cannot mend (TLS, a bad name)


@attrs.frozen
class Attempt:
    """What one try of a request (or a daemon pull or push) got."""

    status: int | None  # the HTTP status; None: no answer (see fault)
    fault: Fault = Fault.NONE
    retry_after: str | None = None  # the Retry-After header, as sent
    body: str = ""  # the start of the answer's body or the daemon's message (hints live there)


class Verdict(enum.Enum):
    ACCEPT = "accept"  # the answer is the caller's: not a failure asking again may mend
    RETRY = "retry"
    GIVE_UP = "give_up"


@attrs.frozen
class Decision:
    """What to do after one try."""

    verdict: Verdict
    wait: float = 0.0  # seconds before the next try (RETRY)
    host_wide: bool = False  # the whole host waits (a limit or an outage), not one request
    limited: bool = False  # the registry limited the rate (429, 403 "rate limit", 503 + hint)
    asked: float | None = None  # the wait the registry asked for, in seconds, if it said
    # GIVE_UP at once because ASKED was longer than this (the host's `max_wait`); else None.
    max_wait: float | None = None


# Added to a wait the registry asked for, so that its clock too says the wait is over.
HINT_MARGIN = 0.05
# Backoff without a hint: the first wait, doubled each try up to the longest (seconds).
FIRST_BACKOFF = 0.5
LONGEST_BACKOFF = 30.0
# A limit that says not for how long (Docker Hub's pull limit through the daemon, which hides
# the header) starts slower: asking again within a second would only be refused again.
FIRST_LIMITED_BACKOFF = 2.0

# GHCR's secondary limit answers 403 with this in the body; a plain 403 will not change.
_RATE_LIMIT_TEXT = re.compile(r"rate[ _-]?limit", re.IGNORECASE)
# Answers saying the host itself struggles: every request to it waits.
_HOST_STRUGGLES = frozenset({502, 503, 504})


class _Kind(enum.Enum):
    """What an answer says about asking again."""

    ACCEPT = "accept"  # the caller's, as it is
    LIMITED = "limited"  # the host limits the rate: all of it waits
    STRUGGLING = "struggling"  # the host is down or overloaded: all of it waits
    FLAKY = "flaky"  # this one request failed: it alone waits
    FINAL = "final"


def _kind(attempt: Attempt, hint: float | None) -> _Kind:
    status = attempt.status
    if attempt.fault is Fault.FINAL:
        return _Kind.FINAL
    if attempt.fault is not Fault.NONE or status is None:
        # No (whole) answer: refused, reset, cut mid-body, timed out.
        return _Kind.FLAKY
    if (
        status == 429
        or (status == 403 and _RATE_LIMIT_TEXT.search(attempt.body))
        or (status == 503 and hint is not None)
    ):
        return _Kind.LIMITED
    if status in _HOST_STRUGGLES:
        return _Kind.STRUGGLING
    if status == 500:
        return _Kind.FLAKY
    return _Kind.ACCEPT


def hinted_wait(attempt: Attempt, now: float) -> float | None:
    """The seconds ATTEMPT's answer asks to wait, in any form seen in the wild: a
    Retry-After header in seconds or as an HTTP date (NOW: the wall clock, seconds since the
    epoch), or GHCR's ``retry-after: 10.48ms`` in the body; None when it says none."""
    if attempt.retry_after is not None:
        seconds = header_seconds(attempt.retry_after, now)
        if seconds is not None:
            return seconds
    return body_seconds(attempt.body)


def backoff(tries: int, limits: HostLimits, jitter: float, first: float = FIRST_BACKOFF) -> float:
    """The wait after try number TRIES when the registry asked for none: doubling from
    FIRST up to LONGEST_BACKOFF, spread by up to half again by JITTER (in [0, 1)), never
    above LIMITS.max_wait."""
    # The exponent's cap keeps a huge TRIES from building a huge integer.
    doubled = min(LONGEST_BACKOFF, first * 2.0 ** min(tries - 1, 16))
    return min(limits.max_wait, doubled * (1 + 0.5 * jitter))


def decide(attempt: Attempt, tries: int, limits: HostLimits, now: float, jitter: float) -> Decision:
    """What to do after try number TRIES (1-based) of a request got ATTEMPT.

    NOW is the wall clock (seconds since the epoch, for HTTP dates); JITTER a number in
    [0, 1) the caller drew, spreading waits so that clients do not return in step.
    """
    if tries < 1:
        raise ValueError(f"tries counts from 1, not {tries}")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), not {jitter}")
    hint = hinted_wait(attempt, now)
    kind = _kind(attempt, hint)
    if kind is _Kind.ACCEPT:
        return Decision(Verdict.ACCEPT)
    if kind is _Kind.FINAL:
        return Decision(Verdict.GIVE_UP)
    host_wide = kind in (_Kind.LIMITED, _Kind.STRUGGLING)
    limited = kind is _Kind.LIMITED
    if hint is not None and hint > limits.max_wait:
        # Waiting part of it would only earn another refusal: say until when, now.
        return Decision(
            Verdict.GIVE_UP, 0.0, host_wide, limited, asked=hint, max_wait=limits.max_wait
        )
    if tries >= limits.attempts:
        return Decision(Verdict.GIVE_UP, 0.0, host_wide, limited, asked=hint)
    # A hint is honoured exactly (never shortened, never spread); jitter is for guesses.
    first = FIRST_LIMITED_BACKOFF if limited else FIRST_BACKOFF
    wait = hint + HINT_MARGIN if hint is not None else backoff(tries, limits, jitter, first)
    return Decision(Verdict.RETRY, wait, host_wide, limited, asked=hint)


# The daemon's words for an HTTP status, as moby, containerd and distribution's client
# write them: "received unexpected HTTP status: 503 Service Unavailable", "unexpected
# status from PUT request to URL: 429 Too Many Requests", "error parsing HTTP 429 response
# body", "unexpected status code 502".
_DAEMON_STATUS = (
    re.compile(r"HTTP status:?\s*([1-5][0-9]{2})\b"),
    re.compile(r"status code:?\s*([1-5][0-9]{2})\b"),
    re.compile(r"unexpected status\b[^\n]*?:\s*([1-5][0-9]{2})(?=\s|$)"),
    re.compile(r"HTTP ([1-5][0-9]{2}) response"),
)
# Registry error codes as the daemon prints them (`toomanyrequests: ...`), by status.
_DAEMON_CODES = (
    (re.compile(r"\btoomanyrequests\b|too many requests|rate[ _-]?limit", re.IGNORECASE), 429),
    (re.compile(r"\bunauthorized\b|authentication required", re.IGNORECASE), 401),
    (re.compile(r"\bdenied\b", re.IGNORECASE), 403),
    (re.compile(r"\b(manifest|name|blob) unknown\b|\bnot found\b", re.IGNORECASE), 404),
)
_DAEMON_TIMEOUT = re.compile(
    r"i/o timeout|handshake timeout|deadline exceeded|Client\.Timeout|timeout awaiting",
    re.IGNORECASE,
)
_DAEMON_CONNECTION = re.compile(
    r"connection reset|connection refused|broken pipe|\bEOF\b|server closed|"
    r"connection closed|closed network connection|stream error|http2: server sent GOAWAY",
    re.IGNORECASE,
)


def _daemon_status(message: str) -> int | None:
    for pattern in _DAEMON_STATUS:
        if match := pattern.search(message):
            return int(match[1])
    for pattern, status in _DAEMON_CODES:
        if pattern.search(message):
            return status
    return None


def daemon_attempt(message: str) -> Attempt:
    """A daemon's pull or push failure (its MESSAGE) as an attempt: a rate limit
    (`toomanyrequests`, HTTP 429), a registry's 5xx, a reset connection, or final.

    A registry's answer that will not change (`unauthorized`, `denied`, `manifest unknown`)
    keeps its status, so that `decide` hands it back as it is; a message saying none of
    these is final. The message is the body: GHCR's `retry-after:` hint lives there."""
    status = _daemon_status(message)
    if status is not None:
        return Attempt(status, body=message)
    if _DAEMON_TIMEOUT.search(message):
        return Attempt(None, Fault.TIMEOUT, body=message)
    if _DAEMON_CONNECTION.search(message):
        return Attempt(None, Fault.CONNECTION, body=message)
    return Attempt(None, Fault.FINAL, body=message)


_FAULT_TEXT = {
    Fault.CONNECTION: "the connection failed (refused, reset or cut off)",
    Fault.TIMEOUT: "no answer in time",
    Fault.FINAL: "a failure trying again cannot mend",
}


def _tries_text(tries: int) -> str:
    return "1 try" if tries == 1 else f"{tries:,} tries"


def limit_message(
    registry: str, decision: Decision, attempt: Attempt, tries: int, now: float
) -> str:
    """The failure of a step given up on REGISTRY after TRIES tries: which registry limited
    the run (or failed), with what, and until when it asked to be left alone (NOW: the wall
    clock, seconds since the epoch; times are shown in UTC).

    Never quotes the answer's body (it may echo a request) beyond the wait it asked for."""
    what = (
        f"HTTP {attempt.status}"
        if attempt.fault is Fault.NONE and attempt.status is not None
        else _FAULT_TEXT.get(attempt.fault, "no answer")
    )
    if decision.limited:
        text = f"registry {registry} limited the run: {what} after {_tries_text(tries)}"
    elif attempt.fault is Fault.FINAL:
        text = f"registry {registry} failed: {what}"
    else:
        text = f"registry {registry} kept failing: {what} after {_tries_text(tries)}"
    if decision.asked is not None:
        text += f"; it asked to wait until {utc_text(now + decision.asked)}"
        if decision.max_wait is not None:
            text += (
                f" (the limit for one wait is {decision.max_wait:g} s; raise "
                f"`registries: {{{registry}: {{max_wait: ...}}}}` to wait longer)"
            )
    elif decision.limited:
        text += "; it did not say for how long"
    return text


@attrs.frozen
class RegistryUsage:
    """What one run asked of one registry host, for the report."""

    host: str
    requests: int = 0  # tries sent (daemon pulls and pushes count one each)
    retries: int = 0  # tries that were a second or later try
    limited: int = 0  # answers that limited the rate
    waited: float = 0.0  # seconds spent waiting for the host's limits (backoff, rate, cap)
