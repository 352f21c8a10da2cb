"""The registry references (repository path, tag) whose publication a run must know.

`tree_refs` gives them for a resolved tree. `guessed_refs` guesses them from a snapshot, off
each changelog's first line, before the tree is parsed: observation can then start while the
tree is still being resolved. A guess is only a head start; what was not guessed right is
checked once the tree is known.
"""

from __future__ import annotations

import re

from dockerpkg.core.config import Config
from dockerpkg.core.labels import join_repository, repository_path
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import Tree

Ref = tuple[str, str]

# `name (version) distribution; urgency=...`: enough of a changelog's first line to guess.
_FIRST_LINE = re.compile(r"(?P<name>[^\s()]+) \((?P<version>[^\s()]+)\)")


def tree_refs(tree: Tree, config: Config) -> dict[str, Ref]:
    """Each image's reference in the registry, by image name."""
    return {
        name: (repository_path(image.repository, config.registry), image.tag)
        for name, image in tree.images.items()
    }


def guessed_refs(snapshot: Snapshot, config: Config, suffix: str = "") -> tuple[Ref, ...]:
    """The references the tree will most likely have, in the snapshot's order."""
    found: list[Ref] = []
    for source in snapshot.images:
        match = _FIRST_LINE.match(source.changelog)
        if match is None:
            continue
        repository = join_repository(config.registry, config.namespace, match["name"])
        found.append((repository_path(repository, config.registry), match["version"] + suffix))
    return tuple(found)
