"""Observation started from guesses, against the real daemon and a real registry: whatever was
guessed, the answers are those of the resolved tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockerpkg.api import load_workspace
from dockerpkg.core.registryrefs import tree_refs
from dockerpkg.effects.credentials import credentials_for
from dockerpkg.effects.observe import Observation
from dockerpkg.errors import DockerPkgError
from tests.integration.test_registry import publish
from tests.support.services import Registry
from tests.support.trees import unique_prefix
from tests.support.updates import write_tree


@pytest.mark.parametrize("guess", ["right", "none", "wrong"])
def test_answers_follow_the_tree_not_the_guesses(
    tmp_path: Path, registry: Registry, docker_client: object, guess: str
) -> None:
    prefix = unique_prefix()
    config = f"registry: {registry.host}\nnamespace: {prefix}\n"
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, config)
    workspace = load_workspace(str(tmp_path / "images"), str(tmp_path / "config.yaml"), {})
    publish(registry, f"{prefix}/base", ["1.0"])
    exact = list(tree_refs(workspace.tree, workspace.config).values())
    guesses = {"right": exact, "none": [], "wrong": [(f"{prefix}/other", "9")]}[guess]
    credentials = credentials_for(workspace.config, os.environ)
    observation = Observation(workspace.config, credentials, os.environ, guesses)
    observed = observation.result(workspace.tree)
    assert observed.published == {f"{registry.host}/{prefix}/base:1.0"}
    assert not observed.offline


def test_cancel_stops_and_a_dead_daemon_is_an_error(tmp_path: Path, registry: Registry) -> None:
    write_tree(tmp_path, {"base": ("1.0", [])}, f"registry: {registry.host}\n")
    workspace = load_workspace(str(tmp_path / "images"), str(tmp_path / "config.yaml"), {})
    refs = [(f"many/image{index}", "1") for index in range(200)]
    Observation(workspace.config, None, os.environ, refs).cancel()  # returns, raises nothing
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    with pytest.raises(DockerPkgError, match="use --offline"):
        Observation(workspace.config, None, env, refs).result(workspace.tree)
