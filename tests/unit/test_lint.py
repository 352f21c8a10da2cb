"""`dockerpkg lint`: each rule on a failing and a passing tree, through the CLI and the core."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.config import load_config
from dockerpkg.core.lint import DEFAULT_RULES, Finding, Rule, lint_tree
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import Location, Problem, Severity
from tests.support.badinput import fingerprint, write_work
from tests.unit.test_bad_input import ACCEPTED, CASES, PLAN, Case

ROOT = Path(__file__).resolve().parents[2]
# The bad-input suite's cases that only plan the tree (not update, apply a plan, ...).
BAD_INPUT = [c for c in CASES if c.argv == PLAN]
CONFIG = (
    "registry: registry.example.org\n"
    "base_images:\n"
    "  - registry.example.org/busybox:1.36\n"
    "known_uid_mappings:\n"
    "  nobody: 65534\n"
)


def entry(name: str, version: str) -> str:
    return (
        f"{name} ({version}) wikimedia; urgency=medium\n\n  * Change.\n\n"
        " -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )


def write_image(
    root: Path,
    name: str,
    template: str,
    *,
    control: str | None = None,
    versions: Sequence[str] = ("1.0",),
    test: bool = True,
    files: dict[str, str] | None = None,
) -> None:
    """An image folder ROOT/tree/NAME; VERSIONS newest first."""
    folder = root / "tree" / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile.template").write_text(template, "utf-8")
    (folder / "changelog").write_text("\n".join(entry(name, v) for v in versions), "utf-8")
    if control is not None:
        (folder / "control").write_text(control, "utf-8")
    if test:
        (folder / "test.sh").write_text("#!/bin/sh\ntrue\n", "utf-8")
    for path, text in (files or {}).items():
        (folder / path).write_text(text, "utf-8")


BASE = 'FROM {{ "busybox" | image_tag }}\nUSER 65534\n'
CHILD = 'FROM {{ "base" | image_tag }}\nRUN true\nUSER {{ "nobody" | uid }}\n'


def clean_tree(root: Path, config: str = CONFIG) -> Path:
    """A tree every rule passes: base on busybox, child on base, declared and used."""
    write_image(root, "base", BASE)
    write_image(root, "child", CHILD, control="Package: child\nDepends: base\n")
    (root / "config.yaml").write_text(config, "utf-8")
    return root


def lint(root: Path, rules: frozenset[Rule] = DEFAULT_RULES) -> tuple[Finding, ...]:
    """The core function on ROOT/tree."""
    config = load_config([("config.yaml", (root / "config.yaml").read_text("utf-8"))])
    return lint_tree(read_snapshot(str(root / "tree")), config, directory="tree", rules=rules)


ORDER = DEFAULT_RULES | {Rule.CHANGELOG_ORDER}


def cli(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(root)
    status = main(["-c", "config.yaml", "lint", *args, "tree"])
    out, err = capsys.readouterr()
    return status, out, err


def brief(findings: Sequence[Finding]) -> list[tuple[Rule, Severity, str]]:
    return [(f.rule, f.severity, str(f.problem.location)) for f in findings]


class TestCleanTree:
    def test_no_findings(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        assert lint(tmp_path) == ()
        assert cli(tmp_path, capsys, monkeypatch, "--strict") == (
            0,
            "lint: no problems found\n",
            "",
        )

    def test_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        status, out, _ = cli(tmp_path, capsys, monkeypatch, "--json")
        assert status == 0
        assert json.loads(out) == {"errors": 0, "warnings": 0, "findings": []}


class TestUndeclaredDependency:
    def test_failing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").unlink()
        findings = lint(tmp_path)
        assert brief(findings) == [
            (Rule.UNDECLARED_DEPENDENCY, Severity.WARNING, "child/Dockerfile.template:1")
        ]
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert status == 0
        assert out == (
            "child/Dockerfile.template:1: warning: [undeclared-dependency] image 'child' uses "
            "'base' through image_tag but its control file does not declare it (Depends); it is "
            "built first anyway\n"
            "lint: 0 error(s), 1 warning(s)\n"
        )
        status, out, _ = cli(tmp_path, capsys, monkeypatch, "--strict")
        assert status == 1
        assert out.startswith("child/Dockerfile.template:1: error: [undeclared-dependency]")
        assert out.endswith("lint: 1 error(s), 0 warning(s)\n")

    def test_line_in_the_build_template(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").write_text("Package: child\n", "utf-8")
        build = 'FROM scratch\n# from {{ "base" | image_tag }}\n'
        (tmp_path / "tree" / "child" / "Dockerfile.build.template").write_text(build, "utf-8")
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(
            "FROM scratch\nUSER 1\n", "utf-8"
        )
        assert [str(f.problem.location) for f in lint(tmp_path)] == [
            "child/Dockerfile.build.template:2"
        ]

    def test_computed_name_gives_the_file_only(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").unlink()
        template = '{% set n = "ba" ~ "se" %}FROM {{ n | image_tag }}\nUSER 1\n'
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(template, "utf-8")
        assert brief(lint(tmp_path)) == [
            (Rule.UNDECLARED_DEPENDENCY, Severity.WARNING, "child/Dockerfile.template")
        ]

    def test_passing(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        assert not [f for f in lint(tmp_path) if f.rule is Rule.UNDECLARED_DEPENDENCY]

    @pytest.mark.parametrize(
        "argv",
        [("plan", "--offline"), ("graph",), ("update", "base", "--version", "2.0")],
        ids=["plan", "graph", "update"],
    )
    def test_other_commands_count_it_in_one_line(
        self,
        argv: tuple[str, ...],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").unlink()
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DEBFULLNAME", "Release Bot")
        monkeypatch.setenv("DEBEMAIL", "bot@example.org")
        assert main(["-c", "config.yaml", *argv, "tree"]) == 0
        err = capsys.readouterr().err.splitlines()
        assert err[0] == (
            "1 warning about the tree: dockerpkg lint tree lists them (--info shows them here)"
        )
        assert not [line for line in err if ": warning: " in line]

    def test_info_shows_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").unlink()
        monkeypatch.chdir(tmp_path)
        assert main(["--info", "-c", "config.yaml", "plan", "--offline", "tree"]) == 0
        assert capsys.readouterr().err == (
            "child/Dockerfile.template: warning: uses image 'base' through image_tag but does not "
            "declare it in control (Depends); it is built first anyway\n"
        )


class TestUnusedDependency:
    def test_failing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        write_image(tmp_path, "other", BASE)
        control = "Package: child\nDepends: base,\n other (>= 1.0)\n"
        (tmp_path / "tree" / "child" / "control").write_text(control, "utf-8")
        assert brief(lint(tmp_path)) == [
            (Rule.UNUSED_DEPENDENCY, Severity.WARNING, "child/control:3")
        ]
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert status == 0
        assert out.splitlines()[0] == (
            "child/control:3: warning: [unused-dependency] image 'child' declares 'other' but "
            "its templates never use it through image_tag"
        )
        assert cli(tmp_path, capsys, monkeypatch, "--strict")[0] == 1

    def test_base_image_declared_but_unused(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        control = "Package: child\nDepends: base, busybox\n"
        (tmp_path / "tree" / "child" / "control").write_text(control, "utf-8")
        assert brief(lint(tmp_path)) == [
            (Rule.UNUSED_DEPENDENCY, Severity.WARNING, "child/control:2")
        ]

    def test_passing(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        control = "Package: child\nDepends: base, busybox\n"
        (tmp_path / "tree" / "child" / "control").write_text(control, "utf-8")
        template = 'FROM {{ "base" | image_tag }}\nCOPY --from={{ "busybox" | image_tag }} / /\n'
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(template, "utf-8")
        assert lint(tmp_path) == ()


class TestNonNumericUser:
    def test_failing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        template = 'FROM {{ "base" | image_tag }}\nUSER 0\nRUN true\nUSER {{ "www" }}-data\n'
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(template, "utf-8")
        assert brief(lint(tmp_path)) == [
            (Rule.NON_NUMERIC_USER, Severity.WARNING, "child/Dockerfile.template:4")
        ]
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert status == 0
        assert out.splitlines()[0] == (
            "child/Dockerfile.template:4: warning: [non-numeric-user] the final USER instruction "
            "'USER www-data' names no uid; use one (the uid filter gives it)"
        )
        assert cli(tmp_path, capsys, monkeypatch, "--strict")[0] == 1

    def test_an_error_with_force_numeric_user(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path, CONFIG + "force_numeric_user: true\n")
        (tmp_path / "tree" / "base" / "Dockerfile.template").write_text(
            BASE + "USER nobody\n", "utf-8"
        )
        assert brief(lint(tmp_path)) == [
            (Rule.NON_NUMERIC_USER, Severity.ERROR, "base/Dockerfile.template:3")
        ]
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert status == 1
        assert "as force_numeric_user requires" in out

    def test_user_from_an_include_names_the_template_only(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        template = 'FROM {{ "base" | image_tag }}\nUSER 0\n{% include "user.txt" %}\n'
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(template, "utf-8")
        (tmp_path / "tree" / "child" / "user.txt").write_text("USER nobody\n", "utf-8")
        assert brief(lint(tmp_path)) == [
            (Rule.NON_NUMERIC_USER, Severity.WARNING, "child/Dockerfile.template")
        ]

    @pytest.mark.parametrize(
        "user", ["USER 65534", "USER 65534:65534", 'USER {{ "nobody" | uid }}']
    )
    def test_passing(self, tmp_path: Path, user: str) -> None:
        clean_tree(tmp_path, CONFIG + "force_numeric_user: true\n")
        template = f'FROM {{{{ "base" | image_tag }}}}\nUSER www-data\nRUN true\n{user}\n'
        (tmp_path / "tree" / "child" / "Dockerfile.template").write_text(template, "utf-8")
        assert lint(tmp_path) == ()


class TestMissingTest:
    def test_failing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "base" / "test.sh").unlink()
        assert brief(lint(tmp_path)) == [(Rule.MISSING_TEST, Severity.WARNING, "base")]
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert (status, out.splitlines()[0]) == (
            0,
            "base: warning: [missing-test] image 'base' has no test.sh: it is built and "
            "published unverified",
        )
        assert cli(tmp_path, capsys, monkeypatch, "--strict")[0] == 1

    def test_passing(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        assert not [f for f in lint(tmp_path) if f.rule is Rule.MISSING_TEST]


class TestChangelogOrder:
    """Opt-in: trees with dated rebuilds (1.2-2-20260719 before 1.2-3) keep them on purpose."""

    def test_failing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        path = tmp_path / "tree" / "base" / "changelog"
        # Newest first: 3.0 is fine, then 1.0 is lower than 2.0 below it, then 2.0 repeats.
        path.write_text("\n".join(entry("base", v) for v in ["3.0", "1.0", "2.0", "2.0"]))
        findings = lint(tmp_path, ORDER)
        assert brief(findings) == [
            (Rule.CHANGELOG_ORDER, Severity.WARNING, "base/changelog:7"),
            (Rule.CHANGELOG_ORDER, Severity.WARNING, "base/changelog:13"),
        ]
        assert findings[0].problem.message == (
            "entry 1.0 is lower than the older entry 2.0 below it; versions must grow from "
            "bottom to top for Debian tools, while dockerpkg only needs `update --version` to "
            "be greater than the top entry"
        )
        assert "entry 2.0 is the same as the older entry 2.0" in findings[1].problem.message
        assert lint(tmp_path) == ()
        assert cli(tmp_path, capsys, monkeypatch) == (0, "lint: no problems found\n", "")
        status, out, _ = cli(tmp_path, capsys, monkeypatch, "--extend-select", "changelog-order")
        assert status == 0
        assert out.splitlines()[0].startswith("base/changelog:7: warning: [changelog-order]")
        assert out.endswith("lint: 0 error(s), 2 warning(s)\n")

    def test_dated_rebuilds_pass_by_default(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        path = tmp_path / "tree" / "base" / "changelog"
        versions = ["1.94.1-3", "1.94.1-2-20260719", "1.94.1-2"]
        path.write_text("\n".join(entry("base", v) for v in versions))
        assert lint(tmp_path) == ()
        assert brief(lint(tmp_path, ORDER)) == [
            (Rule.CHANGELOG_ORDER, Severity.WARNING, "base/changelog:1")
        ]

    def test_debian_ordering(self, tmp_path: Path) -> None:
        """Compared as Debian versions: 1.10 after 1.9, ~ before anything, an epoch first."""
        clean_tree(tmp_path)
        path = tmp_path / "tree" / "base" / "changelog"
        path.write_text("\n".join(entry("base", v) for v in ["1.10", "1.9", "1.9~rc1"]))
        assert lint(tmp_path, ORDER) == ()
        for versions in (["1.9", "1.10"], ["2.0", "1:0.1"]):
            path.write_text("\n".join(entry("base", v) for v in versions))
            assert brief(lint(tmp_path, ORDER)) == [
                (Rule.CHANGELOG_ORDER, Severity.WARNING, "base/changelog:1")
            ]

    def test_unreadable_older_entry_is_bad_input(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        path = tmp_path / "tree" / "base" / "changelog"
        path.write_text(entry("base", "2.0") + "\n" + entry("base", "1:a_b"))
        assert brief(lint(tmp_path)) == [(Rule.BAD_INPUT, Severity.ERROR, "base/changelog:7")]
        # Only the newest entry is read to build: that one is fine, and the image builds.
        path.write_text(entry("base", "2.0") + "\n" + entry("base", "1.0") + "garbage here\n")
        findings = lint(tmp_path)
        assert brief(findings) == [(Rule.BAD_INPUT, Severity.ERROR, "base/changelog:12")]
        assert findings[0].problem.message == (
            "cannot parse changelog: Unexpected line while looking for next heading of EOF: "
            "garbage here"
        )

    def test_passing(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        path = tmp_path / "tree" / "base" / "changelog"
        path.write_text("\n".join(entry("base", v) for v in ["2.0-s2", "2.0-s1", "2.0", "1.0"]))
        assert lint(tmp_path, ORDER) == ()


class TestBadInput:
    """Problems reading the tree are findings too, errors with exit 1, beside the rules'."""

    def test_template_error_and_other_rules(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "base" / "Dockerfile.template").write_text("FROM x\n{{ nope }}\n")
        (tmp_path / "tree" / "child" / "test.sh").unlink()
        assert brief(lint(tmp_path)) == [
            (Rule.BAD_INPUT, Severity.ERROR, "base/Dockerfile.template:2"),
            (Rule.MISSING_TEST, Severity.WARNING, "child"),
        ]
        status, out, err = cli(tmp_path, capsys, monkeypatch)
        assert status == 1
        assert out == (
            "base/Dockerfile.template:2: error: [bad-input] undefined variable: 'nope' is "
            "undefined\n"
            "child: warning: [missing-test] image 'child' has no test.sh: it is built and "
            "published unverified\n"
            "lint: 1 error(s), 1 warning(s)\n"
        )
        assert err == ""

    def test_unknown_dependency_and_warnings_of_the_tree(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        (tmp_path / "tree" / "child" / "control").write_text("Package: child\nDepends: ghost\n")
        (tmp_path / "tree" / "half").mkdir()
        (tmp_path / "tree" / "half" / "changelog").write_text(entry("half", "1.0"))
        findings = lint(tmp_path)
        assert brief(findings) == [
            (Rule.UNDECLARED_DEPENDENCY, Severity.WARNING, "child/Dockerfile.template:1"),
            (Rule.BAD_INPUT, Severity.ERROR, "child/control:2"),
            (Rule.BAD_INPUT, Severity.WARNING, "half"),
        ]

    def test_no_images(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "tree").mkdir()
        (tmp_path / "config.yaml").write_text(CONFIG)
        status, out, _ = cli(tmp_path, capsys, monkeypatch)
        assert status == 1
        assert out.startswith("tree: error: [bad-input] no images here")

    def test_missing_tree_and_bad_config_stop_before_linting(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "config.yaml").write_text("registry: [\n")
        status, out, err = cli(tmp_path, capsys, monkeypatch)
        assert (status, out) == (1, "")
        assert err.startswith("config.yaml:")
        assert "Traceback" not in err

    def test_cycle(self, tmp_path: Path) -> None:
        clean_tree(tmp_path)
        control = "Package: base\nDepends: child\n"
        (tmp_path / "tree" / "base" / "control").write_text(control)
        template = 'FROM {{ "child" | image_tag }}\nUSER 1\n'
        (tmp_path / "tree" / "base" / "Dockerfile.template").write_text(template)
        findings = lint(tmp_path)
        assert [str(f) for f in findings if f.rule is Rule.BAD_INPUT] == [
            "base/control:2: error: [bad-input] dependency cycle: base -> child -> base"
        ]


def test_json_lists_every_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_tree(tmp_path)
    (tmp_path / "tree" / "base" / "test.sh").unlink()
    path = tmp_path / "tree" / "child" / "changelog"
    path.write_text("\n".join(entry("child", v) for v in ["1.0", "1.1"]))
    status, out, _ = cli(tmp_path, capsys, monkeypatch, "--json", "--select", "ALL")
    assert status == 0
    assert json.loads(out) == {
        "errors": 0,
        "warnings": 2,
        "findings": [
            {
                "rule": "missing-test",
                "severity": "warning",
                "file": "base",
                "line": None,
                "message": "image 'base' has no test.sh: it is built and published unverified",
            },
            {
                "rule": "changelog-order",
                "severity": "warning",
                "file": "child/changelog",
                "line": 1,
                "message": "entry 1.0 is lower than the older entry 1.1 below it; versions "
                "must grow from bottom to top for Debian tools, while dockerpkg only needs "
                "`update --version` to be greater than the top entry",
            },
        ],
    }


def test_example_tree(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled tree has only warnings: three images without a test.sh."""
    monkeypatch.chdir(ROOT)
    status = main(["-c", "examples/config.yaml", "lint", "examples/tree"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines() == [
        f"{name}: warning: [missing-test] image 'example-{name}' has no test.sh: it is built "
        "and published unverified"
        for name in ("app", "base", "web")
    ] + ["lint: 0 error(s), 3 warning(s)"]


def test_findings_are_problems_with_a_location() -> None:
    finding = Finding(Rule.CHANGELOG_ORDER, Problem(Location("x/changelog", 7), "m"))
    assert str(finding) == "x/changelog:7: error: [changelog-order] m"


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c.id for c in BAD_INPUT])
def test_every_broken_tree_is_an_error(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad-input suite's broken trees and configs: exit 1, the same located message (as a
    bad-input finding, or before linting for what cannot be read at all), nothing changed."""
    work = tmp_path / "work"
    write_work(work)
    monkeypatch.chdir(work)
    for key, value in case.env:
        monkeypatch.setenv(key, value)
    case.build(work)
    before = fingerprint(work)
    status = main(["lint", "images"])
    out, err = capsys.readouterr()
    assert status == 1, out + err
    assert "Traceback" not in out + err
    where, _, message = case.expect.partition(": error: ")
    as_finding = f"{where}: error: [bad-input] {message}"
    lines = out.splitlines() + err.splitlines()
    assert any(line.startswith((as_finding, case.expect)) for line in lines), out + err
    assert fingerprint(work) == before


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_accepted_inputs_lint_without_errors(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the bad-input suite accepts, lint accepts: at most warnings (no test.sh here)."""
    work = tmp_path / "work"
    write_work(work)
    monkeypatch.chdir(work)
    case.build(work)
    status = main(["lint", "images"])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert ": error:" not in out + err
    assert "Traceback" not in out + err


class TestRuleChoice:
    """Rules chosen in ruff's manner, in the config's `lint` key and on the command line."""

    def tree(self, root: Path, config: str = CONFIG) -> Path:
        """A tree with one missing test.sh and one changelog out of order."""
        clean_tree(root, config)
        (root / "tree" / "base" / "test.sh").unlink()
        path = root / "tree" / "child" / "changelog"
        path.write_text("\n".join(entry("child", v) for v in ["1.0", "1.1"]))
        return root

    def rules(
        self, root: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch, *args: str
    ) -> list[str]:
        status, out, err = cli(root, capsys, mp, *args)
        assert (status, err) == (0, "")
        return sorted({line.split("[")[1].split("]")[0] for line in out.splitlines()[:-1]})

    def test_command_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.tree(tmp_path)
        mp = monkeypatch
        assert self.rules(tmp_path, capsys, mp) == ["missing-test"]
        assert self.rules(tmp_path, capsys, mp, "--ignore", "missing-test") == []
        both = ["changelog-order", "missing-test"]
        assert self.rules(tmp_path, capsys, mp, "--extend-select", "changelog-order") == both
        assert self.rules(tmp_path, capsys, mp, "--select", "ALL") == both
        assert self.rules(tmp_path, capsys, mp, "--select", "changelog-order") == [
            "changelog-order"
        ]
        args = ("--select", "ALL", "--ignore", "missing-test, unused-dependency")
        assert self.rules(tmp_path, capsys, mp, *args) == ["changelog-order"]

    def test_config_then_command_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = CONFIG + "lint:\n  extend_select: [changelog-order]\n  ignore: [missing-test]\n"
        self.tree(tmp_path, config)
        mp = monkeypatch
        assert self.rules(tmp_path, capsys, mp) == ["changelog-order"]
        # The command line starts from the config's choice, or replaces it with --select.
        assert self.rules(tmp_path, capsys, mp, "--extend-select", "missing-test") == [
            "changelog-order",
            "missing-test",
        ]
        assert self.rules(tmp_path, capsys, mp, "--select", "missing-test") == ["missing-test"]

    def test_bad_input_is_always_on(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.tree(tmp_path)
        (tmp_path / "tree" / "base" / "Dockerfile.template").write_text("{{ nope }}\n")
        status, out, _ = cli(tmp_path, capsys, monkeypatch, "--select", "missing-test")
        assert status == 1
        assert "[bad-input] undefined variable" in out
        status, out, err = cli(tmp_path, capsys, monkeypatch, "--ignore", "bad-input")
        assert (status, out) == (1, "")
        assert err.startswith("command line: error: lint rule 'bad-input' cannot be ignored")

    def test_unknown_rules_are_located_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.tree(tmp_path, CONFIG + "lint:\n  ignore: [missing-tests]\n")
        before = fingerprint(tmp_path)
        status, out, err = cli(tmp_path, capsys, monkeypatch)
        assert (status, out) == (1, "")
        assert err.splitlines()[0] == (
            "config.yaml:6: error: unknown lint rule 'missing-tests' (rules: bad-input, "
            "undeclared-dependency, unused-dependency, non-numeric-user, missing-test, "
            "changelog-order, or ALL)"
        )
        (tmp_path / "config.yaml").write_text(CONFIG)
        status, out, err = cli(tmp_path, capsys, monkeypatch, "--select", "nope")
        assert (status, out) == (1, "")
        assert err.startswith("command line: error: unknown lint rule 'nope'")
        assert "Traceback" not in err
        del before["config.yaml"]
        after = fingerprint(tmp_path)
        del after["config.yaml"]
        assert after == before

    def test_list_rules(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert main(["lint", "--list-rules"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[:2] for line in lines] == [
            [rule.value, "on" if rule in DEFAULT_RULES else "off"] for rule in Rule
        ]
        assert Rule.CHANGELOG_ORDER not in DEFAULT_RULES
        assert Rule.MISSING_TEST in DEFAULT_RULES
