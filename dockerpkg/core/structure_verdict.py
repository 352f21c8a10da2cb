"""The verdict of each kind of structure check from what a probe observed, with
container-structure-test 1.19.1's rules (docs/structure-tests.md lists them), and the few
rules that decide what the probe is asked: `$VAR` expansion and the path a file content
check reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dockerpkg.core.structure import (
    CommandSpec,
    EnvVar,
    FileContentSpec,
    FileExistenceSpec,
    MetadataSpec,
    Verdict,
)
from dockerpkg.core.structure_facts import FileKind, FileStat, ImageConfig, RunResult
from dockerpkg.core.structure_regex import go_match

# The entries container-structure-test looks at in a path's archive; others (devices,
# pipes) are "not found" to it.
FOUND_KINDS = frozenset({FileKind.FILE, FileKind.DIRECTORY, FileKind.SYMLINK, FileKind.HARDLINK})

_SPECIAL = frozenset("*#$@!?-0123456789")


def expand(text: str, env: Mapping[str, str]) -> str:
    """TEXT with `$NAME` and `${NAME}` replaced by ENV's values (unset: empty), as Go's
    os.Expand does: `$$` and `$1` are one-character names, a bad `${` is dropped, and a
    `$` followed by no name is kept."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] != "$" or index + 1 == len(text):
            out.append(text[index])
            index += 1
            continue
        name, width = _shell_name(text[index + 1 :])
        if name:
            out.append(env.get(name, ""))
        elif width == 0:
            out.append("$")
        index += 1 + width
    return "".join(out)


def _shell_name(rest: str) -> tuple[str, int]:
    """The name after a `$` and how many characters it takes (a name "" with a width is
    bad syntax, dropped)."""
    if rest[0] == "{":
        if len(rest) > 2 and rest[1] in _SPECIAL and rest[2] == "}":
            return rest[1], 3
        end = rest.find("}")
        if end == 1:
            return "", 2
        if end < 0:
            return "", 1
        return rest[1:end], end + 1
    if rest[0] in _SPECIAL:
        return rest[0], 1
    width = 0
    while width < len(rest) and (
        (rest[width].isascii() and rest[width].isalnum()) or rest[width] == "_"
    ):
        width += 1
    return rest[:width], width


def command_line(spec: CommandSpec, image_env: Mapping[str, str]) -> tuple[str, ...]:
    """The command and args as run: each expanded with the image's environment (not the
    test's `envVars`, which the image does not hold unless a setup command ran)."""
    return tuple(expand(part, image_env) for part in spec.command)


def setup_env(spec: CommandSpec, image_env: Mapping[str, str]) -> dict[str, str]:
    """The variables setup commands run with: the test's, each value expanded with the
    image's environment."""
    return {pair.key: expand(pair.value, image_env) for pair in spec.env}


def run_env(spec: CommandSpec) -> dict[str, str]:
    """The variables the command runs with: the test's, as written (not expanded)."""
    return {pair.key: pair.value for pair in spec.env}


def command_verdict(spec: CommandSpec, result: RunResult) -> Verdict:
    """Every expected pattern found, every excluded one absent (stdout and stderr each),
    and the exit code as expected (0 unless given)."""
    messages = [
        *_expected(spec.expected_error, result.stderr, "error output"),
        *_excluded(spec.excluded_error, result.stderr, "error output"),
        *_expected(spec.expected_output, result.stdout, "output"),
        *_excluded(spec.excluded_output, result.stdout, "output"),
    ]
    if result.exit_code != spec.exit_code:
        messages.append(f"exit code {result.exit_code}, expected {spec.exit_code}")
    return Verdict.of(messages)


def _expected(patterns: Iterable[str], text: str, what: str) -> list[str]:
    return [f"'{p}' not found in the {what}: {text!r}" for p in patterns if not go_match(p, text)]


def _excluded(patterns: Iterable[str], text: str, what: str) -> list[str]:
    return [f"'{p}' found in the {what}: {text!r}" for p in patterns if go_match(p, text)]


