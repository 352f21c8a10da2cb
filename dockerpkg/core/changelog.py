"""Changelog entries for `update`: the exact text docker-pkg put at the top of a changelog.

An entry is

    NAME (VERSION) DISTRIBUTION; urgency=high
    <empty line>
    every line of the reason, indented by three spaces (no bullet is added)
    <empty line>
     -- AUTHOR <EMAIL>  DATE
    <empty line>

and the old changelog follows it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from debian.changelog import Changelog, ChangelogParseError, topline


def _one_line(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if "\n" in value or "\r" in value or not value.strip():
        raise ValueError(f"changelog author {attribute.name} must be one non-empty line")


@attrs.frozen
class Author:
    """Who signs a changelog entry."""

    name: str = attrs.field(validator=_one_line)
    email: str = attrs.field(validator=_one_line)

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def refresh_reason(parents: Sequence[str], reason: str) -> str:
    """The reason given to images updated because an image they depend on was."""
    if len(parents) == 1:
        return f"Refresh for update in parent image {parents[0]}:\n{reason}"
    return f"Refresh for update in parent images {', '.join(parents)}:\n{reason}"


def entry(
    *, name: str, version: str, distribution: str, reason: str, author: Author, date: str
) -> str:
    """One new changelog entry, ending with the empty line that separates it from the next."""
    lines = "".join(f"   {line}\n" for line in reason.split("\n"))
    return f"{name} ({version}) {distribution}; urgency=high\n\n{lines}\n -- {author}  {date}\n\n"


def head_of(text: str) -> tuple[str, str] | None:
    """Package name and version of the newest entry of a changelog text, or None if unparsable."""
    try:
        changelog = Changelog(text, strict=True, max_blocks=1)
    except (ChangelogParseError, ValueError):
        return None
    if not changelog.package or changelog.version is None:
        return None
    return str(changelog.package), str(changelog.version)


def versions_in(text: str) -> frozenset[str]:
    """The version of every entry heading of a changelog text, as written."""
    return frozenset(match[2] for line in text.splitlines() if (match := topline.match(line)))


def versions_newest_first(text: str) -> tuple[str, ...]:
    """The version of every entry heading of a changelog text, newest first, as written."""
    return tuple(match[2] for line in text.splitlines() if (match := topline.match(line)))
