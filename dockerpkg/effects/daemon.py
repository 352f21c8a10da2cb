"""The Docker daemon: list, pull, build, tag, push and remove images through docker-py.

Every call that can fail raises DaemonError with a message for the user; streams are read to
the end because docker-py reports pull/push failures inside them rather than raising.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import docker
import docker.errors
import requests

from dockerpkg.core.labels import split_label
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.engine import LocalImage

log = logging.getLogger(__name__)

# Builds and pushes of big images take long; docker-pkg used the same.
TIMEOUT = 600


class DaemonError(Exception):
    """The daemon refused or failed; the message is for the user."""


def connect(env: Mapping[str, str] | None = None) -> docker.APIClient:
    """A low-level client for the daemon named by the environment; DaemonError if none answers."""
    try:
        client = docker.from_env(version="auto", timeout=TIMEOUT, environment=env).api
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot reach the Docker daemon: {_short(exc)}") from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def list_images(client: docker.APIClient) -> tuple[LocalImage, ...]:
    """Every image of the daemon, in one call."""
    try:
        raw = client.images(all=False)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot list images: {_short(exc)}") from None
    return tuple(
        LocalImage(
            id=item["Id"],
            tags=tuple(t for t in (item.get("RepoTags") or ()) if t != "<none>:<none>"),
            parent=item.get("ParentId") or None,
        )
        for item in raw
    )


def local_labels(images: Iterable[LocalImage]) -> frozenset[str]:
    return frozenset(tag for image in images for tag in image.tags)


def _auth(credentials: Credentials | None) -> dict[str, str] | None:
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password}


class CancelledError(DaemonError):
    """The run was cancelled while the daemon was streaming."""


def _stream_errors(
    stream: Iterator[Any], log_file: IO[str] | None, cancel: threading.Event | None = None
) -> str | None:
    """Copy a JSON progress stream to the log; return the first error it carries.

    A set CANCEL ends the read at the next chunk; dropping the stream closes the connection,
    which is how the daemon learns to stop.
    """
    error = None
    for chunk in stream:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        raw_items = chunk if isinstance(chunk, list) else [chunk]
        for raw in raw_items:
            item = json.loads(raw) if isinstance(raw, bytes | str) else raw
            if "error" in item and error is None:
                error = str(item.get("error") or item.get("errorDetail", {}).get("message"))
            if log_file is not None:
                text = item.get("stream") or item.get("status") or item.get("error") or ""
                if text:
                    progress = f" {item['progress']}" if item.get("progress") else ""
                    log_file.write(text if text.endswith("\n") else f"{text}{progress}\n")
    return error


def pull(
    client: docker.APIClient,
    label: str,
    credentials: Credentials | None,
    log_file: IO[str] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    repository, tag = split_label(label)
    try:
        stream = client.pull(
            repository,
            tag=tag or "latest",
            stream=True,
            decode=True,
            auth_config=_auth(credentials),
        )
        error = _stream_errors(stream, log_file, cancel)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot pull {label}: {_short(exc)}") from None
    if error:
        raise DaemonError(f"cannot pull {label}: {error}")


def build(
    client: docker.APIClient,
    context: str,
    label: str,
    *,
    dockerfile: str = "Dockerfile",
    use_cache: bool,
    buildargs: Mapping[str, str],
    container_limits: Mapping[str, Any],
    log_file: IO[str] | None = None,
    cancel: threading.Event | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Build CONTEXT (docker-py applies its .dockerignore) and tag it LABEL; returns the ID.

    rm and forcerm remove intermediate containers even when a step fails.
    """
    try:
        stream = client.build(
            path=context,
            dockerfile=dockerfile,
            tag=label,
            nocache=not use_cache,
            rm=True,
            forcerm=True,
            pull=False,
            buildargs=dict(buildargs),
            container_limits=dict(container_limits) or None,
            labels=dict(labels) if labels else None,
            decode=True,
        )
        error = _stream_errors(stream, log_file, cancel)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"build failed: {_short(exc)}") from None
    if error:
        raise DaemonError(f"build failed: {error.strip()}")
    try:
        image_id: str = client.inspect_image(label)["Id"]
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"built image {label} not found: {_short(exc)}") from None
    return image_id


def tag(client: docker.APIClient, label: str, repository: str, new_tag: str) -> None:
    try:
        client.tag(label, repository, new_tag, force=True)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot tag {label} as {repository}:{new_tag}: {_short(exc)}") from None


def push(
    client: docker.APIClient,
    repository: str,
    push_tag: str,
    credentials: Credentials | None,
    *,
    log_file: IO[str] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Push and read the whole stream: an error in it is a failure, whatever docker-py says."""
    try:
        stream = client.push(
            repository, tag=push_tag, stream=True, decode=True, auth_config=_auth(credentials)
        )
        error = _stream_errors(stream, log_file, cancel)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"push of {repository}:{push_tag} failed: {_short(exc)}") from None
    if error:
        raise DaemonError(f"push of {repository}:{push_tag} failed: {error}")


def remove_image(client: docker.APIClient, image_id: str) -> None:
    """Remove without force: an image a container uses is refused by the daemon, not forced."""
    try:
        client.remove_image(image_id, force=False, noprune=False)
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot remove {image_id[:19]}: {_short(exc)}") from None


def containers_images(client: docker.APIClient) -> frozenset[str]:
    """IDs of images used by any container, running or not."""
    try:
        return frozenset(c["ImageID"] for c in client.containers(all=True))
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot list containers: {_short(exc)}") from None


def copy_from_image(
    client: docker.APIClient,
    image: str,
    source: str,
    out: IO[bytes],
    cancel: threading.Event | None = None,
) -> None:
    """Write a tar stream of SOURCE inside IMAGE to OUT, through a container created for it,
    never started, and removed whatever happens."""
    try:
        container = client.create_container(image, command=["true"])["Id"]
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot create a container from {image}: {_short(exc)}") from None
    try:
        stream, _ = client.get_archive(container, source)
        for chunk in stream:
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")
            out.write(chunk)
    except docker.errors.NotFound:
        raise DaemonError(f"{image} has no {source}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot copy {source} out of {image}: {_short(exc)}") from None
    finally:
        try:
            client.remove_container(container, force=True)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise DaemonError(f"cannot remove container {container[:12]}: {_short(exc)}") from None
