"""Gather the facts a registry login is chosen from: Docker's client config and its helpers.

Docker keeps credentials in its client config (``config.json``): inline in ``auths`` or behind a
credential helper program (``credsStore`` for all registries, ``credHelpers`` per registry).
Reading them lets the tool check, pull and push with whatever ``docker login`` stored, without
the user copying a password into the tool's config file. This module only reads the file and
runs the helper, with the run's environment passed in; core/logins.py chooses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

from dockerpkg.core.config import Config
from dockerpkg.core.logins import (
    DOCKER_HUB_KEY,
    ENV_PASSWORD,
    ENV_USERNAME,
    Credentials,
    DockerConfig,
    HelperAnswer,
    LoginSettings,
    choose_credentials,
    helper_for,
    login_settings,
    read_docker_config,
    server_address,
)
from dockerpkg.effects.homes import docker_config_folder
from dockerpkg.errors import DockerPkgError

__all__ = [
    "DOCKER_HUB_KEY",
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "Credentials",
    "credentials_for",
    "docker_config_file",
    "docker_login",
]

# A credential helper may wait on a keyring or a GPG agent; a hung helper must not hang a build.
_HELPER_TIMEOUT_SECONDS = 60


def credentials_for(config: Config, env: Mapping[str, str]) -> Credentials | None:
    """The login for the config's registry, first found wins:

    1. DOCKERPKG_USERNAME / DOCKERPKG_PASSWORD from ENV, each replacing the config's key;
    2. the config's ``username`` and ``password``;
    3. the Docker client config ENV names (``auths``, ``credsStore``, ``credHelpers``), for
       the username from 1 or 2 if one is set, else for whoever is logged in.

    See core/logins.py for the rule; Docker's config is read only when 1 and 2 fall short.
    """
    settings = login_settings(config, env)
    if settings.complete:
        return choose_credentials(settings)
    path = docker_config_file(env)
    if path is None:
        return None
    return docker_login(settings, path, env)


def docker_login(settings: LoginSettings, path: str, env: Mapping[str, str]) -> Credentials | None:
    """The login SETTINGS come to with the Docker client config at PATH: its text read, its
    credential helper (if it names one) asked with ENV, core/logins.py choosing. Raises
    DockerPkgError, located at PATH, when the file is unreadable or names a helper that is
    missing or fails."""
    docker = read_docker_config(path, _read_text(path))
    helper = helper_for(docker, settings.registry)
    answer = None
    if helper is not None:
        answer = _ask_helper(helper, server_address(settings.registry), docker, env)
    return choose_credentials(settings, docker, answer)


def docker_config_file(env: Mapping[str, str]) -> str | None:
    """The Docker client config named by ENV (as the docker CLI finds it), if it exists.

    Docker reads a DOCKER_CONFIG folder without config.json as "not logged in".
    """
    path = os.path.join(docker_config_folder(env), "config.json")
    return path if os.path.isfile(path) else None


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerPkgError.single(path, f"cannot read Docker config: {exc}") from None


def _ask_helper(
    name: str, server: str, docker: DockerConfig, env: Mapping[str, str]
) -> HelperAnswer:
    """Run ``docker-credential-NAME get`` for SERVER as the Docker CLI does, found on ENV's
    PATH and run with ENV; what it said, for core/logins.py to read.

    docker-py's ``credentials.Store`` would do, but it has no timeout and puts whatever the
    helper printed into its error text; we word the errors ourselves.
    """
    program = f"docker-credential-{name}"
    executable = shutil.which(program, path=env.get("PATH", os.defpath))
    if executable is None:
        raise DockerPkgError.single(
            docker.path, f"credential helper {program} is configured but not found on PATH"
        )
    try:
        result = subprocess.run(
            [executable, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT_SECONDS,
            check=False,
            env=dict(env),
        )
    except subprocess.TimeoutExpired:
        raise DockerPkgError.single(
            docker.path,
            f"credential helper {program} did not answer in {_HELPER_TIMEOUT_SECONDS}s",
        ) from None
    except OSError as exc:
        raise DockerPkgError.single(
            docker.path, f"cannot run credential helper {program}: {exc.strerror}"
        ) from None
    said = result.stdout if result.returncode == 0 else (result.stdout or result.stderr)
    return HelperAnswer(program, server, result.returncode, said)
