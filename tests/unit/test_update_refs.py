"""`update --refs` is one plan: the changelog entries and the reference moves are planned
together, printed whole (text or JSON), and only then written, all files or none."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import pytest

from dockerpkg.api import refs, versioning
from dockerpkg.api.workspace import load_workspace
from dockerpkg.cli import main
from dockerpkg.core.plan import FORMAT_VERSION
from dockerpkg.core.refsplan import FORMAT_VERSION as REFS_FORMAT_VERSION
from dockerpkg.core.refsrender import update_to_json
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.effects.workfiles import TEMP_NAME
from dockerpkg.errors import DockerPkgError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "refs"
UPDATE = ["-c", "config.yaml", "update", "app", "--version", "1.2", "--refs"]
MOVE = "team/app:1.0 -> team/app:1.2"
ENV = {"DEBFULLNAME": "Test Maintainer", "DEBEMAIL": "maintainer@example.org"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """fixtures/refs without its unknown reference, with `refs: paths: [uses]`, as the
    current folder."""
    target = tmp_path / "refs"
    shutil.copytree(FIXTURE, target)
    manifest = target / "uses" / "k8s" / "deployment.yaml"
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    manifest.write_text("".join(lines[:-2]), encoding="utf-8")
    config = target / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "refs:\n  paths: [uses]\n")
    monkeypatch.chdir(target)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return target


def test_the_moves_are_printed_before_anything_is_written(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write refused at its start (an interrupted update's staged file is there) still
    showed the whole plan, reference moves included: they were planned before writing."""
    (work / "tree" / "app" / TEMP_NAME).write_text("staged\n", encoding="utf-8")
    before = snapshot(work)
    status = main([*UPDATE, "tree"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "app/changelog" in out
    assert MOVE in out
    assert out.index("app/changelog") < out.index(MOVE)
    assert "staged by the interrupted update" in err
    assert snapshot(work) == before


def test_json_is_one_plan_with_its_refs(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main([*UPDATE, "--json", "tree"])
    out, err = capsys.readouterr()
    assert status == 0, err
    data = json.loads(out)  # one document: the update plan, with the refs plan inside
    assert data["format_version"] == FORMAT_VERSION
    assert data["action"] == "update"
    assert [edit["image"] for edit in data["edits"]] == ["app"]
    assert data["refs"]["action"] == "refs"
    assert data["refs"]["format_version"] == REFS_FORMAT_VERSION
    moved = [u for u in data["refs"]["uses"] if u["edit"] is not None]
    assert len(moved) == 7
    assert {u["edit"]["replacement"] for u in moved if u["image"] == "app"} == {"1.2"}
    jobs = (work / "uses" / "ci" / "jobs.yml").read_text(encoding="utf-8")
    assert "image: docker-registry.example.org/team/app:1.2\n" in jobs
    assert "moved 7 reference(s) in 3 file(s)" in err


def test_a_user_changed_after_planning_refuses_the_whole_write(work: Path) -> None:
    workspace = load_workspace("tree", "config.yaml", ENV, render=False)
    request = versioning.UpdateRequest(reason="Rebuild", name="app", version="1.2")
    when = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    plan = refs.plan_update_with_refs(
        versioning.update_plan(workspace, request, ENV, when), workspace, ENV
    )
    assert [edit.image for edit in plan.update.edits] == ["app"]
    assert len(plan.refs.edits) == 7
    jobs = work / "uses" / "ci" / "jobs.yml"
    jobs.write_text(jobs.read_text(encoding="utf-8") + "# edited meanwhile\n", encoding="utf-8")
    before = snapshot(work)
    with pytest.raises(DockerPkgError, match="changed since the plan was made; make a new plan"):
        refs.write_update_with_refs(plan, workspace)
    assert snapshot(work) == before


@pytest.mark.parametrize("apply", [["apply"], ["apply", "update"]])
def test_apply_refuses_a_combined_plan(
    work: Path, apply: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`update --refs --json` prints the whole plan for review; saved and given to `apply`,
    which writes changelogs only, it is refused rather than leaving its references behind."""
    workspace = load_workspace("tree", "config.yaml", ENV, render=False)
    request = versioning.UpdateRequest(reason="Rebuild", name="app", version="1.2")
    when = datetime.datetime(2026, 12, 7, tzinfo=datetime.UTC)
    combined = refs.plan_update_with_refs(
        versioning.update_plan(workspace, request, ENV, when), workspace, ENV
    )
    Path("u.json").write_text(update_to_json(combined), encoding="utf-8")
    Path("changelogs-only.json").write_text(plan_to_json(combined.update), encoding="utf-8")
    before = snapshot(work)
    status = main(["-c", "config.yaml", *apply, "u.json"])
    _, err = capsys.readouterr()
    assert status == 1
    assert "u.json: error: this is an `update --refs` plan" in err
    assert "dockerpkg update ... --refs" in err
    assert "Traceback" not in err
    assert snapshot(work) == before
    # The same plan without its reference edits is an update plan apply writes.
    assert main(["-c", "config.yaml", *apply, "changelogs-only.json"]) == 0
    assert snapshot(work) != before
