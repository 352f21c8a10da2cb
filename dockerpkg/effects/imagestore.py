"""A daemon's image store as `plan` and `prune` see it: the few calls they make (list images,
list containers, remove an image), behind one small interface with two implementations:

- `SocketImageStore` speaks the Engine API over the local unix socket with the standard
  library: three plain HTTP calls (a fourth, `/info`, for trees with platforms). Importing
  docker-py (and requests) costs more than all of a prune's work on a tree of dozens of
  images, and the local socket is where almost every prune runs.
- `DockerPyImageStore` wraps docker-py for every other endpoint (tcp://, TLS, ssh://).

Both raise ImageStoreError with a message for the user.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from dockerpkg.core.runenv import run_environment

if TYPE_CHECKING:
    import docker

DEFAULT_SOCKET = "/var/run/docker.sock"
# Listing and removing are quick; a daemon that takes longer is stuck, not busy.
TIMEOUT_S = 120.0


class ImageStoreError(Exception):
    """The daemon refused or failed; the message is for the user."""


class ImageStore(Protocol):
    def images(self, *, untagged: bool = True) -> list[dict[str, Any]]:
        """Every image; with UNTAGGED, intermediate ones too (`docker images --all`)."""

    def containers(self) -> list[dict[str, Any]]:
        """Every container, running or not (`docker ps --all`)."""

    def remove_image(self, image: str) -> None:
        """Remove without force: the daemon refuses an image a container uses."""

    def info(self) -> dict[str, Any]:
        """What the daemon says of itself (`docker info`): `OSType`, `Architecture`, ..."""

    def close(self) -> None: ...


def socket_path(env: Mapping[str, str]) -> str | None:
    """The unix socket DOCKER_HOST names (the default socket when unset), or None for any
    other kind of endpoint."""
    host = run_environment(env).docker_host
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host.removeprefix("unix://") or DEFAULT_SOCKET
    return None


def connect(env: Mapping[str, str]) -> ImageStore:
    """The image store of the daemon the environment names; ImageStoreError if none answers."""
    path = socket_path(env)
    if path is not None:
        host = run_environment(env).docker_host
        where = f"DOCKER_HOST={host}" if host else f"unix://{path}, DOCKER_HOST is not set"
        store = SocketImageStore(path, where=where)
        store.ping()
        return store
    return DockerPyImageStore.connect(env)


_REASONS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "no such socket"),
    (ConnectionRefusedError, "connection refused"),
    (PermissionError, "permission denied (is this user allowed to use Docker?)"),
    (ConnectionResetError, "the daemon closed the connection"),
    (TimeoutError, "timed out"),
)


def _reason(exc: BaseException) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return str(exc)[:300]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class SocketImageStore:
    """The Engine API over a unix socket, one kept-alive connection."""

    def __init__(self, path: str, timeout: float = TIMEOUT_S, *, where: str = "") -> None:
        self._path = path
        self._where = where or f"unix://{path}"
        self._connection = _UnixConnection(path, timeout)

    def _call(self, method: str, url: str, what: str) -> Any:
        try:
            self._connection.request(method, url)
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            if url == "/_ping":
                message = f"cannot reach the Docker daemon ({self._where}): {_reason(exc)}"
                raise ImageStoreError(f"{message}; is dockerd running?") from None
            raise ImageStoreError(
                f"cannot {what}: lost the Docker daemon ({_reason(exc)}); is dockerd still running?"
            ) from None
        if response.status >= 400:
            raise ImageStoreError(f"cannot {what}: {_daemon_message(response.status, body)}")
        if "json" not in (response.getheader("Content-Type") or ""):
            return None  # /_ping answers plain text
        return json.loads(body)

    def ping(self) -> None:
        self._call("GET", "/_ping", "reach the Docker daemon")

    def images(self, *, untagged: bool = True) -> list[dict[str, Any]]:
        url = f"/images/json?all={int(untagged)}"
        return list(self._call("GET", url, "list images") or ())

    def containers(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/containers/json?all=1", "list containers") or ())

    def remove_image(self, image: str) -> None:
        quoted = urllib.parse.quote(image, safe="/:@")
        self._call("DELETE", f"/images/{quoted}?force=0&noprune=0", f"remove {image[:19]}")

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/info", "ask the Docker daemon about itself") or {})

    def close(self) -> None:
        self._connection.close()


def _daemon_message(status: int, body: bytes) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    text = str(message or body.decode("utf-8", "replace").strip() or f"HTTP {status}")
    return text if len(text) < 300 else text[:300] + "..."


class DockerPyImageStore:
    """Any endpoint docker-py can reach."""

    def __init__(self, client: docker.APIClient) -> None:
        self._client = client

    @classmethod
    def connect(cls, env: Mapping[str, str]) -> DockerPyImageStore:
        # Here, not above: importing docker-py costs the socket path its speed.
        from dockerpkg.effects import daemon

        try:
            return cls(daemon.connect(env))
        except daemon.DaemonError as exc:
            raise ImageStoreError(str(exc)) from None

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        import docker.errors
        import requests

        try:
            return call(*args, **kwargs)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            text = str(exc)
            raise ImageStoreError(f"cannot {what}: {text[:300]}") from None

    def images(self, *, untagged: bool = True) -> list[dict[str, Any]]:
        return list(self._call("list images", self._client.images, all=untagged))

    def containers(self) -> list[dict[str, Any]]:
        return list(self._call("list containers", self._client.containers, all=True))

    def remove_image(self, image: str) -> None:
        self._call(
            f"remove {image[:19]}", self._client.remove_image, image, force=False, noprune=False
        )

    def info(self) -> dict[str, Any]:
        return dict(self._call("ask the Docker daemon about itself", self._client.info))

    def close(self) -> None:
        self._client.close()
