"""What the git checkout holding a tree says of itself: the commit and where it comes from."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from dockerpkg.core.imagelabels import NO_SOURCE, SourceFacts, public_url
from dockerpkg.effects.author import GIT_TIMEOUT_S


def _git(args: list[str], directory: str, env: Mapping[str, str]) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=directory,
            env=dict(env),
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = result.stdout.decode("utf-8", errors="replace").strip()
    return value if result.returncode == 0 and value else None


def source_facts(directory: str, env: Mapping[str, str]) -> SourceFacts:
    """The commit checked out in DIRECTORY's repository and its `origin` remote (without
    credentials); nothing when it is no git checkout or git is missing."""
    revision = _git(["rev-parse", "--verify", "-q", "HEAD"], directory, env)
    if revision is None:
        return NO_SOURCE
    url = _git(["config", "--get", "remote.origin.url"], directory, env)
    return SourceFacts(revision=revision, url=public_url(url) if url else None)
