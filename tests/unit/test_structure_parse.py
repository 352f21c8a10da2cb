"""Reading container-structure-test files: every field, block and flow style, and bad input
as located errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerpkg.api.imagetests import read_structure_tests
from dockerpkg.core.structure import (
    METADATA_NAME,
    CheckKind,
    CommandSpec,
    EnvVar,
    ExecutableBy,
    FileContentSpec,
    FileExistenceSpec,
    MetadataSpec,
)
from dockerpkg.core.structure_yaml import parse_structure_tests
from dockerpkg.errors import DockerPkgError, Location

EVERY_FIELD = """\
schemaVersion: 2.0.0
commandTests:
  - name: everything
    command: sh
    args:
      - -c
      - echo hi
    envVars:
      - key: A
        value: b
      - {key: C, value: "$A"}
    setup: [["touch", "/x"], [mkdir, /y]]
    teardown: [[rm, /x]]
    expectedOutput: ["hi"]
    excludedOutput: [bye]
    expectedError: ['^$']
    excludedError: ["oops"]
    exitCode: 3
  - {name: flow, command: "true", args: [1, 2.5, yes]}
fileExistenceTests:
  - name: exists
    path: /bin/sh
    shouldExist: true
    permissions: -rwxr-xr-x
    uid: 0
    gid: 10
    isExecutableBy: group
  - {name: absent, path: /nope, shouldExist: no, uid: -1}
fileContentTests:
  - name: content
    path: /etc/passwd
    expectedContents: ["root"]
    excludedContents: ["(?i)secret"]
metadataTest:
  envVars: [{key: PATH, value: "/bin", isRegex: true}, {key: E, value: ""}]
  unboundEnvVars: [{key: GONE}]
  labels:
    - key: team
      value: images
  exposedPorts: ["80"]
  unexposedPorts: ["81"]
  volumes: [/data]
  unmountedVolumes: [/tmp]
  entrypoint: []
  cmd: ["sh"]
  workdir: /srv
  user: "1000"
"""


def test_every_field_is_read() -> None:
    tests = parse_structure_tests(EVERY_FIELD, "img/structure-tests.yaml")
    assert tests.path == "img/structure-tests.yaml"
    names = [(c.name, c.kind, c.location) for c in tests.checks]
    where = "img/structure-tests.yaml"
    assert names == [
        ("everything", CheckKind.COMMAND, Location(where, 3)),
        ("flow", CheckKind.COMMAND, Location(where, 19)),
        ("content", CheckKind.FILE_CONTENT, Location(where, 30)),
        ("exists", CheckKind.FILE_EXISTENCE, Location(where, 21)),
        ("absent", CheckKind.FILE_EXISTENCE, Location(where, 28)),
        (METADATA_NAME, CheckKind.METADATA, Location(where, 34)),
    ]
    specs = [c.spec for c in tests.checks]
    assert specs[0] == CommandSpec(
        command=("sh", "-c", "echo hi"),
        env=(EnvVar("A", "b"), EnvVar("C", "$A")),
        setup=(("touch", "/x"), ("mkdir", "/y")),
        teardown=(("rm", "/x"),),
        expected_output=("hi",),
        excluded_output=("bye",),
        expected_error=("^$",),
        excluded_error=("oops",),
        exit_code=3,
    )
    # Scalars read as text stay as written, as Go's yaml.v2 gives them to a string.
    assert specs[1] == CommandSpec(command=("true", "1", "2.5", "yes"))
    assert specs[2] == FileContentSpec("/etc/passwd", ("root",), ("(?i)secret",))
    assert specs[3] == FileExistenceSpec("/bin/sh", True, "-rwxr-xr-x", 0, 10, ExecutableBy.GROUP)
    assert specs[4] == FileExistenceSpec("/nope", should_exist=False)
    assert specs[5] == MetadataSpec(
        env=(EnvVar("PATH", "/bin", is_regex=True), EnvVar("E", "")),
        unbound_env=("GONE",),
        labels=(EnvVar("team", "images"),),
        exposed_ports=("80",),
        unexposed_ports=("81",),
        volumes=("/data",),
        unmounted_volumes=("/tmp",),
        entrypoint=(),
        cmd=("sh",),
        workdir="/srv",
        user="1000",
    )


def test_defaults_and_empty_sections() -> None:
    text = """\
schemaVersion: "2.0.0"
commandTests:
  - name: c
    command: ls
fileExistenceTests: [{name: f, path: /x}]
fileContentTests: []
licenseTests: []
metadataTest:
  cmd: ~
  workdir: ""
