"""The per-host rules of registry limits, as tables: which limits a host gets and by which
gate, how long an answer asks to wait in each form seen in the wild, what to do after each
kind of answer, and the message of a step given up on."""

from __future__ import annotations

import calendar
import datetime
import email.utils
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    Verdict,
    decide,
    gate_name,
    hinted_wait,
    limit_message,
)
from dockerpkg.core.retryafter import utc_text

# 2026-12-07 21:03:00 UTC, the wall clock of every case.
NOW = float(calendar.timegm((2026, 12, 7, 21, 3, 0)))


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(NOW + seconds_from_now, usegmt=True)


class TestGateName:
    """Docker Hub's names are one gate; other hosts keep host[:port], lowercased."""

    @pytest.mark.parametrize(
        ("host", "gate"),
        [
            ("docker.io", DOCKER_HUB_GATE),
            ("index.docker.io", DOCKER_HUB_GATE),
            ("registry-1.docker.io", DOCKER_HUB_GATE),
            ("Docker.IO", DOCKER_HUB_GATE),
            ("", DOCKER_HUB_GATE),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("GHCR.io", "ghcr.io"),
            ("auth.docker.io", "auth.docker.io"),  # a token server is a host of its own
            ("registry.example.org:443", "registry.example.org:443"),
        ],
    )
    def test_gate_name(self, host: str, gate: str) -> None:
        assert gate_name(host) == gate


class TestForHost:
    """Configured limits win; Docker Hub has its own; every other host the defaults."""

    mine = HostLimits(max_requests=2, per_minute=60)
    hub = HostLimits(max_requests=1)

    @pytest.mark.parametrize(
        ("hosts", "host", "expected"),
        [
            ({}, "127.0.0.1:5000", DEFAULT_LIMITS),
            ({}, "docker.io", DOCKER_HUB_LIMITS),
            ({}, "", DOCKER_HUB_LIMITS),
            ({}, "index.docker.io", DOCKER_HUB_LIMITS),
            ({"127.0.0.1:5000": mine}, "127.0.0.1:5000", mine),
            ({"127.0.0.1:5000": mine}, "127.0.0.1:5001", DEFAULT_LIMITS),
            ({"Reg.Example.org": mine}, "reg.example.org", mine),
            # Any of Docker Hub's names configures all of them.
            ({"docker.io": hub}, "registry-1.docker.io", hub),
            ({"index.docker.io": hub}, "", hub),
            ({"docker.io": hub}, "ghcr.io", DEFAULT_LIMITS),
        ],
    )
    def test_for_host(self, hosts: dict[str, HostLimits], host: str, expected: HostLimits) -> None:
        assert RegistryLimits(hosts).for_host(host) == expected

    def test_the_defaults(self) -> None:
        assert HostLimits(8, None, 6, 60.0) == DEFAULT_LIMITS
        assert HostLimits(3, 300, 6, 60.0) == DOCKER_HUB_LIMITS

    def test_the_hosts_cannot_change_after(self) -> None:
        given = {"a.example": self.mine}
        limits = RegistryLimits(given)
        given["a.example"] = self.hub
        assert limits.for_host("a.example") == self.mine


