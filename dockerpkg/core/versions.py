"""New image versions for `update`: automatic bumps, checked explicit versions, dated suffixes.

Every result is checked to be greater than the current version by Debian's ordering
(python-debian's Version), so a version can never go backwards or repeat.

The automatic bump is docker-pkg's rule, generalised: a version ending in `-<id><N>` (id being
the config's `update_id`, N digits) becomes `-<id><N+1>`; any other version gets `-<id>1`
appended. For the versions docker-pkg could bump (digits, dots and dashes) that is exactly
docker-pkg's result; for the others (epochs, `~`, `+`, letters), where docker-pkg gave up, it
is still greater:
- ending in `-<id><N>`: the Debian revision is `<id><N>`, and only its number grows;
- otherwise the old version becomes the upstream part of the new one (or stays the whole
  upstream part when it had no revision) and `<id>1` the revision; a longer upstream part that
  extends the old one by `-...` sorts after it, and a revision sorts after no revision.
Only `-`, a letter and digits are added, so a version that was a valid Docker tag stays one.
"""

from __future__ import annotations

import re

from debian.debian_support import Version


class VersionError(ValueError):
    """A version that cannot be used; the message is for the user, without a location."""


def parse_version(text: str) -> Version:
    """A Debian version, or VersionError when python-debian refuses the text."""
    try:
        return Version(text)
    except ValueError:
        raise VersionError(f"'{text}' is not a valid Debian version") from None


def is_greater(new: str, current: str) -> bool:
    """True when NEW sorts after CURRENT by Debian's version ordering."""
    return bool(parse_version(new) > parse_version(current))


def bump(current: str, update_id: str) -> str:
    """The automatic next version (see the module docstring); always greater than CURRENT."""
    match = re.fullmatch(rf"(?P<base>.*)-{re.escape(update_id)}(?P<number>\d+)", current)
    if match:
        candidate = f"{match['base']}-{update_id}{int(match['number']) + 1}"
    else:
        candidate = f"{current}-{update_id}1"
    _require_greater(candidate, current, "the automatic bump")
    return candidate


def check_requested(requested: str, current: str) -> str:
    """An explicit --version: valid, and greater than the current one."""
    if not is_greater(requested, current):
        raise VersionError(
            f"--version {requested} is not greater than the current version {current}"
        )
    return requested


def _suffix_shape(suffix: str) -> str:
    """A pattern for text shaped like SUFFIX: digits for digits, letters for letters."""
    parts = []
    for char in suffix:
        if char.isdigit():
            parts.append(r"\d")
        elif char.isascii() and char.isalpha():
            parts.append("[A-Za-z]")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def tag_of_version(tag: str, version: str, suffix: str) -> bool:
    """Whether TAG is VERSION as some run tags it: as is, with SUFFIX (--nightly, --snapshot),
    or with another suffix shaped like SUFFIX (an earlier nightly)."""
    if tag in (version, version + suffix):
        return True
    return (
        bool(suffix) and re.fullmatch(re.escape(version) + _suffix_shape(suffix), tag) is not None
    )


_SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~-]*")


def with_suffix(current: str, suffix: str) -> str:
    """CURRENT with a trailing `-<something shaped like SUFFIX>` replaced by `-SUFFIX`, or with
    `-SUFFIX` appended when it has none; the result must be greater than CURRENT."""
    if not _SUFFIX.fullmatch(suffix):
        raise VersionError(
            f"--version-suffix '{suffix}' must start with a letter or digit and hold only "
            "letters, digits and . + ~ -"
        )
    shape = re.compile(rf"(?P<base>.+)-{_suffix_shape(suffix)}")
    match = shape.fullmatch(current)
    candidate = f"{match['base'] if match else current}-{suffix}"
    _require_greater(candidate, current, f"--version-suffix {suffix}")
    return candidate


def _require_greater(candidate: str, current: str, what: str) -> None:
    parse_version(candidate)
    if not is_greater(candidate, current):
        raise VersionError(
            f"{what} gives {candidate}, which is not greater than the current version {current}"
        )
