"""A daemon's pull or push failure, read from its message as moby, containerd and
distribution's client write it, and what `decide` then does with it: the daemon retries
none of these itself."""

from __future__ import annotations

import pytest

from dockerpkg.core.registrylimits import (
    Attempt,
    Fault,
    HostLimits,
    Verdict,
    daemon_attempt,
    decide,
)

NOW = 1_796_677_380.0
LIMITS = HostLimits()


@pytest.mark.parametrize(
    ("message", "status", "fault", "verdict"),
    [
        # Rate limits.
        ("toomanyrequests: too many requests", 429, Fault.NONE, Verdict.RETRY),
        (
            "toomanyrequests: You have reached your pull rate limit. You may increase the "
            "limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
            429,
            Fault.NONE,
            Verdict.RETRY,
        ),
        (
            "received unexpected HTTP status: 429 Too Many Requests",
            429,
            Fault.NONE,
            Verdict.RETRY,
        ),
        (
            "failed to push 127.0.0.1:5000/a/b:1: unexpected status from PUT request to "
            "http://127.0.0.1:5000/v2/a/b/manifests/1: 429 Too Many Requests",
            429,
            Fault.NONE,
            Verdict.RETRY,
        ),
        (
            "error parsing HTTP 429 response body: invalid character '<': \"<html>\"",
            429,
            Fault.NONE,
            Verdict.RETRY,
        ),
        (
            "toomanyrequests: retry-after: 10.48ms, allowed: 2000/minute",
            429,
            Fault.NONE,
            Verdict.RETRY,
        ),
        # The registry struggles.
        (
            "received unexpected HTTP status: 503 Service Unavailable",
            503,
            Fault.NONE,
            Verdict.RETRY,
        ),
        ("received unexpected HTTP status: 502 Bad Gateway", 502, Fault.NONE, Verdict.RETRY),
        (
            'Get "https://r.example/v2/": received unexpected HTTP status: 504 Gateway Timeout',
            504,
            Fault.NONE,
            Verdict.RETRY,
        ),
        (
            "received unexpected HTTP status: 500 Internal Server Error",
            500,
            Fault.NONE,
            Verdict.RETRY,
        ),
        # The connection broke or stalled.
        (
            "read tcp 172.17.0.1:53010->127.0.0.1:5000: read: connection reset by peer",
            None,
            Fault.CONNECTION,
            Verdict.RETRY,
        ),
        (
            'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
            None,
            Fault.CONNECTION,
            Verdict.RETRY,
        ),
        ("unexpected EOF", None, Fault.CONNECTION, Verdict.RETRY),
        (
            'Put "http://127.0.0.1:5000/v2/a/blobs/uploads/x": write tcp ...: broken pipe',
            None,
            Fault.CONNECTION,
            Verdict.RETRY,
        ),
        (
            'Get "https://registry-1.docker.io/v2/": net/http: request canceled while waiting '
            "for connection (Client.Timeout exceeded while awaiting headers)",
            None,
            Fault.TIMEOUT,
            Verdict.RETRY,
        ),
        (
            "dial tcp 10.0.0.1:443: i/o timeout",
            None,
            Fault.TIMEOUT,
            Verdict.RETRY,
        ),
        # Answers that will not change: the caller's, as they are.
        ("unauthorized: authentication required", 401, Fault.NONE, Verdict.ACCEPT),
        (
            "received unexpected HTTP status: 401 Unauthorized",
            401,
            Fault.NONE,
            Verdict.ACCEPT,
        ),
        (
            "denied: requested access to the resource is denied",
            403,
            Fault.NONE,
            Verdict.ACCEPT,
        ),
        ("manifest unknown", 404, Fault.NONE, Verdict.ACCEPT),
        (
            "manifest for 127.0.0.1:5000/a/b:9 not found: manifest unknown: manifest unknown",
            404,
            Fault.NONE,
            Verdict.ACCEPT,
        ),
        (
            "pull access denied for nosuch, repository does not exist or may require "
            "'docker login': denied: requested access to the resource is denied",
            403,
            Fault.NONE,
            Verdict.ACCEPT,
        ),
        ("name unknown: repository name not known to registry", 404, Fault.NONE, Verdict.ACCEPT),
        # Anything else: asking again will not mend it.
        (
            'Get "https://127.0.0.1:5000/v2/": http: server gave HTTP response to HTTPS client',
            None,
            Fault.FINAL,
            Verdict.GIVE_UP,
        ),
        (
            "dial tcp: lookup nosuch.example on 127.0.0.53:53: no such host",
            None,
            Fault.FINAL,
            Verdict.GIVE_UP,
        ),
        (
            "tls: failed to verify certificate: x509: certificate signed by unknown authority",
            None,
            Fault.FINAL,
            Verdict.GIVE_UP,
        ),
        ("", None, Fault.FINAL, Verdict.GIVE_UP),
    ],
)
def test_daemon_messages(message: str, status: int | None, fault: Fault, verdict: Verdict) -> None:
    attempt = daemon_attempt(message)
    assert (attempt.status, attempt.fault) == (status, fault)
    assert attempt.retry_after is None
    assert attempt.body == message
    assert decide(attempt, 1, LIMITS, NOW, 0.0).verdict is verdict


def test_a_daemon_rate_limit_is_host_wide_and_limited() -> None:
    decision = decide(daemon_attempt("toomanyrequests: too many requests"), 1, LIMITS, NOW, 0)
    assert (decision.host_wide, decision.limited, decision.asked) == (True, True, None)


def test_ghcrs_hint_in_a_daemon_message_is_honoured() -> None:
    attempt = daemon_attempt("toomanyrequests: retry-after: 1500ms, allowed: 2000/minute")
    decision = decide(attempt, 1, LIMITS, NOW, 0.9)
    assert decision.asked == pytest.approx(1.5)
    assert decision.wait == pytest.approx(1.55)


def test_a_port_in_a_message_is_no_status() -> None:
    # ":500" and ":5000" are ports, not statuses.
    assert daemon_attempt("dial tcp 127.0.0.1:500: connect: connection refused") == Attempt(
        None, Fault.CONNECTION, body="dial tcp 127.0.0.1:500: connect: connection refused"
    )
    message = "unexpected status from GET request to http://127.0.0.1:5000/v2/: 503 Unavailable"
    assert daemon_attempt(message).status == 503