class TestHintedWait:
    """Every form of hint seen in the wild, read; anything else is no hint."""

    @pytest.mark.parametrize(
        ("header", "body", "expected"),
        [
            ("2", "", 2.0),
            (" 2 ", "", 2.0),
            ("0", "", 0.0),
            ("2.5", "", 2.5),
            ("120", "", 120.0),
            (http_date(5), "", 5.0),
            (http_date(3600), "", 3600.0),
            (http_date(-30), "", 0.0),  # a date past: no wait left
            ("Mon, 07 Dec 2026 21:03:07 +0000", "", 7.0),
            (None, "toomanyrequests: retry-after: 10.48ms, allowed: 2000/minute", 0.01048),
            (None, '{"errors":[{"code":"TOOMANYREQUESTS","message":"retry-after: 3s"}]}', 3.0),
            (None, "retry-after: 1m30s", 90.0),
            (None, "Retry-After: 250us", 0.00025),
            (None, "retry-after: 1.5h", 5400.0),
            ("4", "retry-after: 10.48ms", 4.0),  # the header first
            ("soon", "retry-after: 3s", 3.0),  # a header saying nothing: the body's
            ("soon", "", None),
            ("-5", "", None),
            ("1e3", "", None),
            ("9" * 400, "", math.inf),  # past what a float holds: longer than any max_wait
            ("Mon Dec  7 21:03:09 2026", "", 9.0),  # asctime's form, GMT
            ("Monday, 07-Dec-26 21:03:08 GMT", "", 8.0),  # RFC 850's
            ("Mon, 07 Dec 2026 25:03:07 GMT", "", None),
            ("", "", None),
            (None, "", None),
            (None, "too many requests", None),
            (None, "retry-after: soon", None),
            (None, "retry-after: 3 seconds", None),
            (None, "retry-after: 3seconds", None),
        ],
    )
    def test_hinted_wait(self, header: str | None, body: str, expected: float | None) -> None:
        found = hinted_wait(Attempt(429, retry_after=header, body=body), NOW)
        if expected is None:
            assert found is None
        else:
            assert found == pytest.approx(expected)


LIMITS = HostLimits(max_requests=3, attempts=6, max_wait=60.0)


def case(
    status: int | None,
    fault: Fault = Fault.NONE,
    header: str | None = None,
    body: str = "",
) -> Attempt:
    return Attempt(status, fault, header, body)


class TestDecideByAnswer:
    """Every class of answer on the first try, without jitter."""

    @pytest.mark.parametrize(
        ("attempt", "expected"),
        [
            # Answers that are the caller's: success, redirects, 4xx that will not change.
            (case(200), Decision(Verdict.ACCEPT)),
            (case(201), Decision(Verdict.ACCEPT)),
            (case(202), Decision(Verdict.ACCEPT)),
            (case(307), Decision(Verdict.ACCEPT)),
            (case(400), Decision(Verdict.ACCEPT)),
            (case(401), Decision(Verdict.ACCEPT)),
            (
                case(403, body="denied: requested access to the resource is denied"),
                Decision(Verdict.ACCEPT),
            ),
            (case(404), Decision(Verdict.ACCEPT)),
            (case(405), Decision(Verdict.ACCEPT)),
            (case(501), Decision(Verdict.ACCEPT)),
            # A hint on an answer that needs no second try changes nothing.
            (case(200, header="5"), Decision(Verdict.ACCEPT)),
            # Limits: the host waits as asked (and a margin), or backs off.
            (case(429, header="2"), Decision(Verdict.RETRY, 2.05, True, True, 2.0)),
            (case(429, header=http_date(7)), Decision(Verdict.RETRY, 7.05, True, True, 7.0)),
            (case(429, header=http_date(-7)), Decision(Verdict.RETRY, 0.05, True, True, 0.0)),
            (
                case(429, body="toomanyrequests: retry-after: 10.48ms, allowed: 2000/minute"),
                Decision(Verdict.RETRY, 0.06048, True, True, 0.01048),
            ),
            # A limit without a hint starts its backoff slower than a failure.
            (case(429), Decision(Verdict.RETRY, 2.0, True, True, None)),
            (
                case(403, body="You have exceeded a secondary rate limit"),
                Decision(Verdict.RETRY, 2.0, True, True, None),
            ),
            (
                case(403, header="3", body="secondary rate limit"),
                Decision(Verdict.RETRY, 3.05, True, True, 3.0),
            ),
            (case(503, header="4"), Decision(Verdict.RETRY, 4.05, True, True, 4.0)),
            # The host struggles: all of it waits; a guess, as it said nothing.
            (case(503), Decision(Verdict.RETRY, 0.5, True, False, None)),
            (case(502), Decision(Verdict.RETRY, 0.5, True, False, None)),
            (case(504), Decision(Verdict.RETRY, 0.5, True, False, None)),
            (case(502, header="1"), Decision(Verdict.RETRY, 1.05, True, False, 1.0)),
            # One request failed: it alone waits.
            (case(500), Decision(Verdict.RETRY, 0.5, False, False, None)),
            (case(None, Fault.CONNECTION), Decision(Verdict.RETRY, 0.5, False, False, None)),
            (case(200, Fault.CONNECTION), Decision(Verdict.RETRY, 0.5, False, False, None)),
            (case(None, Fault.TIMEOUT), Decision(Verdict.RETRY, 0.5, False, False, None)),
            # No status and no fault named: no answer came, as for a failed connection.
            (case(None), Decision(Verdict.RETRY, 0.5, False, False, None)),
            # Nothing asking again could mend.
            (case(None, Fault.FINAL), Decision(Verdict.GIVE_UP)),
            (case(429, Fault.FINAL), Decision(Verdict.GIVE_UP)),
        ],
    )
    def test_decide(self, attempt: Attempt, expected: Decision) -> None:
        found = decide(attempt, 1, LIMITS, NOW, 0.0)
        assert found.verdict is expected.verdict
        assert found.wait == pytest.approx(expected.wait)
        assert (found.host_wide, found.limited) == (expected.host_wide, expected.limited)
        assert found.asked == pytest.approx(expected.asked)
        assert found.max_wait is None


