"""The global options (-c/--configfile, --debug, --info) taken anywhere on the command line,
as before there were sub-commands: between `plan`/`apply` and the sub-command or saved plan
they name too, in every spelling."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dockerpkg.cli import main
from tests.support.compat import COMPAT

# The config moved where only -c finds it: a plan made without it would differ.
GIVEN = [
    ["-c", "conf/other.yaml"],
    ["-cconf/other.yaml"],
    ["--configfile", "conf/other.yaml"],
    ["--configfile=conf/other.yaml"],
    ["--info", "-c", "conf/other.yaml"],
    ["--debug", "--configfile=conf/other.yaml"],
]


@pytest.fixture
def case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(COMPAT / "11-versions", tmp_path / "case")
    monkeypatch.chdir(tmp_path / "case")
    Path("conf").mkdir()
    Path("config.yaml").rename("conf/other.yaml")
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    return tmp_path / "case"


def written() -> bool:
    return Path("images/leaf/changelog").read_text().startswith("leaf (5-s1) wikimedia;")


@pytest.mark.parametrize("given", GIVEN)
@pytest.mark.parametrize("where", ["after the verb", "at the end"])
def test_plan_update_with_the_globals_after_plan(
    case: Path, given: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["update", "leaf", "images", "--json"]
    argv = ["plan", *given, *words] if where == "after the verb" else ["plan", *words, *given]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert '"action": "update"' in out
    assert "registry.example.org/leaf:5" in out  # the config given was read
    assert not written()


@pytest.mark.parametrize("given", GIVEN)
@pytest.mark.parametrize("where", ["after the verb", "at the end"])
def test_apply_of_a_saved_update_plan_with_the_globals_after_apply(
    case: Path, given: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["-c", "conf/other.yaml", "plan", "update", "leaf", "images", "--out", "u.json"]) == 0
    )
    argv = ["apply", *given, "u.json"] if where == "after the verb" else ["apply", "u.json", *given]
    assert main(argv) == 0, capsys.readouterr().err
    assert written()
    assert "Wrote 1 changelog(s)." in capsys.readouterr().err
