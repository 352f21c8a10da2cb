"""The verdict of each kind of structure check from observed facts, passing and failing, and
the rules beside them: Go's `$VAR` expansion and Go's mode strings (its regular expressions
are test_structure_regex's)."""

from __future__ import annotations

import pytest

from dockerpkg.core.structure import (
    CommandSpec,
    EnvVar,
    ExecutableBy,
    FileContentSpec,
    FileExistenceSpec,
    MetadataSpec,
)
from dockerpkg.core.structure_facts import FileKind, FileStat, ImageConfig, RunResult, env_mapping
from dockerpkg.core.structure_verdict import (
    command_line,
    command_verdict,
    content_verdict,
    existence_verdict,
    expand,
    link_read_path,
    metadata_verdict,
    run_env,
    setup_env,
)


def test_command_passes_when_everything_holds() -> None:
    spec = CommandSpec(
        command=("sh",),
        expected_output=("hel+o", "^a"),
        excluded_output=("bye",),
        expected_error=("warn",),
        excluded_error=("fatal",),
        exit_code=2,
    )
    verdict = command_verdict(spec, RunResult(2, "ab hello\n", "warning\n"))
    assert verdict.passed
    assert verdict.messages == ()


def test_command_fails_with_each_reason() -> None:
    spec = CommandSpec(
        command=("sh",),
        expected_output=("hello",),
        excluded_output=("bye",),
        expected_error=("warn",),
        excluded_error=("fatal",),
    )
    verdict = command_verdict(spec, RunResult(1, "bye\n", "fatal\n"))
    assert not verdict.passed
    assert len(verdict.messages) == 5
    assert "'hello' not found in the output" in verdict.messages[2]
    assert verdict.messages[-1] == "exit code 1, expected 0"


def test_go_end_of_text_is_not_before_a_final_newline() -> None:
    spec = CommandSpec(command=("echo",), expected_output=("hi$",))
    assert not command_verdict(spec, RunResult(0, "hi\n", "")).passed
    assert command_verdict(spec, RunResult(0, "hi", "")).passed
    multiline = CommandSpec(command=("echo",), expected_output=("(?m)hi$",))
    assert command_verdict(multiline, RunResult(0, "hi\n", "")).passed


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$A", "x"),
        ("${A}y", "xy"),
        ("$Ay", ""),
        ("$$", ""),
        ("$1", ""),
        ("${}", ""),
        ("${A", "A"),
        ("cost$", "cost$"),
        ("a $ b", "a $ b"),
        ("$UNSET-", "-"),
        ("${B}", "has space"),
    ],
)
def test_expansion_as_go_does_it(text: str, expanded: str) -> None:
    assert expand(text, {"A": "x", "B": "has space"}) == expanded


def test_command_env_rules() -> None:
    spec = CommandSpec(
        command=("sh", "-c", "echo $FOO $GREETING"),
        env=(EnvVar("FOO", "bar"), EnvVar("W", "${GREETING}!")),
    )
    image_env = {"GREETING": "hello"}
    # Args see the image's variables only; the test's are not the image's.
    assert command_line(spec, image_env) == ("sh", "-c", "echo  hello")
    assert setup_env(spec, image_env) == {"FOO": "bar", "W": "hello!"}
    assert run_env(spec) == {"FOO": "bar", "W": "${GREETING}!"}


def _stat(
    kind: FileKind = FileKind.FILE, mode: int = 0o644, uid: int = 0, gid: int = 0
) -> FileStat:
    return FileStat("/p", kind, mode, uid, gid, 1)


@pytest.mark.parametrize(
    ("kind", "mode", "text"),
    [
        (FileKind.FILE, 0o644, "-rw-r--r--"),
        (FileKind.DIRECTORY, 0o755, "drwxr-xr-x"),
        (FileKind.DIRECTORY, 0o1777, "dtrwxrwxrwx"),
        (FileKind.SYMLINK, 0o777, "Lrwxrwxrwx"),
        (FileKind.FILE, 0o4755, "urwxr-xr-x"),
        (FileKind.FILE, 0o2755, "grwxr-xr-x"),
        (FileKind.CHAR_DEVICE, 0o666, "Dcrw-rw-rw-"),
        (FileKind.BLOCK_DEVICE, 0o660, "Drw-rw----"),
        (FileKind.FIFO, 0o600, "prw-------"),
        (FileKind.HARDLINK, 0o600, "-rw-------"),
    ],
)
def test_mode_strings_as_go_prints_them(kind: FileKind, mode: int, text: str) -> None:
    assert _stat(kind, mode).mode_string == text


