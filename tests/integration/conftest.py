"""Shared fixtures of the integration tests (the Docker ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

# test_build's fixtures, for every integration module: a registry holding the base image
# (`make_site`) and `main()` run in-process (`dockerpkg`).
from tests.integration.test_build import dockerpkg, make_site

__all__ = ["dockerpkg", "isolated_home", "make_site"]


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config, no Docker client config: credentials come only from what a test writes."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