"""
    tests = parse_structure_tests(text, "s.yaml")
    assert [c.spec for c in tests.checks] == [
        CommandSpec(command=("ls",)),
        FileExistenceSpec("/x", should_exist=True, uid=None, gid=None),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("commandTests: []\n", 1, "'schemaVersion' is missing"),
        ("schemaVersion: 1.0.0\n", 1, "schemaVersion '1.0.0' is not supported"),
        ("schemaVersion: 2.0.0\nbogus: 1\n", 2, "unknown key 'bogus' in the file"),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n    argz: []\n",
            5,
            "unknown key 'argz' in a command test",
        ),
        ("schemaVersion: 2.0.0\ncommandTests:\n  - command: ls\n", 3, "without a 'name'"),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - {name: a}\n",
            3,
            "command test 'a': 'command' is missing",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n    exitCode: x\n",
            5,
            "'exitCode' must be a whole number",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n"
            '    exitCode: "1"\n',
            5,
            "'exitCode' must be a whole number",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n    args: x\n",
            5,
            "'args' must be a list",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n"
            "    expectedOutput: ['(']\n",
            5,
            "bad pattern in 'expectedOutput'",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n"
            "    expectedOutput: ['a(?!b)']\n",
            5,
            "bad pattern in 'expectedOutput': invalid perl operator: (?!",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n    setup: [[]]\n",
            5,
            "each of 'setup' must be a non-empty list",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: ls\n"
            "    envVars: [{key: A}]\n",
            5,
            "needs a non-empty 'key' and 'value'",
        ),
        (
            "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: f\n    path: /x\n"
            "    shouldExist: maybe\n",
            5,
            "'shouldExist' must be true or false",
        ),
        (
            "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: f\n    path: /x\n"
            "    isExecutableBy: everyone\n",
            5,
            "expected any, owner, group or other",
        ),
        ("schemaVersion: 2.0.0\nfileContentTests:\n  - name: f\n", 3, "'path' is missing"),
        (
            "schemaVersion: 2.0.0\nmetadataTest:\n  labels: [{key: '', value: x}]\n",
            3,
            "needs a non-empty 'key'",
        ),
        (
            "schemaVersion: 2.0.0\nmetadataTest:\n"
            "  labels: [{key: a, value: '[', isRegex: true}]\n",
            3,
            "bad pattern in 'labels'",
        ),
        (
            "schemaVersion: 2.0.0\nmetadataTest:\n  user: [a]\n",
            3,
            "expected a single value",
        ),
        (
            "schemaVersion: 2.0.0\nglobalEnvVars:\n  - {key: A, value: b}\n",
            3,
            "'globalEnvVars': variables for every test are not supported",
        ),
        (
            "schemaVersion: 2.0.0\ncontainerRunOptions:\n  user: root\n",
            3,
            "'containerRunOptions': run options",
        ),
        (
            "schemaVersion: 2.0.0\nlicenseTests:\n  - debian: true\n",
            3,
            "license tests are not supported",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - {name: a, command: ls}\n"
            "fileContentTests:\n  - {name: a, path: /x}\n",
            5,
            "the check name 'a' is given twice (first on line 3)",
        ),
        (
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    name: b\n    command: ls\n",
            4,
            "key 'name' is given twice",
        ),
        ("schemaVersion: 2.0.0\ncommandTests: [\n", 3, "not valid YAML"),
        ("", None, "empty file"),
    ],
)
def test_bad_input_is_located(text: str, line: int | None, message: str) -> None:
    with pytest.raises(DockerPkgError) as raised:
        parse_structure_tests(text, "img/structure-tests.yaml")
    (problem,) = raised.value.problems
    assert problem.location == Location("img/structure-tests.yaml", line)
    assert message in problem.message


def test_reading_an_image_folder(tmp_path: Path) -> None:
    assert read_structure_tests(str(tmp_path)) is None
    (tmp_path / "structure-tests.yaml").write_text(
        "schemaVersion: 2.0.0\nfileExistenceTests: [{name: sh, path: /bin/sh}]\n",
        encoding="utf-8",
    )
    tests = read_structure_tests(str(tmp_path))
    assert tests is not None
    assert tests.path == str(tmp_path / "structure-tests.yaml")
    assert [c.name for c in tests.checks] == ["sh"]
    (tmp_path / "structure-tests.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(DockerPkgError, match="cannot read it"):
        read_structure_tests(str(tmp_path))


def test_the_cross_check_fixture_reads() -> None:
    folder = Path(__file__).resolve().parents[2] / "fixtures" / "structure"
    tests = read_structure_tests(str(folder))
    assert tests is not None
    assert {check.kind for check in tests.checks} == set(CheckKind)


# Printable text: YAML refuses raw control characters. The JSON is written unescaped
# (ensure_ascii=False), as JSON's surrogate-pair escapes are not paired up by YAML.
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), max_size=12)


@given(
    names=st.lists(_TEXT.filter(bool), min_size=1, max_size=4, unique=True),
    command=_TEXT.filter(bool),
    args=st.lists(_TEXT, max_size=4),
    exit_code=st.integers(-300, 300),
    should_exist=st.booleans(),
    uid=st.integers(0, 70000),
)
def test_what_json_holds_reads_back(
    names: list[str],
    command: str,
    args: list[str],
    exit_code: int,
    should_exist: bool,
    uid: int,
) -> None:
    """JSON is YAML in flow style: any text (`yes`, `~`, `1`, quotes, `#`) stays itself."""
    document = {
        "schemaVersion": "2.0.0",
        "commandTests": [
            {"name": names[0], "command": command, "args": args, "exitCode": exit_code}
        ],
        "fileExistenceTests": [
            {"name": name, "path": command, "shouldExist": should_exist, "uid": uid}
            for name in names[1:]
        ],
    }
    tests = parse_structure_tests(json.dumps(document, ensure_ascii=False), "s.json")
    assert [c.name for c in tests.checks] == names
    assert tests.checks[0].spec == CommandSpec(command=(command, *args), exit_code=exit_code)
    for check in tests.checks[1:]:
        assert check.spec == FileExistenceSpec(command, should_exist, uid=uid)
