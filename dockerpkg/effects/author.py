"""Who signs and dates a changelog entry: the environment, git, then the config's fallbacks."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Mapping

from dockerpkg.core.changelog import Author
from dockerpkg.core.config import Config
from dockerpkg.core.runenv import run_environment
from dockerpkg.errors import DockerPkgError

GIT_TIMEOUT_S = 10

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def git_config(key: str, env: Mapping[str, str], cwd: str | None) -> str | None:
    """`git config --get KEY` run in CWD; None when git is missing, fails or has no value."""
    return git(["config", "--get", key], env, cwd)


def git(args: list[str], env: Mapping[str, str], cwd: str | None) -> str | None:
    """What `git ARGS` run in CWD prints, stripped; None when git is missing, fails or
    prints nothing."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = result.stdout.decode("utf-8", errors="replace").strip()
    return value if result.returncode == 0 and value else None


def resolve_author(env: Mapping[str, str], config: Config, cwd: str | None = None) -> Author:
    """DEBFULLNAME / DEBEMAIL, else git's user.name / user.email (as seen from CWD, the tree),
    else fallback_author / fallback_email; name and email are looked up independently."""
    name = (
        run_environment(env).author_name
        or git_config("user.name", env, cwd)
        or config.fallback_author
    )
    email = (
        run_environment(env).author_email
        or git_config("user.email", env, cwd)
        or config.fallback_email
    )
    try:
        return Author(name=name.strip(), email=email.strip())
    except ValueError as exc:
        raise DockerPkgError.single(
            "DEBFULLNAME/DEBEMAIL", f"{exc} (from the environment, git or the config)"
        ) from None


def changelog_date(moment: datetime.datetime) -> str:
    """RFC 2822, as `date -R` prints it: `Thu, 26 Nov 2026 16:53:53 +0000`.

    English names whatever the locale; a naive MOMENT is taken as local time.
    """
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    offset = aware.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[aware.weekday()]}, {aware.day:02d} {_MONTHS[aware.month - 1]} {aware.year} "
        f"{aware.hour:02d}:{aware.minute:02d}:{aware.second:02d} {sign}{hours:02d}{mins:02d}"
    )
