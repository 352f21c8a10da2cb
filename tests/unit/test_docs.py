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
