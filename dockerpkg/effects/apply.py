"""Execute a build plan on the daemon a docker-py client reaches: the Executor of
dockerpkg.effects.executor with the docker-py adapter (dockerpkg.effects.dockerdaemon)
behind its daemon port."""

from __future__ import annotations

import docker

from dockerpkg.core.report import Outcome
from dockerpkg.effects import executor
from dockerpkg.effects.dockerdaemon import DockerDaemon
from dockerpkg.effects.executor import Settings
from dockerpkg.effects.ports import Registry
from dockerpkg.effects.tasks import Listener


class Executor(executor.Executor):
    """Runs the steps of one plan on the daemon CLIENT reaches; one instance per run."""

    def __init__(
        self,
        client: docker.APIClient,
        registry: Registry | None,
        settings: Settings,
        listener: Listener,
    ) -> None:
        super().__init__(DockerDaemon(client), registry, settings, listener)


__all__ = ["Executor", "Outcome", "Settings"]
