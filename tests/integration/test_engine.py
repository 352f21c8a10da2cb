"""The two daemon engines prune uses see the same daemon the same way, and fail with a clear
message when nothing answers."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import docker
import pytest

from dockerpkg.effects import engine
from dockerpkg.effects.engine import DockerPyEngine, EngineError, SocketEngine


def test_socket_path_follows_docker_host() -> None:
    assert engine.socket_path({}) == engine.DEFAULT_SOCKET
    assert engine.socket_path({"DOCKER_HOST": "unix:///run/x.sock"}) == "/run/x.sock"
    assert engine.socket_path({"DOCKER_HOST": "tcp://127.0.0.1:2376"}) is None
    assert engine.socket_path({"DOCKER_HOST": "ssh://builder"}) is None


def test_both_engines_list_and_remove_alike(
    docker_client: docker.DockerClient, busybox_base: str
) -> None:
    env = dict(os.environ)
    fast = engine.connect(env)
    assert isinstance(fast, SocketEngine)
    full = DockerPyEngine.connect(env)
    name = f"127.0.0.1:1/dockerpkg-engine-{secrets.token_hex(4)}/busybox:1"
    docker_client.images.get(busybox_base).tag(name)
    try:
        for listing in (fast.images(), full.images()):
            assert any(name in (item.get("RepoTags") or ()) for item in listing)
        assert {i["Id"] for i in fast.images()} == {i["Id"] for i in full.images()}
        assert {c["Id"] for c in fast.containers()} == {c["Id"] for c in full.containers()}
        fast.remove_image(name)  # only untags: busybox_base still names the image
        assert all(name not in (item.get("RepoTags") or ()) for item in full.images())
        with pytest.raises(EngineError, match="No such image"):
            fast.remove_image(name)
        with pytest.raises(EngineError, match="No such image"):
            full.remove_image(name)
    finally:
        fast.close()
        full.close()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    socket = tmp_path / "nothing.sock"
    with pytest.raises(
        EngineError, match=f"DOCKER_HOST=unix://{socket}.*no such socket; is dockerd running"
    ):
        engine.connect({"DOCKER_HOST": f"unix://{socket}"})
