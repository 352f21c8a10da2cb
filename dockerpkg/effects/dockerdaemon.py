"""The daemon port (dockerpkg.effects.ports.Daemon) on a real Docker daemon, through docker-py:
each call is one of dockerpkg.effects.daemon, imagebuild, stage, buildsession or verify."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import docker

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.plan import BuildEngine, PlannedImage
from dockerpkg.effects import daemon, imagebuild
from dockerpkg.effects import stage as stages
from dockerpkg.effects.buildsession import Sources, image_session
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.ports import BuildRequest, StageBuilt
from dockerpkg.effects.verify import Finished, run_verification
from dockerpkg.effects.waits import Patience


class DockerDaemon:
    """The daemon a docker-py CLIENT reaches (the caller closes the client)."""

    def __init__(self, client: docker.APIClient) -> None:
        self._client = client

    def build(
        self,
        context: Path,
        label: str,
        request: BuildRequest,
        log: IO[str],
        cancel: threading.Event,
    ) -> str:
        return imagebuild.build(
            self._client,
            str(context),
            label,
            dockerfile=request.dockerfile,
            use_cache=request.use_cache,
            buildargs=request.buildargs,
            container_limits=request.container_limits,
            log_file=log,
            cancel=cancel,
            labels=request.labels,
            deadline=request.deadline,
            engine=request.engine,
            session=request.session,
            cache_from=request.cache_from,
            registry_auth=request.registry_auth,
            platform=request.platform,
        )

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
        output = stages.BuildOutput(log, cancel)
        failure = None
        try:
            stage_id = stages.build_stage(
                self._client,
                context,
                stage,
                artifacts,
                output,
                use_cache=request.use_cache,
                buildargs=request.buildargs,
                container_limits=request.container_limits,
                cancel=cancel,
                engine=request.engine,
                platform=request.platform,
            )
        except daemon.DaemonError as exc:
            # Only the text: the error's traceback holds the build's stream open.
            failure = exc.__class__, str(exc)
        finally:
            left = stages.remove_stage(self._client, stage, output)
        if failure is not None:
            kind, text = failure
            raise kind(text)
        return StageBuilt(stage_id, left)

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
        env, daemon_env = envs
        return image_session(image, engine, sources, env, (daemon_env, tls), patience=patience)

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
        return daemon.pull(
            self._client, label, credentials, log, cancel, timeout=timeout, platform=platform
        )

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
        return daemon.push(
            self._client,
            repository,
            tag,
            credentials,
            log_file=log,
            cancel=cancel,
            timeout=timeout,
        )

    def tag(self, source: str, repository: str, tag: str) -> None:
        daemon.tag(self._client, source, repository, tag)

    def image_id(self, label: str) -> str:
        return daemon.image_id(self._client, label)

    def image_platform(self, label: str) -> str:
        return daemon.image_platform(self._client, label)

    def repo_digests(self, label: str) -> tuple[str, ...]:
        return daemon.repo_digests(self._client, label)

    def local_labels(self) -> frozenset[str]:
        return daemon.local_labels(daemon.list_images(self._client))

    def reachable(self) -> bool:
        return daemon.reachable(self._client)

    def verify(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: IO[str],
        cancel: threading.Event,
        timeout: float | None,
    ) -> Finished:
        return run_verification(argv, env, log, cancel=cancel, timeout=timeout)
