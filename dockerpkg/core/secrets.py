"""Build secrets and SSH agents: where each one comes from (never a value), which images use
which (`RUN --mount=type=secret` and `RUN --mount=type=ssh` in their rendered Dockerfiles),
and what is wrong with that.

Values are read, and agents reached, only when a build asks for them through its BuildKit
session (dockerpkg.effects.session): no value enters a plan, a report, a log or an image.
Secret ids and SSH ids are apart, as in BuildKit: a secret and an agent may share an id.
"""

from __future__ import annotations

import enum
import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core import plan
from dockerpkg.core.plan import BuildEngine
from dockerpkg.errors import DockerPkgError, Location, Problem, error

# Defined beside the plan's record of sources (PlannedSecret); named here too, with the rest.
SecretKind = plan.SecretKind
DEFAULT_AGENT = plan.DEFAULT_AGENT


class MountType(enum.Enum):
    """What a `RUN --mount=type=...` brings from the session."""

    SECRET = "secret"  # noqa: S105 (a mount type, not a password)
    SSH = "ssh"


@attrs.frozen
class SecretSource:
    """Where the value of build secret ID comes from, as the config or --secret said."""

    id: str
    kind: SecretKind
    where: str  # the variable's name, or the file's path
    # Where it was given (the config's `secrets` key, or --secret), for errors about it.
    origin: Location | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def mount(self) -> MountType:
        return MountType.SSH if self.kind is SecretKind.SSH else MountType.SECRET

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
        found.append(SecretSource(secret_id, kind, where, origin))
    return tuple(found)


def config_agents(
    given: str | Mapping[str, str], origin: Location, base: str
) -> tuple[SecretSource, ...]:
    """The config's `ssh`: `default` (the run's SSH_AUTH_SOCK) or ID: PATH (an agent's socket
    or a private key; empty or `default`: SSH_AUTH_SOCK), paths relative to BASE."""
    entries = {"default": ""} if isinstance(given, str) else dict(given)
    if isinstance(given, str) and given != "default":
        raise DockerPkgError.single(
            origin.path,
            f"bad value for 'ssh': {given!r}: expected `default` (the SSH_AUTH_SOCK agent) "
            "or a mapping ID: PATH (an agent's socket or a private key file)",
            origin.line,
        )
    found = []
    for agent_id, where in sorted(entries.items()):
        if not _ID.fullmatch(agent_id):
            raise DockerPkgError.single(
                origin.path, f"bad value for 'ssh': {agent_id!r} is not an id", origin.line
            )
        found.append(SecretSource(agent_id, SecretKind.SSH, _agent_path(where, base)))
    return tuple(found)


def _agent_path(where: str, base: str) -> str:
    if where in ("", "default", DEFAULT_AGENT):
        return DEFAULT_AGENT
    if posixpath.isabs(where) or where.startswith("~") or not base:
        return where
    return posixpath.join(base, where)


def parse_ssh_flag(text: str) -> SecretSource:
    """--ssh as buildx spells it: `default`, `ID` (both: the SSH_AUTH_SOCK agent) or
    `ID=PATH` (an agent's socket or a private key file)."""
    agent_id, _, where = text.partition("=")
    if not _ID.fullmatch(agent_id) or "," in where:
        raise DockerPkgError.single(
            "--ssh", f"{text!r}: expected default, ID or ID=PATH (one socket or key file)"
        )
    return SecretSource(agent_id, SecretKind.SSH, _agent_path(where, ""))


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
    return SecretSource(secret_id, kind, where, Location("--secret"))


def merged(
    config: Iterable[SecretSource], flags: Iterable[SecretSource]
) -> tuple[SecretSource, ...]:
    """The config's sources with --secret and --ssh ones over them, by kind of mount and id."""
    by_id = {(s.mount.value, s.id): s for s in config}
    by_id.update({(s.mount.value, s.id): s for s in flags})
    return tuple(by_id[key] for key in sorted(by_id))


_MOUNT = re.compile(r"--mount=(\S+)")


def _instructions(dockerfile: str) -> list[tuple[int, str]]:
    """Each instruction of DOCKERFILE with the number of its first line, lines ending in a
    backslash joined to the next (`RUN --mount=... \\` then `--mount=type=ssh \\`)."""
    found: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 1
    for number, line in enumerate(dockerfile.split("\n"), 1):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        found.append((start, " ".join([*pending, line])))
        pending = []
    if pending:
        found.append((start, " ".join(pending)))
    return found


