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
from collections.abc import Mapping
from types import MappingProxyType

import attrs

# The names Docker Hub goes by; they share one gate and Docker Hub's own limits.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# The API host Docker Hub's gate is known by.
DOCKER_HUB_GATE = "registry-1.docker.io"


@attrs.frozen
class HostLimits:
    """The limits of one registry host (a `registries` entry, or the defaults).

    ``max_requests``: requests (and daemon pulls and pushes) in flight at once; a pipelined
    batch of checks on one connection is one. ``per_minute``: at most this many start in any
    minute (a token bucket holding a minute's worth); None: no rate. ``attempts``: tries of
    one request before its step fails. ``max_wait``: the longest single wait honoured, in
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
        raise NotImplementedError


def gate_name(host: str) -> str:
    """The name of HOST's gate: Docker Hub's names are one host."""
    raise NotImplementedError


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


def hinted_wait(attempt: Attempt, now: float) -> float | None:
    """The seconds ATTEMPT's answer asks to wait, in any form seen in the wild: a
    Retry-After header in seconds or as an HTTP date (NOW: the wall clock, seconds since the
    epoch), or GHCR's ``retry-after: 10.48ms`` in the body; None when it says none."""
    raise NotImplementedError


def decide(attempt: Attempt, tries: int, limits: HostLimits, now: float, jitter: float) -> Decision:
    """What to do after try number TRIES (1-based) of a request got ATTEMPT.

    NOW is the wall clock (seconds since the epoch, for HTTP dates); JITTER a number in
    [0, 1) the caller drew, spreading waits so that clients do not return in step.
    """
    raise NotImplementedError


def daemon_attempt(message: str) -> Attempt:
    """A daemon's pull or push failure (its MESSAGE) as an attempt: a rate limit
    (`toomanyrequests`, HTTP 429), a registry's 5xx, a reset connection, or final."""
    raise NotImplementedError


def limit_message(
    registry: str, decision: Decision, attempt: Attempt, tries: int, now: float
) -> str:
    """The failure of a step given up on REGISTRY after TRIES tries: which registry limited
    the run (or failed), with what, and until when it asked to be left alone (NOW: the wall
    clock, seconds since the epoch; times are shown in UTC)."""
    raise NotImplementedError


@attrs.frozen
class RegistryUsage:
    """What one run asked of one registry host, for the report."""

    host: str
    requests: int = 0  # tries sent (daemon pulls and pushes count one each)
    retries: int = 0  # tries that were a second or later try
    limited: int = 0  # answers that limited the rate
    waited: float = 0.0  # seconds spent waiting for the host's limits (backoff, rate, cap)
