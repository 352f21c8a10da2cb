"""Build secrets' sources as found on this machine: what each one is when planning, and its
value when a build is served. A source must be a regular file (or a variable) of at most
dockerpkg.core.secrets.SECRET_SIZE_LIMIT bytes; nothing here waits on what is not a file.

Values are read only when serving (dockerpkg.effects.session), for one build, and never kept.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

from dockerpkg.core.secrets import (
    SECRET_SIZE_LIMIT,
    SecretKind,
    SecretSource,
    SourceFact,
    SourceState,
    source_problem,
)
from dockerpkg.effects.homes import expand_user


class SecretReadError(Exception):
    """A build secret's value cannot be had (its variable unset, its file unreadable, not a
    regular file, or too large)."""


def source_facts(
    sources: Iterable[SecretSource], env: Mapping[str, str]
) -> dict[SecretSource, SourceFact]:
    """What each secret source of SOURCES is now (SSH agents left out); ENV: the run's
    environment. Files are looked at, not opened: a FIFO is never waited on."""
    found = {}
    for source in sources:
        if source.kind is SecretKind.ENV:
            found[source] = _variable_fact(source.where, env)
        elif source.kind is SecretKind.FILE:
            try:
                found[source] = _file_fact(os.stat(expand_user(source.where, env)))
            except OSError as exc:
                found[source] = _error_fact(exc)
    return found


def read_value(source: SecretSource, env: Mapping[str, str]) -> bytes:
    """The value of the build secret SOURCE (a variable of ENV or a file), checked again as
    when planning (the file may have changed since): SecretReadError when it cannot be used."""
    if source.kind is SecretKind.ENV:
        fact = _variable_fact(source.where, env)
        _refuse(source, fact)
        return env[source.where].encode()
    if source.kind is not SecretKind.FILE:
        raise SecretReadError(f"secret {source.id}: the plan gives no source for it")
    path = expand_user(source.where, env)
    try:
        # Non-blocking: a FIFO put where the file was would make open() wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretReadError(_why(source, _error_fact(exc))) from None
    try:
        _refuse(source, _file_fact(os.fstat(descriptor)))
        value = _read_up_to(descriptor, SECRET_SIZE_LIMIT + 1)
    except OSError as exc:
        raise SecretReadError(_why(source, _error_fact(exc))) from None
    finally:
        os.close(descriptor)
    # It may have grown between the look and the read.
    _refuse(source, SourceFact(SourceState.REGULAR, len(value)))
    return value


def _refuse(source: SecretSource, fact: SourceFact) -> None:
    why = source_problem(source, fact, planning=False)
    if why is not None:
        raise SecretReadError(why)


def _why(source: SecretSource, fact: SourceFact) -> str:
    return source_problem(source, fact, planning=False) or f"secret {source.id}: unusable"


def _error_fact(exc: OSError) -> SourceFact:
    if isinstance(exc, FileNotFoundError):
        return SourceFact(SourceState.MISSING)
    return SourceFact(SourceState.UNREADABLE, what=exc.strerror or str(exc))


def _variable_fact(name: str, env: Mapping[str, str]) -> SourceFact:
    if name not in env:
        return SourceFact(SourceState.UNSET)
    return SourceFact(SourceState.SET, len(env[name].encode()))


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _file_fact(info: os.stat_result) -> SourceFact:
    if stat.S_ISREG(info.st_mode):
        return SourceFact(SourceState.REGULAR, info.st_size)
    what = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
    return SourceFact(SourceState.OTHER, what=what)


def _read_up_to(descriptor: int, size: int) -> bytes:
    chunks = []
    left = size
    while left > 0 and (chunk := os.read(descriptor, min(left, 1 << 16))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
