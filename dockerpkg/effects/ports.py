"""What the executor asks of a Docker daemon and of the registry: two small ports.

The executor (dockerpkg.effects.executor) only carries out a plan's steps; what it needs of
the daemon (build an image or a build stage, pull, push, tag, inspect, serve a build its
BuildKit session, run a verification) and of the registry (confirm, move and delete
manifests, read an image's labels, put an image index) is named here.
dockerpkg.effects.dockerdaemon does it on a real daemon through docker-py,
dockerpkg.effects.registry's RegistryClient on a real registry; the executor's unit tests
use in-memory fakes (tests/support/fakedaemon.py).

Every daemon call that fails raises DaemonError (CancelledError once the run's cancellation
is set, TimedOutError past a deadline or a transfer's timeout) with a message for the user;
registry calls raise RegistryError.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import attrs

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.plan import BuildEngine, PlannedImage
from dockerpkg.effects.buildsession import Sources
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.verify import Finished
from dockerpkg.effects.waits import Patience


@attrs.frozen
class BuildRequest:
    """How to build one image from a context (dockerpkg.effects.imagebuild.build's
    arguments, but the client, the context, the label, the log and the cancellation)."""

    engine: BuildEngine
    use_cache: bool
    buildargs: Mapping[str, str]
    container_limits: Mapping[str, Any]
    dockerfile: str = "Dockerfile"
    labels: Mapping[str, str] | None = None
    deadline: float | None = None  # time.monotonic() past which the build is stopped
    session: str | None = None  # the BuildKit session serving its secrets, SSH and logins
    cache_from: tuple[str, ...] = ()
    # Registry -> login, for BuildKit's cache imports; never shown.
    registry_auth: Mapping[str, Mapping[str, str]] | None = attrs.field(default=None, repr=False)
    # Several platforms: the one platform (`linux/arm64`) to build for; None: the daemon's.
    platform: str | None = None


@attrs.frozen
class StageBuilt:
    """A build stage whose /build was copied out: its image's ID, and what of the stage
    (its image, the layers its build made) could not be removed afterwards, if anything."""

    image_id: str
    left: str | None = None


class Daemon(Protocol):
    """One Docker daemon, as the executor uses it."""

    def build(
        self,
        context: Path,
        label: str,
        request: BuildRequest,
        log: IO[str],
        cancel: threading.Event,
    ) -> str:
        """Build CONTEXT as REQUEST says and tag it LABEL; the image's ID."""
        ...

    def build_stage(
        self,
        context: Path,
        stage: str,
        artifacts: Path,
        request: BuildRequest,
        *,
        log: IO[str],
        cancel: threading.Event,
    ) -> StageBuilt:
        """Build STAGE from CONTEXT's REQUEST.dockerfile and unpack its /build as
        ARTIFACTS/build; the stage goes whatever happens (a failure raises once it went)."""
        ...

    def session(
        self,
        image: PlannedImage,
        engine: BuildEngine,
        sources: Sources,
        envs: tuple[Mapping[str, str], Mapping[str, str]],
        tls: TLSFiles | None,
        *,
        patience: Patience,
    ) -> contextlib.AbstractContextManager[str | None]:
        """The BuildKit session IMAGE's build needs (its secrets, SSH agents and logins),
        for as long as the block lasts; None when it needs none. ENVS: the run's environment
        and the one reaching this daemon; TLS: the daemon's TLS files."""
        ...

    def pull(
        self,
        label: str,
        credentials: Credentials | None,
        log: IO[str],
        cancel: threading.Event,
        *,
        timeout: float,
        platform: str | None = None,
    ) -> str | None:
        """Pull LABEL (TIMEOUT: each wait for the daemon's word), for PLATFORM when given
        (`linux/arm64`: that platform's image of a multi-platform one); the manifest digest
        it resolved to, if the daemon says."""
        ...

    def push(
        self,
        repository: str,
        tag: str,
        credentials: Credentials | None,
        log: IO[str],
        cancel: threading.Event,
        *,
        timeout: float,
    ) -> str | None:
        """Push REPOSITORY:TAG; the digest of the manifest pushed, if the daemon says."""
        ...

    def tag(self, source: str, repository: str, tag: str) -> None:
        """Name the local image SOURCE REPOSITORY:TAG (moving the tag if it exists)."""
        ...

    def image_id(self, label: str) -> str:
        """The ID of the local image LABEL."""
        ...

    def image_platform(self, label: str) -> str:
        """The platform (`linux/arm64`) the local image LABEL's config records."""
        ...

    def repo_digests(self, label: str) -> tuple[str, ...]:
        """The manifest digests the daemon knows the local image LABEL by, in its repository."""
        ...

    def local_labels(self) -> frozenset[str]:
        """The labels of every local image."""
        ...

    def reachable(self) -> bool:
        """Whether the daemon answers a ping."""
        ...

    def verify(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: IO[str],
        cancel: threading.Event,
        timeout: float | None,
    ) -> Finished:
        """Run a verification (a local process reaching this daemon through ENV)."""
        ...


class Registry(Protocol):
    """The run's registry, as the executor uses it (dockerpkg.effects.registry.RegistryClient):
    REPOSITORY is a path in it; None answers mean "not there"."""

    def manifest_digest(self, repository: str, tag: str) -> str | None: ...

    def config_digest(self, repository: str, tag: str) -> str | None: ...

    def copy_tag(self, repository: str, source: str, target: str) -> str | None: ...

    def promote(self, staging: str, repository: str, tag: str, digest: str) -> str | None: ...

    def delete_manifest(self, repository: str, digest: str) -> str | None: ...

    def image_labels(self, repository: str, tag: str) -> dict[str, str] | None: ...

    def put_index(
        self, repository: str, tags: Sequence[str], children: Sequence[tuple[str, str]]
    ) -> str:
        """Put one OCI image index listing CHILDREN (platform, and a tag or a digest of
        REPOSITORY) under each of TAGS in turn; its digest. A child the registry does not
        hold raises RegistryError."""
        ...

    def promote_index(
        self,
        staging: str,
        repository: str,
        tags: Sequence[str],
        children: Sequence[tuple[str, str]],
    ) -> str:
        """Put one OCI image index listing CHILDREN (platform, manifest digest: in
        REPOSITORY already, else copied there from STAGING by digest) under each of TAGS in
        turn; its digest. A child neither holds raises RegistryError before any tag moves."""
        ...
