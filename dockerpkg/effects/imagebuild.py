"""Build an image on the Docker daemon: BuildKit (`POST /build?version=2`, its progress
decoded by dockerpkg.effects.buildkit) or the classic engine (docker-py's build), from a
context sent as a tar archive that honours the context's .dockerignore."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any

import docker
import docker.errors
import docker.utils.build

from dockerpkg.core.plan import BuildEngine
from dockerpkg.effects import buildkit
from dockerpkg.effects.daemon import (
    FAILURES,
    CancelledError,
    DaemonError,
    Guard,
    failure,
    inspect,
    item_error,
    remember_responses,
    requests_of,
    stream_errors,
)
from dockerpkg.effects.waits import Patience, send_aside

log = logging.getLogger(__name__)

_STEP_CONTAINER = re.compile(r" ---> Running in ([0-9a-f]+)")
_STEP_CONTAINER_REMOVED = "Removing intermediate container "


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
    deadline: float | None = None,
    engine: BuildEngine,
    session: str | None = None,
    cache_from: tuple[str, ...] = (),
    registry_auth: Mapping[str, Mapping[str, str]] | None = None,
    platform: str | None = None,
) -> str:
    """Build CONTEXT (docker-py applies its .dockerignore) and tag it LABEL; returns the ID.
    PLATFORM (`linux/arm64`): the one platform to build for, both engines (None: the
    daemon's own).

    The classic engine's rm and forcerm remove intermediate containers even when a step
    fails; BuildKit makes none (and takes SESSION, CACHE_FROM: see `_buildkit_params`). A
    build still running at DEADLINE (time.monotonic()) is stopped: TimedOutError.
    """
    remember_responses(client)
    guard = Guard(cancel, deadline)
    if engine is BuildEngine.BUILDKIT:
        return _build_with_buildkit(
            client,
            context,
            label,
            guard,
            params={
                **_buildkit_params(
                    dockerfile, use_cache, buildargs, labels, session, cache_from, container_limits
                ),
                **({"platform": platform} if platform else {}),
            },
            log_file=log_file,
            cancel=cancel,
            headers=_registry_config(registry_auth) if cache_from else {},
        )
    request = {
        "path": context,
        "dockerfile": dockerfile,
        "tag": label,
        "nocache": not use_cache,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "buildargs": dict(buildargs),
        "container_limits": dict(container_limits) or None,
        "labels": dict(labels) if labels else None,
        "decode": True,
        **({"platform": platform} if platform else {}),
    }
    return _build_classic(client, label, guard, request, log_file)


def _build_classic(
    client: docker.APIClient,
    label: str,
    guard: Guard,
    request: Mapping[str, Any],
    log_file: IO[str] | None,
) -> str:
    """docker-py's build with REQUEST (its keywords); the failed step's container named."""
    running: list[str] = []  # the container of the RUN step under way, if any

    def note(text: str) -> None:
        if match := _STEP_CONTAINER.match(text):
            running[:] = [match[1]]
        elif text.startswith(_STEP_CONTAINER_REMOVED):
            running.clear()

    patience = guard.patience
    try:
        with guard:
            # Aside: sending the context and waiting for the answer end on a cancellation.
            stream = send_aside(lambda: client.build(**request), patience.cancel, patience.deadline)
            guard.watch()
            error = stream_errors(stream, log_file, patience.cancel, note)
    except FAILURES as exc:
        guard.raise_if_cut()
        raise failure("build failed", exc, running[0] if running else None) from None
    # A cut stream may end without an error: never take the label's older image for this one.
    guard.raise_if_cut()
    if error:
        raise DaemonError(f"build failed: {error.strip()}")
    try:
        image_id = str(inspect(client, label)["Id"])
    except FAILURES as exc:
        raise failure(f"built image {label} not found", exc) from None
    return image_id


def _build_with_buildkit(
    client: docker.APIClient,
    context: str,
    label: str,
    guard: Guard,
    *,
    params: Mapping[str, Any],
    log_file: IO[str] | None,
    cancel: threading.Event | None,
    headers: Mapping[str, str],
) -> str:
    """`POST /build?version=2` with the context as a tar body, which the daemon's BuildKit
    takes without a client session; docker-py's `build` has no way to ask for it, so this
    goes through its request layer, which knows every endpoint kind (socket, TCP+TLS, ssh).
    """
    try:
        with guard:
            body = _context_archive(context, params["dockerfile"], guard.patience)
            try:
                # Aside: sending the context and waiting for the answer end on a cancellation.
                response = send_aside(
                    lambda: requests_of(client)._post(
                        requests_of(client)._url("/build"),
                        data=body,
                        params={"t": label, "version": "2", **params},
                        headers={"Content-Type": "application/tar", **headers},
                        stream=True,
                        timeout=None,
                    ),
                    guard.patience.cancel,
                    guard.patience.deadline,
                )
            finally:
                body.close()
            guard.watch()
            requests_of(client)._raise_for_status(response)
            stream = requests_of(client)._stream_helper(response, decode=True)
            image_id, error = _read_buildkit_stream(stream, log_file, cancel)
    except FAILURES as exc:
        guard.raise_if_cut()
        raise failure("build failed", exc) from None
    guard.raise_if_cut()
    if error:
        raise DaemonError(f"build failed: {error.strip()}{_buildkit_hint(error)}")
    if not image_id:
        raise DaemonError(f"build of {label} ended without an image ID")
    return image_id


def _buildkit_params(  # noqa: PLR0917 (the query of one request)
    dockerfile: str,
    use_cache: bool,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str] | None,
    session: str | None,
    cache_from: tuple[str, ...],
    container_limits: Mapping[str, Any],
) -> dict[str, Any]:
    """The query of `POST /build?version=2`. SESSION: the BuildKit session serving the
    build's secrets; CACHE_FROM: published images whose inline cache BuildKit imports."""
    return {
        "dockerfile": dockerfile,
        "nocache": not use_cache,
        "buildargs": json.dumps(dict(buildargs)),
        "labels": json.dumps(dict(labels or {})),
        **({"session": session} if session else {}),
        **({"cachefrom": json.dumps(list(cache_from))} if cache_from else {}),
        **container_limits,
    }


def _registry_config(auth: Mapping[str, Mapping[str, str]] | None) -> dict[str, str]:
    """The X-Registry-Config header the daemon reads logins for a build's pulls from."""
    if not auth:
        return {}
    text = json.dumps({host: dict(login) for host, login in auth.items()})
    return {"X-Registry-Config": base64.urlsafe_b64encode(text.encode()).decode()}


def _buildkit_hint(error: str) -> str:
    """What to do about a BuildKit failure the classic engine would not have had."""
    if "unable to find user" in error:
        # BuildKit of dockerd 20.10 reads /etc/passwd even for a numeric USER without group.
        return (
            " (this daemon's BuildKit reads the image's /etc/passwd even for a numeric USER:"
            " write USER uid:gid, give the image an /etc/passwd, or set"
            " `build_engine: classic`)"
        )
    return ""


def _read_buildkit_stream(
    stream: Iterator[dict[str, Any]], log_file: IO[str] | None, cancel: threading.Event | None
) -> tuple[str, str | None]:
    """Copy a BuildKit build's stream to the log; the image ID and the first error."""
    trace = buildkit.TraceLog()
    image_id, error = "", None
    for item in stream:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        lines: list[str] = []
        if item.get("id") == buildkit.TRACE_ID:
            lines = _trace_lines(trace, item.get("aux"))
        elif item.get("id") == buildkit.IMAGE_ID:
            image_id = str((item.get("aux") or {}).get("ID") or "")
        elif "error" in item or "errorDetail" in item:
            message = item_error(item)
            error = error or message
            lines = [f"{message}\n"]
        elif text := item.get("stream"):
            lines = [text]
        if log_file is not None:
            for line in lines:
                log_file.write(line)
    return image_id, error


def _trace_lines(trace: buildkit.TraceLog, aux: object) -> list[str]:
    """The log lines of one trace message; one that cannot be read is noted, not fatal."""
    if not isinstance(aux, str):
        return []
    try:
        return trace.lines(aux)
    except buildkit.TraceError as exc:
        return [f"(unreadable progress message: {exc})\n"]


def _context_archive(context: str, dockerfile: str, patience: Patience | None = None) -> IO[bytes]:
    """The build context after its .dockerignore (matched by docker-py, as for classic builds)
    as a tar: GNU format, the Dockerfile first.

    BuildKit tells an archive from a bare Dockerfile by parsing the first entry out of the
    body's first kilobyte. Python's default PAX format starts with an extended header (for
    the float mtimes), which pushes that entry out of reach: the archive is then read as a
    Dockerfile.
    """
    root = os.path.abspath(context)
    paths = docker.utils.build.exclude_paths(root, _dockerignore(context), dockerfile)
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (the caller sends and closes it)
    with tarfile.open(mode="w", fileobj=archive, format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(paths, key=lambda p: (p != dockerfile, p)):
            if patience is not None:
                patience.check()  # a large context takes a while: a cancellation ends it
            full = os.path.join(root, path)
            info = tar.gettarinfo(full, arcname=path)
            if info.isfile():
                with open(full, "rb") as file:
                    tar.addfile(info, file)
            elif info.isdir() or info.issym():
                tar.addfile(info)
    archive.seek(0)
    return archive


def _dockerignore(context: str) -> list[str]:
    """The context's .dockerignore patterns, read as docker-py's own `build` reads them."""
    try:
        with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return []
    return [s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")]
