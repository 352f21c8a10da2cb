"""Find a registry login for a library caller: its own username and password, else Docker's.

The run's environment is read here, at the edge, when the caller gives none; the file is read
and the helper run by effects/credentials.py, and core/logins.py chooses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dockerpkg.core.logins import Credentials, LoginSettings, choose_credentials
from dockerpkg.effects.credentials import docker_config_file, docker_login
from dockerpkg.errors import DockerPkgError

__all__ = ["find_credentials"]


def find_credentials(
    registry: str | None,
    username: str | None,
    password: str | None,
    docker_config: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials | None:
    """Return the credentials to use with REGISTRY (None or "" means Docker Hub).

    USERNAME and PASSWORD win when both are set. Otherwise the Docker client config is read:
    DOCKER_CONFIG (a path) when given (it must exist), else the one ENV (default: this
    process's environment) names: ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json``. When only USERNAME is set, Docker's credentials are used only
    if they are for that same user. Returns None when nothing is found.

    Raises DockerPkgError, located at the Docker config file, when that file is unreadable or
    names a credential helper that is missing or fails.
    """
    settings = LoginSettings(registry, username, password)
    if settings.complete:
        return choose_credentials(settings)
    env = os.environ if env is None else env
    if docker_config:
        if not os.path.isfile(docker_config):
            raise DockerPkgError.single(docker_config, "Docker config file not found")
        path: str | None = docker_config
    else:
        path = docker_config_file(env)
    return None if path is None else docker_login(settings, path, env)
