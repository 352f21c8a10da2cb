"""The config's `registries` key: registry host -> how hard it may be pressed, checked and
made a RegistryLimits, each bad value a problem at its own line. The schema (types) is
core/configyaml.py's; this module checks what types cannot say."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import strictyaml as sy

from dockerpkg.core.labels import registry_problem
from dockerpkg.core.registrylimits import (
    DEFAULT_LIMITS,
    DOCKER_HUB_GATE,
    DOCKER_HUB_LIMITS,
    HostLimits,
    RegistryLimits,
    gate_name,
)
from dockerpkg.errors import Problem, error

# Past these a run would retry or wait so long it had better fail and say so.
MAX_ATTEMPTS = 20
LONGEST_MAX_WAIT = 3600.0

REGISTRY_FIELDS = sy.Map(
    {
        sy.Optional("max_requests"): sy.Int(),
        sy.Optional("per_minute"): sy.EmptyNone() | sy.NullNone() | sy.Int(),
        sy.Optional("attempts"): sy.Int(),
        sy.Optional("max_wait"): sy.Float(),
    }
)
REGISTRIES_SCHEMA = (
    sy.EmptyNone()
    | sy.EmptyDict()
    | sy.MapPattern(sy.Str(), sy.EmptyNone() | sy.EmptyDict() | REGISTRY_FIELDS)
)


def _field_problem(field: str, value: Any) -> str | None:
    """Why VALUE (of its field's type) is no value for FIELD."""
    if field in ("max_requests", "per_minute") and value is not None and value < 1:
        return f"'{field}' must be 1 or more, not {value}"
    if field == "attempts" and not 1 <= value <= MAX_ATTEMPTS:
        return f"'attempts' must be from 1 to {MAX_ATTEMPTS}, not {value}"
    if field == "max_wait" and not 0 < value <= LONGEST_MAX_WAIT:
        return f"'max_wait' must be a number of seconds above 0, at most {LONGEST_MAX_WAIT:g}"
    return None


def _host_limits(host: str, fields: Mapping[str, Any]) -> HostLimits:
    """HOST's limits: FIELDS over the host's own (Docker Hub's for Docker Hub), so that
    `{docker.io: {attempts: 10}}` keeps Docker Hub's rate."""
    own = DOCKER_HUB_LIMITS if gate_name(host) == DOCKER_HUB_GATE else DEFAULT_LIMITS
    return HostLimits(
        max_requests=fields.get("max_requests", own.max_requests),
        per_minute=fields.get("per_minute", own.per_minute),
        attempts=fields.get("attempts", own.attempts),
        max_wait=float(fields.get("max_wait", own.max_wait)),
    )


def _line_naming(lines: list[str], key: str, start: int) -> int:
    """The first line from START (1-based) naming KEY as a mapping key, block or flow
    style; START when none does. (strictyaml's lines are off inside flow mappings.)"""
    pattern = re.compile(rf"(^\s*|[{{,]\s*)['\"]?{re.escape(key)}['\"]?\s*:")
    for number in range(start, len(lines) + 1):
        if pattern.search(lines[number - 1]):
            return number
    return start


def _host_problems(
    host: str, fields: Mapping[str, Any], lines: list[str], start: int, seen: Mapping[str, str]
) -> list[tuple[str, int]]:
    """Why HOST's entry (FIELDS, named from line START of the file's LINES on) is wrong,
    each with its line; SEEN: the gates of the hosts before it, to the name they were given
    by."""
    line = _line_naming(lines, host, start)
    problems = []
    if why := registry_problem(host):
        problems.append((why, line))
    elif (name := gate_name(host)) in seen:
        problems.append((f"{host} is given twice (as {seen[name]} too)", line))
    for field, value in fields.items():
        if why := _field_problem(field, value):
            problems.append((f"{host}: {why}", _line_naming(lines, field, line)))
    return problems


def parse_registries(data: dict[str, Any], text: str, path: str) -> list[Problem]:
    """Replace DATA's validated `registries` (TEXT: the file's, for lines) by a
    RegistryLimits; a located problem for each bad host or value."""
    if "registries" not in data:
        return []
    given = data["registries"] or {}
    lines = text.splitlines()
    start = _line_naming(lines, "registries", 1)
    problems: list[Problem] = []
    hosts: dict[str, HostLimits] = {}
    seen: dict[str, str] = {}
    for host, entry in given.items():
        fields = entry or {}
        found = _host_problems(host, fields, lines, start, seen)
        problems += [error(path, f"bad value for 'registries': {why}", line) for why, line in found]
        seen.setdefault(gate_name(host), host)
        if not found:
            hosts[host] = _host_limits(host, fields)
    data["registries"] = RegistryLimits(hosts)
    return problems
