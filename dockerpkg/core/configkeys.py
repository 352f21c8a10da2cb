"""Config keys no one reads: a misspelled `regsitry:` is taken as a template variable and
every label silently loses its registry, so keys that are neither known nor used by a
template are reported, and those one edit away from a known key are errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from dockerpkg.core.config import DOCUMENTED_VARIABLES, KNOWN_KEYS, key_location
from dockerpkg.core.spec import Snapshot
from dockerpkg.errors import Problem, Severity


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours turning A into B."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            cost = 0 if char == other else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                best = min(best, previous2[j - 2] + 1)
            current.append(best)
        previous2, previous = previous, current
    return previous[-1]


def _template_texts(snapshot: Snapshot) -> Iterable[str]:
    """The texts a template variable could be named in: templates, and the files of folders
    whose templates include others."""
    for image in snapshot.images:
        texts = [image.template, image.build_template or ""]
        yield from texts
        if any("include" in t or "import" in t for t in texts):
            yield from (text for _, text in image.files)


def unknown_key_problems(
    files: tuple[tuple[str, str], ...], extra: Iterable[str], snapshot: Snapshot
) -> list[Problem]:
    """For each of the config's keys EXTRA (the unknown ones) that no template names: an
    error when it is one edit from a known key, else a warning; located in FILES. The keys
    docker-pkg documents as template variables (DOCUMENTED_VARIABLES) are known."""
    unused = set(extra) - DOCUMENTED_VARIABLES
    if not unused:
        return []
    for text in _template_texts(snapshot):
        unused = {key for key in unused if not re.search(rf"\b{re.escape(key)}\b", text)}
        if not unused:
            return []
    problems = []
    known = sorted(KNOWN_KEYS | DOCUMENTED_VARIABLES)
    for key in sorted(unused):
        location = key_location(files, key)
        near = [k for k in known if edit_distance(key, k) <= 1]
        if near:
            message = (
                f"unknown key '{key}': did you mean '{near[0]}'? (no template uses '{key}', "
                "so it would only be a template variable)"
            )
            problems.append(Problem(location, message, Severity.ERROR))
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        message = f"unknown key '{key}' that no template uses{hint}"
        problems.append(Problem(location, message, Severity.WARNING))
    return problems