def test_existence_verdicts() -> None:
    wanted = FileExistenceSpec(
        "/p", permissions="-rwxr-x---", uid=1, gid=2, executable_by=ExecutableBy.GROUP
    )
    assert existence_verdict(wanted, _stat(mode=0o750, uid=1, gid=2)).passed
    failed = existence_verdict(wanted, _stat(mode=0o700, uid=0, gid=0))
    assert not failed.passed
    assert len(failed.messages) == 4
    assert not existence_verdict(FileExistenceSpec("/p"), None).passed
    # A device is not found, as container-structure-test's lookup skips it.
    assert not existence_verdict(FileExistenceSpec("/p"), _stat(FileKind.CHAR_DEVICE)).passed
    absent = FileExistenceSpec("/p", should_exist=False, permissions="x", uid=5)
    assert existence_verdict(absent, None).passed
    assert existence_verdict(absent, _stat(FileKind.FIFO)).passed
    assert not existence_verdict(absent, _stat()).passed


@pytest.mark.parametrize(
    ("who", "mode", "passed"),
    [
        (ExecutableBy.ANY, 0o001, True),
        (ExecutableBy.ANY, 0o644, False),
        (ExecutableBy.OWNER, 0o100, True),
        (ExecutableBy.OWNER, 0o011, False),
        (ExecutableBy.OTHER, 0o001, True),
        (ExecutableBy.OTHER, 0o110, False),
    ],
)
def test_executable_by(who: ExecutableBy, mode: int, passed: bool) -> None:
    spec = FileExistenceSpec("/p", executable_by=who)
    assert existence_verdict(spec, _stat(mode=mode)).passed is passed


def test_content_verdicts() -> None:
    spec = FileContentSpec("/p", expected=("^root:",), excluded=("(?i)secret",))
    assert content_verdict(spec, "root:x:0\n", None).passed
    assert not content_verdict(spec, "root:x\nSECRET\n", None).passed
    assert not content_verdict(spec, "nobody\n", None).passed
    missing = content_verdict(FileContentSpec("/p"), None, "/p not found")
    assert missing.messages == ("cannot read /p: /p not found",)
    assert link_read_path("/abs/target") == "/abs/target"
    assert link_read_path("target") == "/target"


def _config(**changes: object) -> ImageConfig:
    values: dict[str, object] = {
        "env": env_mapping(["PATH=/usr/bin:/bin", "GREETING=hello", "EMPTY=", "ODD"]),
        "labels": {"team": "images", "version": "1.2.3"},
        "user": "1000",
        "entrypoint": ("/bin/sh", "-c"),
        "cmd": None,
        "workdir": "/srv",
        "exposed_ports": ("53/udp", "8080/tcp"),
        "volumes": ("/data",),
        "architecture": "amd64",
    }
    values.update(changes)
    return ImageConfig(**values)  # type: ignore[arg-type]


def test_metadata_passes() -> None:
    spec = MetadataSpec(
        env=(EnvVar("GREETING", "hello"), EnvVar("EMPTY", ""), EnvVar("PATH", "/s?bin", True)),
        unbound_env=("NOPE",),
        labels=(EnvVar("team", "images"), EnvVar("version", r"^1\.2", True)),
        exposed_ports=("8080", "53"),
        unexposed_ports=("80",),
        volumes=("/data",),
        unmounted_volumes=("/srv",),
        entrypoint=("/bin/sh", "-c"),
        cmd=(),
        workdir="/srv",
        user="1000",
    )
    assert metadata_verdict(spec, _config()).messages == ()
    assert _config().env["ODD"] == ""


@pytest.mark.parametrize(
    "spec",
    [
        MetadataSpec(env=(EnvVar("GREETING", "hell"),)),
        MetadataSpec(env=(EnvVar("GREETING", "^x", True),)),
        MetadataSpec(env=(EnvVar("NOPE", ""),)),
        MetadataSpec(unbound_env=("GREETING",)),
        MetadataSpec(labels=(EnvVar("team", "other"),)),
        MetadataSpec(labels=(EnvVar("none", "x"),)),
        MetadataSpec(exposed_ports=("8080/tcp",)),
        MetadataSpec(exposed_ports=("9090",)),
        MetadataSpec(unexposed_ports=("53",)),
        MetadataSpec(volumes=("/srv",)),
        MetadataSpec(unmounted_volumes=("/data",)),
        MetadataSpec(entrypoint=("/bin/sh",)),
        MetadataSpec(entrypoint=()),
        MetadataSpec(cmd=("sh",)),
        MetadataSpec(workdir="/"),
        MetadataSpec(user="root"),
    ],
)
def test_metadata_fails(spec: MetadataSpec) -> None:
    verdict = metadata_verdict(spec, _config())
    assert not verdict.passed
    assert len(verdict.messages) == 1
