"""Golden files: compare with a file under fixtures/golden, or rewrite it for review.

Set DOCKERPKG_REGENERATE=1 to rewrite the files instead of comparing; review with git diff.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DOCKERPKG_REGENERATE") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.is_file(), f"missing golden file {path}; run with DOCKERPKG_REGENERATE=1"
    assert actual == path.read_text(encoding="utf-8"), f"differs from golden file {path}"
