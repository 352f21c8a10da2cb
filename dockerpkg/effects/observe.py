"""Observe the world once, before planning: what the daemon holds and what is published."""

from __future__ import annotations

import os
from collections.abc import Mapping

import docker

from dockerpkg.core.config import Config
from dockerpkg.core.labels import repository_path
from dockerpkg.core.planner import Observed
from dockerpkg.core.tree import Tree
from dockerpkg.effects import daemon
from dockerpkg.effects.credentials import Credentials, find_credentials
from dockerpkg.effects.registry import RegistryClient, RegistryError
from dockerpkg.errors import DockerPkgError


def credentials_for(config: Config, env: Mapping[str, str]) -> Credentials | None:
    """Config username/password, else the user's Docker config (auths and helpers)."""
    docker_config = env.get("DOCKER_CONFIG")
    path = f"{docker_config}/config.json" if docker_config else None
    if path is not None and not os.path.isfile(path):
        # Docker reads a DOCKER_CONFIG folder without config.json as "not logged in".
        if config.username and config.password:
            return Credentials(config.username, config.password)
        return None
    return find_credentials(config.registry, config.username, config.password, path)


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
