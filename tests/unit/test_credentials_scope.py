"""The registry password goes only to the config's registry: a pull of a base image from
another registry never carries it (the daemon would hand it to that registry's auth)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from dockerpkg.core.config import load_config
from dockerpkg.core.labels import registry_of, same_registry
from dockerpkg.effects.apply import Executor, Settings
from dockerpkg.effects.credentials import Credentials


@pytest.mark.parametrize(
    ("repository", "host"),
    [
        ("debian", "docker.io"),
        ("library/debian", "docker.io"),
        ("docker.io/library/debian", "docker.io"),
        ("index.docker.io/library/debian", "docker.io"),
        ("quay.io/prometheus/busybox", "quay.io"),
        ("127.0.0.1:5000/base/busybox", "127.0.0.1:5000"),
        ("localhost/base", "localhost"),
        ("registry.example.org/wikimedia/base", "registry.example.org"),
    ],
)
def test_registry_of(repository: str, host: str) -> None:
    assert registry_of(repository) == host


def test_same_registry() -> None:
    assert same_registry("registry.example.org/ns/app", "registry.example.org")
    assert same_registry("registry.example.org/ns/app", "registry.example.org/")
    assert not same_registry("quay.io/x/base", "registry.example.org")
    assert not same_registry("debian", "registry.example.org")
    assert same_registry("debian", None)
    assert same_registry("docker.io/library/debian", "")
    assert not same_registry("127.0.0.1:5001/base", "127.0.0.1:5000")


def test_executor_sends_the_password_to_its_registry_only(tmp_path: Path) -> None:
    config = load_config([("config.yaml", "registry: registry.example.org\nnamespace: ns\n")])
    secret = Credentials("ci", "s3cret")
    settings = Settings(directory=tmp_path, run_dir=tmp_path, config=config, credentials=secret)
    executor = Executor(cast(Any, None), None, settings, cast(Any, None))
    assert executor.credentials_for("registry.example.org/ns/base:1.0") is secret
    assert executor.credentials_for("quay.io/other/base:1.0") is None
    assert executor.credentials_for("debian:bookworm") is None