class TestDecideOverTries:
    """Backoff doubles to its cap, never past max_wait; tries and long hints end it."""

    @pytest.mark.parametrize(
        ("tries", "limits", "wait"),
        [
            (1, LIMITS, 0.5),
            (2, LIMITS, 1.0),
            (3, LIMITS, 2.0),
            (5, LIMITS, 8.0),
            (7, HostLimits(attempts=20), 30.0),
            (19, HostLimits(attempts=20), 30.0),
            (5, HostLimits(attempts=20, max_wait=3.0), 3.0),
            (1, HostLimits(max_wait=0.2), 0.2),
        ],
    )
    def test_backoff_without_a_hint(self, tries: int, limits: HostLimits, wait: float) -> None:
        found = decide(case(503), tries, limits, NOW, 0.0)
        assert found.verdict is Verdict.RETRY
        assert found.wait == pytest.approx(wait)

    @pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999999])
    @pytest.mark.parametrize("tries", [1, 2, 4, 6, 9])
    def test_jitter_spreads_backoff_by_half_at_most(self, jitter: float, tries: int) -> None:
        limits = HostLimits(attempts=20)
        plain = decide(case(None, Fault.CONNECTION), tries, limits, NOW, 0.0).wait
        found = decide(case(None, Fault.CONNECTION), tries, limits, NOW, jitter).wait
        assert found == pytest.approx(plain * (1 + 0.5 * jitter))
        assert plain <= found < plain * 1.5
        assert found <= limits.max_wait

    def test_jitter_never_takes_backoff_past_max_wait(self) -> None:
        limits = HostLimits(attempts=20, max_wait=10.0)
        assert decide(case(429), 5, limits, NOW, 0.9).wait == 10.0

    @pytest.mark.parametrize("jitter", [0.0, 0.7])
    def test_a_hint_is_honoured_exactly_whatever_the_jitter(self, jitter: float) -> None:
        found = decide(case(429, header="2"), 3, LIMITS, NOW, jitter)
        assert found.wait == pytest.approx(2.0 + HINT_MARGIN)

    def test_a_hint_is_never_shortened_to_max_wait(self) -> None:
        # A hint within max_wait is waited in full, margin included.
        found = decide(case(429, header="60"), 1, LIMITS, NOW, 0.0)
        assert found.verdict is Verdict.RETRY
        assert found.wait == pytest.approx(60.05)

    @pytest.mark.parametrize(
        "attempt",
        [
            case(429, header="61"),
            case(429, header=http_date(3600)),
            case(503, header="120"),
            case(429, header="9" * 400),
        ],
    )
    def test_a_hint_over_max_wait_gives_up_at_once(self, attempt: Attempt) -> None:
        found = decide(attempt, 1, LIMITS, NOW, 0.0)
        assert found.verdict is Verdict.GIVE_UP
        assert (found.limited, found.host_wide, found.max_wait) == (True, True, 60.0)
        assert found.asked is not None
        assert found.asked > 60.0

    @pytest.mark.parametrize(
        ("attempt", "limited", "host_wide"),
        [
            (case(429, header="2"), True, True),
            (case(429), True, True),
            (case(503), False, True),
            (case(None, Fault.CONNECTION), False, False),
        ],
    )
    def test_attempts_used_up(self, attempt: Attempt, limited: bool, host_wide: bool) -> None:
        assert decide(attempt, 5, LIMITS, NOW, 0.0).verdict is Verdict.RETRY
        found = decide(attempt, 6, LIMITS, NOW, 0.0)
        assert found.verdict is Verdict.GIVE_UP
        assert (found.limited, found.host_wide, found.max_wait) == (limited, host_wide, None)
        assert decide(attempt, 7, LIMITS, NOW, 0.0).verdict is Verdict.GIVE_UP

    def test_one_attempt_never_retries(self) -> None:
        assert decide(case(429, header="1"), 1, HostLimits(attempts=1), NOW, 0).verdict is (
            Verdict.GIVE_UP
        )

    def test_an_accepted_answer_is_accepted_after_any_number_of_tries(self) -> None:
        assert decide(case(200), 99, LIMITS, NOW, 0.0).verdict is Verdict.ACCEPT

    def test_a_huge_try_count_still_gives_a_bounded_wait(self) -> None:
        limits = HostLimits(attempts=10**9)
        assert decide(case(503), 10**8, limits, NOW, 0.5).wait == pytest.approx(37.5)

    @pytest.mark.parametrize(
        ("tries", "jitter", "why"), [(0, 0.0, "tries"), (1, -0.1, "jitter"), (1, 1.0, "jitter")]
    )
    def test_bad_arguments_are_refused(self, tries: int, jitter: float, why: str) -> None:
        with pytest.raises(ValueError, match=why):
            decide(case(429), tries, LIMITS, NOW, jitter)


