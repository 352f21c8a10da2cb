"""`apply PLAN.json` runs any saved plan; `python -m dockerpkg` is the same program."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockerpkg.cli import main
from tests.support.compat import COMPAT


def test_apply_runs_a_saved_update_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(COMPAT / "11-versions", tmp_path / "case")
    monkeypatch.chdir(tmp_path / "case")
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    assert main(["plan", "update", "leaf", "--out", "u.json", "images"]) == 0
    assert main(["apply", "u.json"]) == 0
    assert Path("images/leaf/changelog").read_text().startswith("leaf (5-s1) wikimedia;")
    capsys.readouterr()
    # Applied once, the plan is stale: the changelog it was made from changed.
    assert main(["apply", "u.json"]) == 1
    assert "stale plan" in capsys.readouterr().err


def test_python_dash_m(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "dockerpkg", "plan", "--offline", "images"],
        cwd=COMPAT / "02-no-registry-no-namespace",
        capture_output=True,
        text=True,
        check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith("Plan: 1 to pull, 2 to build, 2 to verify.\n")


def test_no_verb_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "a verb is needed" in capsys.readouterr().err


def test_plan_json_has_no_absolute_path(capsys: pytest.CaptureFixture[str]) -> None:
    case = COMPAT / "01-image-tag"
    assert (
        main(["-c", str(case / "config.yaml"), "plan", "--offline", "--json", str(case / "images")])
        == 0
    )
    out = capsys.readouterr().out
    assert str(COMPAT) not in out
    assert '"directory": "' in out
