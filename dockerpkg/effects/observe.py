"""Observe the world once, before planning: what the daemon holds and what is published."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import docker

from dockerpkg.core.config import Config
from dockerpkg.core.labels import repository_path
from dockerpkg.core.planner import Observed
from dockerpkg.core.tree import Tree
from dockerpkg.effects import daemon
from dockerpkg.effects.credentials import Credentials, find_credentials
from dockerpkg.effects.registry import RegistryClient, RegistryError
from dockerpkg.errors import DockerPkgError

#: Environment variables that supply the registry login, ahead of the config file's.
ENV_USERNAME = "DOCKERPKG_USERNAME"
ENV_PASSWORD = "DOCKERPKG_PASSWORD"  # noqa: S105 (a variable name, not a secret)


def credentials_for(config: Config, env: Mapping[str, str]) -> Credentials | None:
    """The login for the config's registry, first found wins:

    1. DOCKERPKG_USERNAME / DOCKERPKG_PASSWORD from ENV, each replacing the config's key;
    2. the config's ``username`` and ``password``;
    3. the Docker client config (``auths``, ``credsStore``, ``credHelpers``), for the
       username from 1 or 2 if one is set, else for whoever is logged in.

    The config's password goes only with the config's username: an environment naming
    another user must bring that user's password (or find it in the Docker config).
    """
    env_username = env.get(ENV_USERNAME) or None
    env_password = env.get(ENV_PASSWORD) or None
    username = env_username or config.username or None
    same_user = env_username is None or env_username == config.username
    password = env_password or (config.password if same_user else None) or None
    if env_password and not username:
        raise DockerPkgError.single(
            ENV_PASSWORD, f"set, but no username is: set {ENV_USERNAME} or the config's username"
        )
    if username and password:
        return Credentials(username, password)
    path = docker_config_file(env)
    if path is None:
        return None
    return find_credentials(config.registry, username, None, path)


def docker_config_file(env: Mapping[str, str]) -> str | None:
    """The Docker client config named by ENV (as the docker CLI finds it), if it exists.

    Docker reads a DOCKER_CONFIG folder without config.json as "not logged in".
    """
    folder = env.get("DOCKER_CONFIG")
    if folder:
        path = os.path.join(folder, "config.json")
    else:
        home = env.get("HOME") or str(Path.home())
        path = os.path.join(home, ".docker", "config.json")
    return path if os.path.isfile(path) else None


def registry_client(config: Config, credentials: Credentials | None) -> RegistryClient:
    return RegistryClient(
        config.registry or None,
        credentials,
        ca_bundle=config.ca_bundle,
        workers=max(1, config.scan_workers),
    )


def observe(
    tree: Tree,
    config: Config,
    client: docker.APIClient,
    credentials: Credentials | None,
) -> Observed:
    """Local labels in one daemon call; published tags in concurrent kept-alive checks."""
    try:
        local = daemon.local_labels(daemon.list_images(client))
    except daemon.DaemonError as exc:
        raise DockerPkgError.single("docker", str(exc)) from None
    refs = {
        name: (repository_path(image.repository, config.registry), image.tag)
        for name, image in tree.images.items()
    }
    try:
        with registry_client(config, credentials) as registry:
            found = registry.published_many(refs.values())
    except RegistryError as exc:
        raise DockerPkgError.single(config.registry or "Docker Hub", str(exc)) from None
    published = frozenset(tree.images[name].label for name, ref in refs.items() if found[ref])
    return Observed(
        offline=False, published=published, local=local, credentials=credentials is not None
    )
