"""Build stages in the daemon: build the stage image, copy its /build out, and leave nothing of
it behind, whether the stage succeeds, fails or is cancelled.

A failed or abandoned build leaves no tag to remove, but the layers its finished steps
committed stay as untagged images. The build's own output says which those are, so the stage
reads it as it goes (`BuildOutput`) and removes them afterwards.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import docker
import docker.errors
import requests

from dockerpkg.core.plan import BuildEngine
from dockerpkg.effects import daemon, imagebuild

_STEP = re.compile(r"Step \d+/\d+ : (\S+)")
_LAYER = re.compile(r"---> ([0-9a-f]{12,64})")
_RUNNING = re.compile(r"---> Running in ([0-9a-f]{12,64})")


class BuildOutput:
    """The log of a stage build, noting the layers the build makes; with CANCEL set, the
    build ends at its next line of output (after noting it)."""

    def __init__(self, log: IO[str], cancel: threading.Event) -> None:
        self._log = log
        self._cancel = cancel
        self._reused = False
        self.made: list[str] = []  # layers this build committed (no base, no cache hit)
        self.last: str | None = None  # the image the build has reached
        self.running: str | None = None  # the container of the step in progress

    def write(self, text: str) -> int:
        written = self._log.write(text)
        for line in text.splitlines():
            self._note(line.strip())
        if self._cancel.is_set():
            raise daemon.CancelledError("cancelled")
        return written

    def _note(self, line: str) -> None:
        if step := _STEP.match(line):
            self._reused = step[1].upper() == "FROM"
            self.running = None
        elif line == "---> Using cache":
            self._reused = True
        elif running := _RUNNING.fullmatch(line):
            self.running = running[1]
        elif layer := _LAYER.fullmatch(line):
            self.last, self.running = layer[1], None
            if not self._reused:
                self.made.append(layer[1])


def build_stage(
    client: docker.APIClient,
    context: Path,
    stage: str,
    artifacts: Path,
    output: BuildOutput,
    *,
    use_cache: bool,
    buildargs: Mapping[str, str],
    container_limits: Mapping[str, Any],
    cancel: threading.Event,
    engine: BuildEngine,
    platform: str | None = None,
) -> str:
    """Build STAGE from CONTEXT's Dockerfile.build (for PLATFORM, the image's, where it has
    one: what /build holds goes into that platform's image) and unpack its /build as
    ARTIFACTS/build; returns the stage image's ID. The caller removes the stage
    (`remove_stage`) whatever happens, once this has returned or raised."""
    stage_id = imagebuild.build(
        client,
        str(context),
        stage,
        dockerfile="Dockerfile.build",
        use_cache=use_cache,
        buildargs=buildargs,
        container_limits=container_limits,
        log_file=cast(IO[str], output),
        engine=engine,
        platform=platform,
    )
    with tempfile.TemporaryFile() as archive:
        daemon.copy_from_image(client, stage, "/build", archive, cancel)
        archive.seek(0)
        try:
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(artifacts, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise daemon.DaemonError(f"cannot unpack /build of {stage}: {exc}") from None
    if not (artifacts / "build").is_dir():
        raise daemon.DaemonError(f"/build in {stage} is not a folder")
    return stage_id


def remove_stage(
    client: docker.APIClient, stage: str, output: BuildOutput, patience: float = 10.0
) -> str | None:
    """Remove the stage image and every layer its build made; what could not be removed, or
    None. Images with a tag or a digest are never touched, nor those still in use.

    An abandoned build goes on until the daemon sees the connection closed, and a container
    of its next step may hold a layer for a moment: removals are tried again for PATIENCE
    seconds while a layer of the build remains.
    """
    problem = None
    try:
        daemon.remove_image(client, stage)
    except daemon.DaemonError as exc:
        if _exists(client, stage):
            problem = str(exc)
    layers = list(output.made)
    if output.running is not None and output.last is not None:
        # The step in progress when the build stopped may have been committed still.
        layers += _committed(client, output.last, output.running)
    deadline = time.monotonic() + patience
    while True:
        left = []
        for layer in reversed(layers):
            if _untagged(client, layer):
                try:
                    daemon.remove_image(client, layer)
                except daemon.DaemonError:
                    left.append(layer)
        if not left or time.monotonic() > deadline:
            return problem
        layers = list(reversed(left))
        time.sleep(0.25)


def _exists(client: docker.APIClient, image: str) -> bool:
    try:
        daemon.inspect(client, image)
    except docker.errors.NotFound:
        return False
    except (docker.errors.DockerException, requests.RequestException):
        return True
    return True


def _untagged(client: docker.APIClient, image: str) -> bool:
    """IMAGE exists with neither tag nor digest (a layer of a build, not an image someone
    made or pulled)."""
    try:
        found = daemon.inspect(client, image)
    except (docker.errors.DockerException, requests.RequestException):
        return False
    return not (found.get("RepoTags") or found.get("RepoDigests"))


def _committed(client: docker.APIClient, parent: str, container: str) -> Iterator[str]:
    """Untagged children of PARENT committed from CONTAINER."""
    try:
        images = client.images(all=True)
    except (docker.errors.DockerException, requests.RequestException):
        return
    for item in images:
        if item.get("RepoTags") not in (None, [], ["<none>:<none>"]):
            continue
        if not str(item.get("ParentId") or "").removeprefix("sha256:").startswith(parent):
            continue
        try:
            made_by = str(daemon.inspect(client, item["Id"]).get("Container") or "")
        except (docker.errors.DockerException, requests.RequestException):
            continue
        if made_by.startswith(container):
            yield item["Id"]
