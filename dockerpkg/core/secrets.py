"""Build secrets: where each one's value comes from (never the value), which images use which
(`RUN --mount=type=secret` in their rendered Dockerfiles), and what is wrong with that.

The values are read only when a build asks for them through its BuildKit session
(dockerpkg.effects.session): they never enter a plan, a report, a log or an image.
"""

from __future__ import annotations

import enum
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core.config import BuildEngine
from dockerpkg.errors import DockerPkgError, Location, Problem, error


class SecretKind(enum.Enum):
    ENV = "env"  # an environment variable of the run
    FILE = "file"  # a file (relative paths: to the config file naming it, or the current folder)


@attrs.frozen
class SecretSource:
    """Where the value of build secret ID comes from, as the config or --secret said."""

    id: str
    kind: SecretKind
    where: str  # the variable's name, or the file's path

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.where}"


_ID = re.compile(r"[A-Za-z0-9_.-]+")


def config_sources(
    given: Mapping[str, Mapping[str, str]], origin: Location, base: str
) -> tuple[SecretSource, ...]:
    """The config's `secrets` (ID: {env: VAR} or {file: PATH}); file paths relative to BASE
    (the config file's folder). A bad entry is an error at ORIGIN (the key's line)."""
    found = []
    for secret_id, source in sorted(given.items()):
        kinds = [kind for kind in SecretKind if kind.value in source]
        if not _ID.fullmatch(secret_id) or len(kinds) != 1 or len(source) != 1:
            raise DockerPkgError.single(
                origin.path,
                f"bad value for 'secrets': {secret_id!r} needs exactly one of env: VARIABLE "
                "or file: PATH (its value is never written in the config)",
                origin.line,
            )
        kind = kinds[0]
        where = source[kind.value]
        if kind is SecretKind.FILE and not posixpath.isabs(where) and not where.startswith("~"):
            where = posixpath.join(base, where) if base else where
        found.append(SecretSource(secret_id, kind, where))
    return tuple(found)


def parse_secret_flag(text: str) -> SecretSource:
    """--secret as buildx spells it: `id=ID,env=VAR` or `id=ID,src=PATH` (`source=` too)."""
    fields = dict(part.partition("=")[::2] for part in text.split(",") if part)
    secret_id = fields.pop("id", "")
    if "src" in fields or "source" in fields:
        kind, where = SecretKind.FILE, fields.pop("src", "") or fields.pop("source", "")
    elif "env" in fields:
        kind, where = SecretKind.ENV, fields.pop("env")
    else:
        kind, where = SecretKind.FILE, ""
    fields.pop("type", None)
    if not _ID.fullmatch(secret_id) or not where or fields:
        raise DockerPkgError.single(
            "--secret", f"{text!r}: expected id=ID,env=VARIABLE or id=ID,src=PATH"
        )
    return SecretSource(secret_id, kind, where)


def merged(
    config: Iterable[SecretSource], flags: Iterable[SecretSource]
) -> tuple[SecretSource, ...]:
    """The config's sources with --secret ones over them, by id."""
    by_id = {s.id: s for s in config}
    by_id.update({s.id: s for s in flags})
    return tuple(by_id[key] for key in sorted(by_id))


_MOUNT = re.compile(r"--mount=(\S+)")


def secret_uses(dockerfile: str) -> tuple[tuple[str, int], ...]:
    """The (id, line) of every secret a Dockerfile's RUN instructions mount; an id left out is
    the target's file name, as BuildKit takes it."""
    found = []
    for number, line in enumerate(dockerfile.split("\n"), 1):
        stripped = line.strip()
        if not stripped.upper().startswith("RUN") or "--mount=" not in stripped:
            continue
        try:
            words = shlex.split(stripped, posix=True)
        except ValueError:
            words = stripped.split()
        for word in words[1:]:
            if not word.startswith("--"):
                break  # the command: what follows are its own words, not RUN's options
            match = _MOUNT.fullmatch(word)
            if match is None:
                continue
            options = dict(part.partition("=")[::2] for part in match[1].split(","))
            if options.get("type") != "secret":
                continue
            secret_id = options.get("id") or posixpath.basename(
                options.get("target") or options.get("dst") or options.get("destination") or ""
            )
            if secret_id:
                found.append((secret_id, number))
    return tuple(dict.fromkeys(found))


def secret_problems(
    where: str,
    dockerfile: str,
    sources: Iterable[SecretSource],
    engine: BuildEngine,
    *,
    line: int | None = None,
) -> list[Problem]:
    """What is wrong with the secrets DOCKERFILE mounts (rendered from the template at WHERE;
    LINE: where to point, else the Dockerfile's own line): an id no source is given for, or
    secrets at all with the classic builder."""
    known = {source.id for source in sources}
    problems = []
    for secret_id, number in secret_uses(dockerfile):
        line = line or number
        if engine is BuildEngine.CLASSIC:
            problems.append(
                error(
                    where,
                    f"RUN --mount=type=secret (id {secret_id}) needs BuildKit; the classic "
                    "builder has no build secrets (remove `build_engine: classic`, "
                    "`container_limits` or DOCKER_BUILDKIT=0)",
                    line,
                )
            )
        elif secret_id not in known:
            problems.append(
                error(
                    where,
                    f"secret {secret_id!r} is not configured: add it to the config's "
                    f"`secrets` ({secret_id}: {{env: VARIABLE}} or {{file: PATH}}) or give "
                    f"--secret id={secret_id},env=VARIABLE",
                    line,
                )
            )
    return problems