class TestLimitMessage:
    """The message names the registry, the answer, the tries and until when; no body."""

    host = "127.0.0.1:5000"

    def message(self, attempt: Attempt, tries: int, limits: HostLimits = LIMITS) -> str:
        decision = decide(attempt, tries, limits, NOW, 0.0)
        assert decision.verdict is Verdict.GIVE_UP
        return limit_message(self.host, decision, attempt, tries, NOW)

    def test_limited_with_a_hint(self) -> None:
        assert self.message(case(429, header="4"), 6) == (
            "registry 127.0.0.1:5000 limited the run: HTTP 429 after 6 tries; "
            "it asked to wait until 2026-12-07 21:03:04 UTC"
        )

    def test_limited_longer_than_max_wait(self) -> None:
        assert self.message(case(429, header=http_date(3600)), 1) == (
            "registry 127.0.0.1:5000 limited the run: HTTP 429 after 1 try; "
            "it asked to wait until 2026-12-07 22:03:00 UTC (the limit for one wait is 60 s; "
            "raise `registries: {127.0.0.1:5000: {max_wait: ...}}` to wait longer)"
        )

    def test_an_absurd_wait_is_named_as_such(self) -> None:
        assert self.message(case(429, header="9" * 400), 1) == (
            "registry 127.0.0.1:5000 limited the run: HTTP 429 after 1 try; "
            "it asked to wait until a time too far to name (the limit for one wait is 60 s; "
            "raise `registries: {127.0.0.1:5000: {max_wait: ...}}` to wait longer)"
        )

    def test_limited_without_a_hint(self) -> None:
        body = "toomanyrequests: secret-token-abc"
        message = self.message(case(429, body=body), 6)
        assert message == (
            "registry 127.0.0.1:5000 limited the run: HTTP 429 after 6 tries; "
            "it did not say for how long"
        )
        assert "secret" not in message

    def test_ghcr_hint_rounds_the_time_up(self) -> None:
        body = "toomanyrequests: retry-after: 10.48ms, allowed: 2000/minute"
        assert self.message(case(429, body=body), 6).endswith("until 2026-12-07 21:03:01 UTC")

    @pytest.mark.parametrize(
        ("attempt", "what"),
        [
            (case(503), "HTTP 503"),
            (case(502), "HTTP 502"),
            (case(None, Fault.CONNECTION), "the connection failed (refused, reset or cut off)"),
            (case(200, Fault.CONNECTION), "the connection failed (refused, reset or cut off)"),
            (case(None, Fault.TIMEOUT), "no answer in time"),
        ],
    )
    def test_transient_failures(self, attempt: Attempt, what: str) -> None:
        assert (
            self.message(attempt, 6)
            == f"registry 127.0.0.1:5000 kept failing: {what} after 6 tries"
        )

    def test_a_final_failure(self) -> None:
        assert self.message(case(None, Fault.FINAL), 1) == (
            "registry 127.0.0.1:5000 failed: a failure trying again cannot mend"
        )


