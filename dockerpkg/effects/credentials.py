"""Find the username and password to use with a registry: the tool's config, else Docker's own.

Docker keeps credentials in its client config (``config.json``): inline in ``auths`` or behind a
credential helper program (``credsStore`` for all registries, ``credHelpers`` per registry).
Reading them here lets the tool check, pull and push with whatever ``docker login`` stored,
without the user copying a password into the tool's config file.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs

from dockerpkg.core.config import Config
from dockerpkg.errors import DockerPkgError

__all__ = [
    "DOCKER_HUB_KEY",
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "Credentials",
    "credentials_for",
    "docker_config_file",
    "find_credentials",
]

log = logging.getLogger(__name__)

#: The key under which Docker stores Docker Hub credentials, for historical reasons.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"

# Every spelling that means Docker Hub, whether as a config key or as the registry we were given.
_DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

# A credential helper may wait on a keyring or a GPG agent; a hung helper must not hang a build.
_HELPER_TIMEOUT_SECONDS = 60

# Helpers report a missing entry with a non-zero exit and this text (docker-credential-helpers).
_HELPER_NOT_FOUND = "credentials not found in native keychain"

# The username a helper returns when the secret is an OAuth identity token, not a password.
_IDENTITY_TOKEN_USERNAME = "<token>"  # noqa: S105 (a marker, not a secret)


@attrs.frozen
class Credentials:
    """A username and password for one registry; the password never shows in repr or logs."""

    username: str
    password: str = attrs.field(repr=False)


def find_credentials(
    registry: str | None,
    username: str | None,
    password: str | None,
    docker_config: str | None = None,
) -> Credentials | None:
    """Return the credentials to use with ``registry`` (``None`` or ``""`` means Docker Hub).

    ``username`` and ``password`` from the tool's config win when both are set. Otherwise the
    Docker client config is read: ``docker_config`` when given (it must exist), else
    ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``. When only ``username`` is
    set, Docker's credentials are used only if they are for that same user, so a config naming
    one account never silently acts as another. Returns ``None`` when nothing is found.

    Raises DockerPkgError, located at the Docker config file, when that file is unreadable or
    names a credential helper that is missing or fails.
    """
    if username and password:
        return Credentials(username, password)
    found = _from_docker_config(registry, docker_config)
    if found is not None and username and found.username != username:
        log.debug(
            "docker config has credentials for %r, not for the configured user %r; ignoring them",
            found.username,
            username,
        )
        return None
    return found


def _from_docker_config(registry: str | None, docker_config: str | None) -> Credentials | None:
    path = _config_path(docker_config)
    if path is None:
        return None
    config = _read_config(path)
    server = _server_address(registry)
    helper = _helper_for(config, server, path)
    if helper is not None:
        found = _ask_helper(helper, server, path)
        if found is not None:
            return found
        log.debug("credential helper %s has nothing for %s", helper, server)
    return _from_auths(config, server, path)


def _config_path(docker_config: str | None) -> Path | None:
    """The config file to read, or None when the user has none (that is not an error)."""
    if docker_config:
        path = Path(docker_config)
        if not path.is_file():
            raise DockerPkgError.single(docker_config, "Docker config file not found")
        return path
    config_dir = os.environ.get("DOCKER_CONFIG")
    path = (
        Path(config_dir) / "config.json" if config_dir else Path.home() / ".docker" / "config.json"
    )
    return path if path.is_file() else None


def _read_config(path: Path) -> Mapping[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerPkgError.single(str(path), f"cannot read Docker config: {exc}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DockerPkgError.single(
            str(path), f"Docker config is not valid JSON: {exc.msg}", exc.lineno
        ) from None
    if not isinstance(config, dict):
        raise DockerPkgError.single(str(path), "Docker config is not a JSON object")
    return config


def _hostname(address: str) -> str:
    """Config keys may be URLs (``https://host/v1/``); Docker matches them by host[:port]."""
    for scheme in ("https://", "http://"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
            break
    return address.split("/", 1)[0]


def _server_address(registry: str | None) -> str:
    """The key Docker would use for ``registry``: the Hub URL for Docker Hub, else host[:port]."""
    if not registry:
        return DOCKER_HUB_KEY
    host = _hostname(registry)
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_HOSTS else host


def _same_registry(key: str, server: str) -> bool:
    host = _hostname(key)
    if server == DOCKER_HUB_KEY:
        return host in _DOCKER_HUB_HOSTS
    return host == server


def _helper_for(config: Mapping[str, object], server: str, path: Path) -> str | None:
    """``credHelpers`` names a helper per registry; ``credsStore`` one for all the others."""
    helpers = config.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise DockerPkgError.single(str(path), "'credHelpers' in Docker config is not an object")
    for key, name in helpers.items():
        if _same_registry(key, server) and isinstance(name, str) and name:
            return name
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _ask_helper(name: str, server: str, path: Path) -> Credentials | None:
    """Run ``docker-credential-NAME get`` as the Docker CLI does.

    docker-py's ``credentials.Store`` would do, but it has no timeout and puts whatever the
    helper printed into its error text; we word the errors ourselves.
    """
    program = f"docker-credential-{name}"
    executable = shutil.which(program)
    if executable is None:
        raise DockerPkgError.single(
            str(path), f"credential helper {program} is configured but not found on PATH"
        )
    try:
        result = subprocess.run(
            [executable, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DockerPkgError.single(
            str(path), f"credential helper {program} did not answer in {_HELPER_TIMEOUT_SECONDS}s"
        ) from None
    except OSError as exc:
        raise DockerPkgError.single(
            str(path), f"cannot run credential helper {program}: {exc.strerror}"
        ) from None
    if result.returncode != 0:
        said = (result.stdout or result.stderr).decode(errors="replace").strip()
        if _HELPER_NOT_FOUND in said:
            return None
        # Only the first line, shortened: enough to diagnose, too little to leak a stored secret.
        first_line = said.splitlines()[0][:200] if said else "no message"
        raise DockerPkgError.single(
            str(path),
            f"credential helper {program} failed for {server} "
            f"(exit status {result.returncode}): {first_line}",
        )
    return _parse_helper_answer(result.stdout, program, server, path)


def _parse_helper_answer(
    output: bytes, program: str, server: str, path: Path
) -> Credentials | None:
    try:
        answer = json.loads(output)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise DockerPkgError.single(
            str(path), f"credential helper {program} gave an unreadable answer for {server}"
        ) from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise DockerPkgError.single(
            str(path), f"credential helper {program} gave an unreadable answer for {server}"
        )
    # docker-credential-pass answers an unknown server with empty fields instead of an error.
    if not username and not secret:
        return None
    if username == _IDENTITY_TOKEN_USERNAME:
        log.debug("%s holds an identity token for %s; those are not supported", program, server)
        return None
    return Credentials(username, secret)


def _from_auths(config: Mapping[str, object], server: str, path: Path) -> Credentials | None:
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise DockerPkgError.single(str(path), "'auths' in Docker config is not an object")
    # An exact key first: a config may hold both "host" and "https://host" entries.
    keys = sorted(auths, key=lambda key: key != server)
    for key in keys:
        if _same_registry(key, server):
            entry = auths[key]
            if not isinstance(entry, dict):
                raise DockerPkgError.single(
                    str(path), f"'auths' entry {key!r} in Docker config is not an object"
                )
            found = _parse_auth_entry(entry, key, path)
            if found is not None:
                return found
    return None


def _parse_auth_entry(entry: Mapping[str, object], key: str, path: Path) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise DockerPkgError.single(
                str(path), f"'auth' of {key!r} in Docker config is not base64 of user:password"
            )
        return Credentials(username, password)
    plain_username, plain_password = entry.get("username"), entry.get("password")
    if isinstance(plain_username, str) and plain_username and isinstance(plain_password, str):
        return Credentials(plain_username, plain_password)
    if "identitytoken" in entry:
        log.debug("docker config holds an identity token for %s; those are not supported", key)
    # An empty entry is what `docker login` leaves when a credential store holds the secret.
    return None


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
