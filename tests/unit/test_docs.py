"""The README is the front door and docs/ the reference: every link between them lands on a
file and a heading that exist, and the front door stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchor for each heading of PAGE."""
    found = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#+ (.*)", line):
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower())
            found.add(slug.replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_local_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (file.suffix == ".md" and anchor and anchor not in anchors(file)):
            broken.append(target)
    assert broken == []


def test_the_front_door_is_short_and_points_to_the_reference() -> None:
    text = PAGES[0].read_text(encoding="utf-8")
    assert len(text.split()) < 3500
    assert "make run" in text
    assert "make test" in text
    docs = {p.name for p in PAGES[1:]}
    assert len(docs) >= 3
    assert all(f"docs/{name}" in text for name in docs)


def _design() -> str:
    return (ROOT / "docs" / "design.md").read_text(encoding="utf-8")


def test_the_op_table_of_the_design_is_the_code_s() -> None:
    """docs/design.md copies core/ops.OPS, one row per op, every column as the code says."""
    from dockerpkg.core.ops import OPS

    section = _design().split("## The op table", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    flags = (
        "push_slot",
        "after_build",
        "pushes_image",
        "publishes",
        "before_promotion",
        "dropped_once_published",
    )
    expected = [
        [
            f"`{op.value}`",
            f"`{rule.where.value}`",
            *("yes" if getattr(rule, flag) else "" for flag in flags),
            f"`{rule.reported_as.value}`" if rule.reported_as else "",
        ]
        for op, rule in OPS.items()
    ]
    assert documented == expected


def test_the_library_examples_of_the_design_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every Python example of docs/design.md runs as written, in order, from the checkout
    (offline: no Docker); the one that applies a plan is left out, as it needs a daemon."""
    blocks = re.findall(r"```python\n(.*?)```", _design(), re.DOTALL)
    runnable = [block for block in blocks if "apply_run(" not in block]
    assert len(runnable) >= 2
    monkeypatch.chdir(ROOT)
    # The example reads the environment: no login or user config of this machine counts.
    for name in ("HOME", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(tmp_path))
    for name in ("DOCKERPKG_USERNAME", "DOCKERPKG_PASSWORD", "DOCKER_BUILDKIT"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, object] = {}
    for block in runnable:
        exec(compile(block, "docs/design.md", "exec"), namespace)  # the examples of our own docs
    printed = capsys.readouterr().out
    # The selected image alone, then the whole tree; and the options the run would take.
    assert "Plan: 1 to pull, 1 to build, 1 to verify." in printed
    assert "Plan: 1 to pull, 4 to build, 4 to verify." in printed
    assert "\n2 300.0 " in printed
