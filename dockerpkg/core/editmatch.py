"""The edits a saved refs plan, a refs journal or an update journal may ask for: only those
dockerpkg derives itself from the tree. A plan or a journal may come from anyone (a tree is
cloned, a plan downloaded), so what it asks is a claim, checked here:

- a reference edit moves the tag (or digest) of a reference to an image of the tree, at the
  place `refs` finds that reference, to the version the tree names for that image; a digest
  written beside it is a claim only the registry could check, so it is taken as given;
- a changelog entry is one whole entry (`update`'s form, nothing after it) for the image whose
  changelog it goes in front of, with a version above that changelog's newest.

Pure: the caller reads the files and says which are the tree's changelogs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attrs

from dockerpkg.core.changelog import head_of
from dockerpkg.core.plan import Edit
from dockerpkg.core.refsplan import Published, TreeFacts, find_uses
from dockerpkg.core.versions import VersionError, is_greater

# One entry as dockerpkg.core.changelog.entry writes it, and nothing more.
_ENTRY = re.compile(
    r"(?P<name>[a-z0-9][a-z0-9+.\-/]*) \((?P<version>[^()\s]+)\) [^;\n]+; urgency=\w+\n"
    r"\n(?:   [^\n]*\n)+\n -- [^\n<>]+ <[^\n<>]+>  [^\n]+\n\n",
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

Span = tuple[int, int, str]  # (start, end, replacement) in a file's text


@attrs.frozen
class EditRules:
    """What the edits are checked against: the tree's facts (each image's current version,
    with the entries of the same write counted) and its changelogs, by real path."""

    facts: TreeFacts
    changelogs: frozenset[str] = frozenset()


def entry_problem(entry: str, changelog: str) -> str | None:
    """What is wrong with putting ENTRY in front of CHANGELOG (the text of an image's
    changelog); None: it is an entry `update` could write there."""
    match = _ENTRY.fullmatch(entry)
    if match is None:
        return "not one changelog entry as update writes it (or text follows it)"
    head = head_of(changelog)
    if head is None:
        return "the changelog it goes in front of does not read"
    name, current = head
    if match["name"] != name:
        return f"an entry for {match['name']} in the changelog of {name}"
    try:
        newer = is_greater(match["version"], current)
    except (VersionError, ValueError):
        newer = False
    if not newer:
        return f"version {match['version']} is not above the changelog's {current}"
    return None


def entry_version(entry: str) -> tuple[str, str] | None:
    """The image name and version of ENTRY (one entry as update writes it), or None."""
    match = _ENTRY.fullmatch(entry)
    return None if match is None else (match["name"], match["version"])


def with_entries(facts: TreeFacts, entries: Iterable[str]) -> TreeFacts:
    """FACTS with the images the ENTRIES are for at the versions they give (references are
    moved to those in the same write)."""
    newer = {found[0]: found[1] for e in entries if (found := entry_version(e)) is not None}
    current = {**facts.current, **{n: v for n, v in newer.items() if n in facts.current}}
    return attrs.evolve(facts, current=current)


def reference_edits_problem(
    path: str, text: str, spans: Sequence[Span], facts: TreeFacts
) -> str | None:
    """What is wrong with SPANS (edits of TEXT, the file at PATH); None: each is an edit
    `refs` derives from the references it finds in TEXT and the tree's FACTS."""
    found = find_uses(path, text, facts)
    claimed: dict[str, set[str]] = {}
    for start, end, replacement in spans:
        use = next((u for u in found if u.offset <= start <= end <= u.offset + len(u.text)), None)
        if use is None or use.image is None:
            where = f"an edit of {text[start:end]!r} at offset {start}"
            return f"{where}, not in a reference to an image of the tree"
        claimed.setdefault(use.image, set()).update(_DIGEST.findall(replacement))
    if any(len(digests) > 1 for digests in claimed.values()):
        return "two digests claimed for one image"
    published = {
        name: Published(frozenset({version}), next(iter(claimed.get(name, ())), None))
        for name, version in facts.current.items()
    }
    derived = {
        (u.start, u.end, u.replacement)
        for u in find_uses(path, text, facts, published)
        if u.replacement is not None
    }
    for start, end, replacement in spans:
        if (start, end, replacement) not in derived:
            return (
                f"an edit of {text[start:end]!r} to {replacement!r}, not the move of a tag "
                "or digest to the version the tree names"
            )
    return None


def update_edit_problem(edit: Edit, changelog: str | None, path: str | None) -> str | None:
    """What is wrong with EDIT of a saved update plan, given the changelog of its image
    (CHANGELOG, its text; PATH, where it is in the tree; None: no such image): an update
    puts one entry for the image in front of its own changelog, and nothing else."""
    if changelog is None or path is None:
        return f"{edit.image} is not an image of the tree"
    if edit.path != path:
        return f"an entry for {edit.image} in {edit.path}, not in its changelog {path}"
    wrong = entry_problem(edit.entry, changelog)
    if wrong is not None:
        return wrong
    found = entry_version(edit.entry)
    if found is None or found[1] != edit.new_version:
        return f"the entry's version is not the plan's {edit.new_version}"
    return None