def secret_uses(
    dockerfile: str, mount: MountType = MountType.SECRET
) -> tuple[tuple[str, int], ...]:
    """The (id, line) of every secret (or SSH agent) a Dockerfile's RUN instructions mount; a
    secret's id left out is the target's file name, an agent's is `default`, as BuildKit
    takes them."""
    found = []
    for number, line in _instructions(dockerfile):
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
            if options.get("type") != mount.value:
                continue
            target = options.get("target") or options.get("dst") or options.get("destination")
            if mount is MountType.SSH:
                secret_id = options.get("id") or "default"
            else:
                secret_id = options.get("id") or posixpath.basename(target or "")
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
    mount: MountType = MountType.SECRET,
) -> list[Problem]:
    """What is wrong with the secrets (or SSH agents) DOCKERFILE mounts (rendered from the
    template at WHERE; LINE: where to point, else the Dockerfile's own line): an id no source
    is given for, or such mounts at all with the classic engine."""
    known = {source.id for source in sources if source.mount is mount}
    problems = []
    for secret_id, number in secret_uses(dockerfile, mount):
        at = line or number
        if engine is BuildEngine.CLASSIC:
            what = "build secrets" if mount is MountType.SECRET else "SSH forwarding"
            message = (
                f"RUN --mount=type={mount.value} (id {secret_id}) needs BuildKit; the classic "
                f"builder has no {what} (the engine comes from --engine, else DOCKER_BUILDKIT, "
                "else the config's `build_engine` or `container_limits`; give --engine "
                "buildkit, or change the one that chose classic)"
            )
        elif secret_id in known:
            continue
        elif mount is MountType.SSH:
            message = (
                f"SSH agent {secret_id!r} is not configured: add `ssh: default` (the "
                f"SSH_AUTH_SOCK agent) or `ssh: {{{secret_id}: PATH}}` to the config, or give "
                f"--ssh {secret_id}[=PATH]"
            )
        else:
            message = (
                f"secret {secret_id!r} is not configured: add it to the config's `secrets` "
                f"({secret_id}: {{env: VARIABLE}} or {{file: PATH}}) or give "
                f"--secret id={secret_id},env=VARIABLE"
            )
        problems.append(error(where, message, at))
    return problems


# The most a build secret may hold, as buildx allows (500 KiB): a secret is a token, a key or
# a small file, sent whole to the daemon in one message; more is a mistake (a build artifact
# named as a secret) that would be read into memory.
SECRET_SIZE_LIMIT = 500 * 1024


class SourceState(enum.Enum):
    """What a secret's source was found to be (dockerpkg.effects.secretvalues looks)."""

    REGULAR = "regular"  # a regular file (links followed)
    MISSING = "missing"
    OTHER = "other"  # a FIFO, socket, device or folder
    UNREADABLE = "unreadable"
    SET = "set"  # an environment variable that is set
    UNSET = "unset"


@attrs.frozen
class SourceFact:
    """One secret source as found: its state, its size in bytes, and for OTHER what it is
    (`a FIFO`), for UNREADABLE why."""

    state: SourceState
    size: int = 0
    what: str = ""


def source_problem(source: SecretSource, fact: SourceFact, *, planning: bool) -> str | None:
    """What makes SOURCE unusable as a build secret, found as FACT, or None. An unset
    variable is the run's to set (it is read when the build starts): when PLANNING it is no
    problem, when serving it is."""
    where = f"{source.kind.value}:{source.where}"
    said = f"secret {source.id!r} ({where})"
    if fact.state is SourceState.MISSING:
        return f"{said}: no such file"
    if fact.state is SourceState.UNREADABLE:
        return f"{said}: cannot read it: {fact.what}"
    if fact.state is SourceState.OTHER:
        return (
            f"{said}: is {fact.what}, not a regular file: a build secret is read from a "
            "regular file (reading a FIFO or a device could wait for ever)"
        )
    if fact.state is SourceState.UNSET:
        return None if planning else f"{said}: {source.where} is not set"
    if fact.size > SECRET_SIZE_LIMIT:
        return (
            f"{said}: holds {fact.size} bytes; a build secret holds at most 500 KiB "
            f"({SECRET_SIZE_LIMIT} bytes), as with buildx"
        )
    return None


def source_problems(
    sources: Iterable[SecretSource], facts: Mapping[SecretSource, SourceFact]
) -> list[Problem]:
    """When planning: what is wrong with the build secrets' SOURCES (those a plan uses), as
    FACTS found them, each an error where the source was given (the config's `secrets` key
    or --secret)."""
    problems = []
    for source in sources:
        fact = facts.get(source)
        if fact is None or source.kind is SecretKind.SSH:
            continue
        why = source_problem(source, fact, planning=True)
        if why is not None:
            origin = source.origin or Location("secrets")
            problems.append(error(origin.path, why, origin.line))
    return problems