def existence_verdict(spec: FileExistenceSpec, stat: FileStat | None) -> Verdict:
    """Exists or not as asked; when it should, the mode string, executable bits and
    owner ids asked for. A symlink at the end of the path is judged itself."""
    found = stat is not None and stat.kind in FOUND_KINDS
    if not spec.should_exist:
        return Verdict.of([f"{spec.path} exists and should not"] if found else [])
    if stat is None or not found:
        return Verdict.of([f"{spec.path} does not exist"])
    messages = []
    if spec.permissions is not None and stat.mode_string != spec.permissions:
        messages.append(f"{spec.path} has mode {stat.mode_string}, expected {spec.permissions}")
    if spec.executable_by is not None and not stat.mode & spec.executable_by.value:
        who = spec.executable_by.name.lower()
        messages.append(f"{spec.path} is not executable by {who} ({stat.mode_string})")
    if spec.uid is not None and stat.uid != spec.uid:
        messages.append(f"{spec.path} is owned by user {stat.uid}, expected {spec.uid}")
    if spec.gid is not None and stat.gid != spec.gid:
        messages.append(f"{spec.path} is owned by group {stat.gid}, expected {spec.gid}")
    return Verdict.of(messages)


def link_read_path(link_target: str) -> str:
    """The path a file content check reads for a symlink: its target as written, which
    Docker takes from the root when relative (container-structure-test does not resolve
    it against the link's folder)."""
    return link_target if link_target.startswith("/") else "/" + link_target


def content_verdict(spec: FileContentSpec, content: str | None, why: str | None) -> Verdict:
    """Every expected pattern found in CONTENT and no excluded one; CONTENT None (it could
    not be read, WHY) fails."""
    if content is None:
        return Verdict.of([f"cannot read {spec.path}: {why or 'not found'}"])
    return Verdict.of(
        [
            *_expected(spec.expected, content, "content"),
            *_excluded(spec.excluded, content, "content"),
        ]
    )


def metadata_verdict(spec: MetadataSpec, config: ImageConfig) -> Verdict:
    """Each thing the metadata test names, compared with the image's config."""
    messages = [
        *_pairs(spec.env, config.env, "variable"),
        *(f"variable {k} is set and should not be" for k in spec.unbound_env if k in config.env),
        *_pairs(spec.labels, config.labels, "label"),
        *_list_check("cmd", spec.cmd, config.cmd),
        *_list_check("entrypoint", spec.entrypoint, config.entrypoint),
    ]
    if spec.workdir is not None and spec.workdir != config.workdir:
        messages.append(f"workdir is '{config.workdir}', expected '{spec.workdir}'")
    if spec.user is not None and spec.user != config.user:
        messages.append(f"user is '{config.user}', expected '{spec.user}'")
    # Ports are compared by number: `8080`, not `8080/tcp`.
    ports = {port.split("/", 1)[0] for port in config.exposed_ports}
    messages += [f"port {p} is not exposed" for p in spec.exposed_ports if p not in ports]
    messages += [
        f"port {p} is exposed and should not be" for p in spec.unexposed_ports if p in ports
    ]
    volumes = set(config.volumes)
    messages += [f"volume {v} is not declared" for v in spec.volumes if v not in volumes]
    messages += [
        f"volume {v} is declared and should not be" for v in spec.unmounted_volumes if v in volumes
    ]
    return Verdict.of(messages)


def _pairs(pairs: Iterable[EnvVar], actual: Mapping[str, str], what: str) -> list[str]:
    messages = []
    for pair in pairs:
        if pair.key not in actual:
            messages.append(f"{what} {pair.key} is not set")
            continue
        value = actual[pair.key]
        matches = go_match(pair.value, value) if pair.is_regex else value == pair.value
        if not matches:
            messages.append(f"{what} {pair.key} is {value!r}, expected {pair.value!r}")
    return messages


def _list_check(
    what: str, expected: tuple[str, ...] | None, actual: tuple[str, ...] | None
) -> list[str]:
    # Unset and empty are the same to the comparison; None expected is "not checked".
    if expected is None or expected == (actual or ()):
        return []
    return [f"{what} is {list(actual or ())}, expected {list(expected)}"]
