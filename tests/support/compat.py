"""Load the bundled docker-pkg compatibility cases (fixtures/compat)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dockerpkg.core.config import Config, load_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
COMPAT = FIXTURES / "compat"


def cases() -> list[Path]:
    return sorted(p for p in COMPAT.iterdir() if p.is_dir())


def case_config(case: Path) -> Config:
    path = case / "config.yaml"
    return load_config([(str(path), path.read_text(encoding="utf-8"))])


def expected(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return data


def fixed_renders() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads((COMPAT / "fixed.json").read_text("utf-8"))
    return data
