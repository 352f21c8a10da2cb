"""Unit tests see no user config file, no author and no DOCKER_BUILDKIT from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.api import build as api_build
from tests.support.fakebuilders import FakeDaemons


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(Path(home) / ".config"))
    for name in ("DEBFULLNAME", "DEBEMAIL", "DOCKER_CONFIG", "DOCKER_BUILDKIT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def daemons(monkeypatch: pytest.MonkeyPatch) -> FakeDaemons:
    """The builders of an api run replaced by a fake recording the executors' settings."""
    fake = FakeDaemons()
    monkeypatch.setattr(api_build, "_run_on_builders", fake)
    return fake
