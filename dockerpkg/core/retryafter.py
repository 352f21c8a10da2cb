"""How long a registry asks to be left alone, read from its answer: a Retry-After header
(seconds, or an HTTP date) or GHCR's ``retry-after: 10.48ms`` in the body; and wall-clock
seconds written as a UTC time for messages. Pure: the clock's value is passed in."""

from __future__ import annotations

import email.utils
import math
import re

# RFC 9110 says whole seconds; a fraction costs nothing to honour.
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
# GHCR writes a Go duration (`10.48ms`, `3s`, `1m30s`) after `retry-after:` in its body.
_BODY_HINT = re.compile(
    r"retry[-_ ]after\s*[:=]\s*((?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|μs|ms|s|m|h))+)(?![a-z])",
    re.IGNORECASE,
)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|s|m|h)", re.IGNORECASE)
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def header_seconds(value: str, now: float) -> float | None:
    """The seconds a Retry-After header's VALUE asks for: a number of seconds, or an HTTP
    date less NOW (wall-clock seconds since the epoch; a date past is 0); None when it is
    neither."""
    text = value.strip()
    if _SECONDS.fullmatch(text):
        # Hundreds of digits overflow to infinity: a wait longer than any `max_wait`, given
        # up on at once (core.registrylimits.decide), not a hint ignored.
        return float(text)
    # HTTP dates are GMT; a date without a zone (asctime's form) is read as GMT too.
    parsed = email.utils.parsedate_tz(text)
    if parsed is None or not _plausible(parsed[:6]):
        return None
    try:
        moment = email.utils.mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None
    return max(0.0, moment - now)


def _plausible(fields: tuple[int, ...]) -> bool:
    """Whether (year, month, day, hour, minute, second) name a moment (the parser lets
    hour 25 through)."""
    _, month, day, hour, minute, second = fields
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second <= 60


def body_seconds(body: str) -> float | None:
    """The seconds a body's ``retry-after: <Go duration>`` asks for (GHCR), else None."""
    match = _BODY_HINT.search(body)
    if match is None:
        return None
    # Infinite when absurdly long: given up on at once, as above.
    return sum(
        float(number) * _UNIT_SECONDS[unit.lower()]
        for number, unit in _DURATION_PART.findall(match[1])
    )


# 9999-12-31 23:59:59 UTC: the last moment four digits of year can name.
_LAST_MOMENT = 253402300799


def utc_text(moment: float) -> str:
    """MOMENT (wall-clock seconds since the epoch) as `2026-12-07 21:03:04 UTC`, rounded up
    to the second (a user told a time must not come back before it); a moment past
    what a calendar holds (an absurd wait asked) is "a time too far to name"."""
    if not math.isfinite(moment) or moment > _LAST_MOMENT:
        return "a time too far to name"
    whole = math.ceil(moment)
    days, second_of_day = divmod(whole, 86400)
    year, month, day = _civil_date(days)
    hours, rest = divmod(second_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{seconds:02d} UTC"


def _civil_date(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian (year, month, day) DAYS after 1970-01-01 (H. Hinnant's
    `civil_from_days`), so the core needs no `datetime`."""
    shifted = days + 719468  # days since 0000-03-01
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # March is 0
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day