class TestUtcText:
    """Wall-clock seconds shown in UTC, as datetime would, rounded up to the second."""

    @pytest.mark.parametrize(
        "moment",
        [0.0, 951782400.0, 951868799.5, 1709208000.0, NOW, 4102444800.0, 4107542399.0, 2.5e9],
    )
    def test_agrees_with_datetime(self, moment: float) -> None:
        expected = datetime.datetime.fromtimestamp(-(-moment // 1), tz=datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        assert utc_text(moment) == expected

    def test_every_day_of_four_centuries_boundaries(self) -> None:
        # Leap days and month ends from 1970 to 2400, a day at a time.
        day = datetime.date(1970, 1, 1)
        for offset in range(0, 157_000, 1):
            moment = offset * 86400.0
            assert utc_text(moment)[:10] == (day + datetime.timedelta(days=offset)).isoformat()


STATUSES = st.sampled_from([200, 202, 304, 400, 401, 403, 404, 429, 500, 501, 502, 503, 504])
HEADERS = st.one_of(
    st.none(),
    st.integers(0, 7200).map(str),
    st.floats(0, 7200).map(lambda f: f"{f:.3f}"),
    st.integers(-7200, 7200).map(http_date),
    st.text(max_size=12),
)
BODIES = st.sampled_from(
    ["", "rate limit", "toomanyrequests: retry-after: 10.48ms", "retry-after: 90s", "x"]
)
ATTEMPTS = st.builds(
    Attempt, st.one_of(st.none(), STATUSES), st.sampled_from(Fault), HEADERS, BODIES
)
LIMITS_DRAWN = st.builds(
    HostLimits,
    st.integers(1, 8),
    st.none(),
    st.integers(1, 20),
    st.floats(0.01, 3600),
)


class TestDecideProperties:
    """Whatever the answer: a retry waits at least what was asked and never past the host's
    longest wait unless asked; a give-up comes exactly when tries or the hint call for it."""

    @settings(max_examples=400)
    @given(ATTEMPTS, st.integers(1, 25), LIMITS_DRAWN, st.floats(0, 1, exclude_max=True))
    def test_decide(self, attempt: Attempt, tries: int, limits: HostLimits, jitter: float) -> None:
        found = decide(attempt, tries, limits, NOW, jitter)
        hint = hinted_wait(attempt, NOW)
        if found.verdict is Verdict.ACCEPT or attempt.fault is Fault.FINAL:
            assert found.asked is None
        else:
            assert found.asked == hint
        if found.verdict is Verdict.RETRY:
            assert tries < limits.attempts
            assert found.wait > 0
            if hint is None:
                assert found.wait <= limits.max_wait
            else:
                assert found.wait == pytest.approx(hint + HINT_MARGIN)
                assert hint <= limits.max_wait
        elif found.verdict is Verdict.GIVE_UP:
            over = hint is not None and hint > limits.max_wait
            assert attempt.fault is Fault.FINAL or tries >= limits.attempts or over
            assert found.max_wait == (
                limits.max_wait if over and attempt.fault is not Fault.FINAL else None
            )
            assert found.wait == 0.0
        else:
            assert attempt.fault is Fault.NONE
            assert attempt.status is not None
            assert not found.host_wide
            assert not found.limited
        # The message of any outcome names the registry and never the body's other words.
        message = limit_message("r.example", found, attempt, tries, NOW)
        assert message.startswith("registry r.example ")
        assert "toomanyrequests" not in message
        assert "allowed" not in message
