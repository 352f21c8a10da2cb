"""The two image stores prune uses see the same daemon the same way, and fail with a clear
message when nothing answers."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import docker
import pytest

from dockerpkg.effects import imagestore
from dockerpkg.effects.imagestore import DockerPyImageStore, ImageStoreError, SocketImageStore


def test_socket_path_follows_docker_host() -> None:
    assert imagestore.socket_path({}) == imagestore.DEFAULT_SOCKET
    assert imagestore.socket_path({"DOCKER_HOST": "unix:///run/x.sock"}) == "/run/x.sock"
    assert imagestore.socket_path({"DOCKER_HOST": "tcp://127.0.0.1:2376"}) is None
    assert imagestore.socket_path({"DOCKER_HOST": "ssh://builder"}) is None


def test_both_image_stores_list_and_remove_alike(
    docker_client: docker.DockerClient, busybox_base: str
) -> None:
    env = dict(os.environ)
    fast = imagestore.connect(env)
    assert isinstance(fast, SocketImageStore)
    full = DockerPyImageStore.connect(env)
    name = f"127.0.0.1:1/dockerpkg-engine-{secrets.token_hex(4)}/busybox:1"
    docker_client.images.get(busybox_base).tag(name)
    try:
        for listing in (fast.images(), full.images()):
            assert any(name in (item.get("RepoTags") or ()) for item in listing)
        assert {i["Id"] for i in fast.images()} == {i["Id"] for i in full.images()}
        assert {c["Id"] for c in fast.containers()} == {c["Id"] for c in full.containers()}
        fast.remove_image(name)  # only untags: busybox_base still names the image
        assert all(name not in (item.get("RepoTags") or ()) for item in full.images())
        with pytest.raises(ImageStoreError, match="No such image"):
            fast.remove_image(name)
        with pytest.raises(ImageStoreError, match="No such image"):
            full.remove_image(name)
    finally:
        fast.close()
        full.close()


def test_no_daemon_is_a_clear_error(tmp_path: Path) -> None:
    socket = tmp_path / "nothing.sock"
    with pytest.raises(
        ImageStoreError, match=f"DOCKER_HOST=unix://{socket}.*no such socket; is dockerd running"
    ):
        imagestore.connect({"DOCKER_HOST": f"unix://{socket}"})
