"""What the git checkout holding a tree says of itself: the commit and where it comes from."""

from __future__ import annotations

from collections.abc import Mapping

from dockerpkg.core.imagelabels import NO_SOURCE, SourceFacts, public_url
from dockerpkg.effects.author import git


def source_facts(directory: str, env: Mapping[str, str]) -> SourceFacts:
    """The commit checked out in DIRECTORY's repository and its `origin` remote (without
    credentials); nothing when it is no git checkout or git is missing."""
    revision = git(["rev-parse", "--verify", "-q", "HEAD"], env, directory)
    if revision is None:
        return NO_SOURCE
    url = git(["config", "--get", "remote.origin.url"], env, directory)
    return SourceFacts(revision=revision, url=public_url(url) if url else None)
