"""Plans for review: Markdown comments and `diff` of two saved plans (golden files), with the
forgotten changelog entry caught offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dockerpkg.cli import main
from tests.support.golden import check_golden

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example tree as `base/` and a changed copy as `change/`, both planned offline:
    web's page changed without a changelog entry, tools got a new version (and a new file),
    a new image `extra` appeared. Works in TMP_PATH, so plans name their trees relatively."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "config.yaml", "config.yaml")
    shutil.copytree(EXAMPLES / "tree", "base")
    shutil.copytree(EXAMPLES / "tree", "change")
    change = tmp_path / "change"
    (change / "web" / "index.html").write_text("<p>changed</p>\n", encoding="utf-8")
    template = change / "web" / "Dockerfile.template"
    template.write_text(template.read_text(encoding="utf-8") + "EXPOSE 80\n", encoding="utf-8")
    changelog = change / "tools" / "changelog"
    changelog.write_text(
        "example-tools (0.4) wikimedia; urgency=medium\n\n  * New tool.\n\n"
        " -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 10:00:00 +0000\n\n"
        + changelog.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    shutil.copytree(change / "base", change / "extra")
    extra = change / "extra" / "changelog"
    extra.write_text(
        extra.read_text(encoding="utf-8").replace("example-base", "example-extra"), "utf-8"
    )
    for name in ("base", "change"):
        status = main(["-c", "config.yaml", "plan", "--offline", "--out", f"{name}.json", name])
        assert status == 0
    return tmp_path


def test_diff_finds_the_forgotten_bump(review: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["diff", "base.json", "change.json"]) == 2
    out = capsys.readouterr().out
    check_golden("review/diff.txt", out)
    assert "definition_changed_without_version_bump  example-web  2.1-1" in out
    assert "new_version  example-tools  0.3 -> 0.4" in out
    # Images depending on the changed ones changed too, through them.
    assert "example-app" in out


def test_diff_json_and_identical_plans(review: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["diff", "--json", "base.json", "change.json"]) == 2
    changes = {c["image"]: c["change"] for c in json.loads(capsys.readouterr().out)}
    assert changes["example-extra"] == "added"
    assert changes["example-web"] == "definition_changed_without_version_bump"
    assert main(["diff", "base.json", "base.json"]) == 0
    assert capsys.readouterr().out == "No image added, removed or changed.\n"


def test_markdown_plan(review: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = ["-c", "config.yaml", "plan", "--offline", "--format", "markdown"]
    assert main([*args, "--base", "base.json", "change"]) == 0
    out = capsys.readouterr().out
    check_golden("review/plan.md", out)
    assert "<details><summary>Dockerfile of <code>example-web</code></summary>" in out
    assert "+EXPOSE 80" in out
    assert main([*args, "base"]) == 0
    assert "<details>" not in capsys.readouterr().out  # no base plan: nothing to compare


def test_update_leaves_no_forgotten_bump(
    review: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new version of web changes app's Dockerfile too: `update` bumps both."""
    monkeypatch.setenv("DEBFULLNAME", "Jane Doe")
    monkeypatch.setenv("DEBEMAIL", "jane@example.org")
    assert main(["-c", "config.yaml", "update", "example-web", "base"]) == 0
    assert main(["-c", "config.yaml", "plan", "--offline", "--out", "bumped.json", "base"]) == 0
    capsys.readouterr()
    assert main(["diff", "base.json", "bumped.json"]) == 0
    out = capsys.readouterr().out
    assert "new_version  example-web  2.1-1 -> 2.1-1-s1" in out
    assert "new_version  example-app  1.0 -> 1.0-s1" in out
    assert "definition_changed" not in out


@pytest.mark.parametrize("ticks", [3, 5])
def test_markdown_fences_hold_any_template(
    ticks: int, review: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template line of backticks cannot close the diff's fence: what follows it stays in
    the diff instead of rendering as Markdown or HTML in the review comment."""
    template = review / "change" / "web" / "Dockerfile.template"
    injected = "`" * ticks + "\n<img src=x onerror=alert(1)>\n# Approved\n"
    template.write_text(template.read_text(encoding="utf-8") + injected, encoding="utf-8")
    capsys.readouterr()
    args = ["-c", "config.yaml", "plan", "--offline", "--format", "markdown"]
    assert main([*args, "--base", "base.json", "change"]) == 0
    out = capsys.readouterr().out
    check_golden(f"review/plan-fence-{ticks}.md", out)
    fence = "`" * (ticks + 1)
    assert f"{fence}diff\n" in out
    body = out.split(f"{fence}diff\n", 1)[1].split(f"\n{fence}\n", 1)[0]
    assert "+<img src=x onerror=alert(1)>" in body
    assert "+" + "`" * ticks in body
