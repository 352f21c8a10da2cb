"""Which registry login a run uses: one choice over facts that effects gather.

The facts are what the run says (DOCKERPKG_USERNAME / DOCKERPKG_PASSWORD, the config's
`username` and `password`), the text of Docker's client config (``config.json``: inline
``auths``, or a credential helper named by ``credsStore`` for every registry and
``credHelpers`` per registry) and what that helper answered. Effects read the file and run the
helper (effects/credentials.py); everything decided from what they found is decided here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

import attrs

from dockerpkg.core import runenv
from dockerpkg.core.config import Config
from dockerpkg.core.labels import same_registry, split_label
from dockerpkg.core.runenv import run_environment
from dockerpkg.errors import DockerPkgError

#: The key under which Docker stores Docker Hub credentials, for historical reasons.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"

#: Environment variables that supply the registry login, ahead of the config file's.
ENV_USERNAME = runenv.USERNAME
ENV_PASSWORD = runenv.PASSWORD

# Every spelling that means Docker Hub, whether as a config key or as the registry we were given.
_DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

# Helpers report a missing entry with a non-zero exit and this text (docker-credential-helpers).
_HELPER_NOT_FOUND = "credentials not found in native keychain"

# The username a helper returns when the secret is an OAuth identity token, not a password.
_IDENTITY_TOKEN_USERNAME = "<token>"  # noqa: S105 (a marker, not a secret)


@attrs.frozen
class Credentials:
    """A username and password for one registry; the password never shows in repr or logs."""

    username: str
    password: str = attrs.field(repr=False)


@attrs.frozen
class LoginSettings:
    """What the run itself says of its login to REGISTRY (None or "": Docker Hub): a
    username and a password, each None when not given."""

    registry: str | None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        """Whether the run names a whole login: Docker's client config is then not read."""
        return bool(self.username and self.password)


@attrs.frozen
class DockerConfig:
    """Docker's client config read from PATH: its top-level JSON object."""

    path: str
    content: Mapping[str, object] = attrs.field(repr=False)


@attrs.frozen
class HelperAnswer:
    """What `docker-credential-NAME get` said: its exit STATUS and OUTPUT (standard output,
    else standard error, when it failed). The output may hold the secret: never shown."""

    program: str
    server: str
    status: int
    output: bytes = attrs.field(repr=False)


def login_settings(config: Config, env: Mapping[str, str]) -> LoginSettings:
    """The run's login for the config's registry, each of username and password from ENV
    (DOCKERPKG_USERNAME / DOCKERPKG_PASSWORD) else the config's; the config's password goes
    only with the config's username: an environment naming another user must bring that
    user's password (or find it in the Docker config). A password without any username is
    an error naming the variable."""
    env_username = run_environment(env).username
    env_password = run_environment(env).password
    username = env_username or config.username or None
    same_user = env_username is None or env_username == config.username
    password = env_password or (config.password if same_user else None) or None
    if env_password and not username:
        raise DockerPkgError.single(
            ENV_PASSWORD, f"set, but no username is: set {ENV_USERNAME} or the config's username"
        )
    return LoginSettings(config.registry, username, password)


def login_for(
    label: str, registry: str | None, run_login: Credentials | None
) -> Credentials | None:
    """The login a pull or push of LABEL is given: RUN_LOGIN, the run's, when LABEL lives in
    REGISTRY (the config's `registry`; empty: Docker Hub); None for any other registry, whose
    images get the Docker client's own login for them, never this password."""
    repository, _ = split_label(label)
    return run_login if same_registry(repository, registry) else None


def read_docker_config(path: str, text: str) -> DockerConfig:
    """The Docker client config at PATH from its TEXT; an error located in it when the text
    is not a JSON object."""
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DockerPkgError.single(
            path, f"Docker config is not valid JSON: {exc.msg}", exc.lineno
        ) from None
    if not isinstance(content, dict):
        raise DockerPkgError.single(path, "Docker config is not a JSON object")
    return DockerConfig(path, content)


def _hostname(address: str) -> str:
    """Config keys may be URLs (``https://host/v1/``); Docker matches them by host[:port]."""
    for scheme in ("https://", "http://"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
            break
    return address.split("/", 1)[0]


def server_address(registry: str | None) -> str:
    """The key Docker would use for REGISTRY: the Hub URL for Docker Hub, else host[:port]."""
    if not registry:
        return DOCKER_HUB_KEY
    host = _hostname(registry)
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_HOSTS else host


def _same_registry(key: str, server: str) -> bool:
    host = _hostname(key)
    if server == DOCKER_HUB_KEY:
        return host in _DOCKER_HUB_HOSTS
    return host == server


def helper_for(docker: DockerConfig, registry: str | None) -> str | None:
    """The credential helper DOCKER names for REGISTRY: ``credHelpers`` names one per
    registry, ``credsStore`` one for all the others; None: no helper."""
    helpers = docker.content.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise DockerPkgError.single(docker.path, "'credHelpers' in Docker config is not an object")
    server = server_address(registry)
    for key, name in helpers.items():
        if _same_registry(key, server) and isinstance(name, str) and name:
            return name
    store = docker.content.get("credsStore")
    return store if isinstance(store, str) and store else None


def choose_credentials(
    settings: LoginSettings,
    docker: DockerConfig | None = None,
    helper: HelperAnswer | None = None,
) -> Credentials | None:
    """The login to use with the settings' registry, first found wins: the run's own whole
    login; what HELPER (the one DOCKER names) answered; DOCKER's inline ``auths``. When the
    run names a username only, Docker's login counts only if it is that user's, so a config
    naming one account never silently acts as another. None: no login (DOCKER None: the
    user has no Docker config). Errors are located at DOCKER's file and quote no secret."""
    if settings.username and settings.password:
        return Credentials(settings.username, settings.password)
    if docker is None:
        return None
    found = _from_helper(helper, docker.path) if helper is not None else None
    if found is None:
        found = _from_auths(docker, server_address(settings.registry))
    if found is not None and settings.username and found.username != settings.username:
        return None
    return found


def _from_helper(answer: HelperAnswer, path: str) -> Credentials | None:
    if answer.status != 0:
        said = answer.output.decode(errors="replace").strip()
        if _HELPER_NOT_FOUND in said:
            return None
        # Only the first line, shortened: enough to diagnose, too little to leak a stored secret.
        first_line = said.splitlines()[0][:200] if said else "no message"
        raise DockerPkgError.single(
            path,
            f"credential helper {answer.program} failed for {answer.server} "
            f"(exit status {answer.status}): {first_line}",
        )
    unreadable = DockerPkgError.single(
        path, f"credential helper {answer.program} gave an unreadable answer for {answer.server}"
    )
    try:
        parsed = json.loads(answer.output)
        username, secret = parsed["Username"], parsed["Secret"]
    except (ValueError, KeyError, TypeError):
        raise unreadable from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise unreadable
    # docker-credential-pass answers an unknown server with empty fields instead of an
    # error; an identity token (OAuth) is no password: neither is a login.
    if (not username and not secret) or username == _IDENTITY_TOKEN_USERNAME:
        return None
    return Credentials(username, secret)


def _from_auths(docker: DockerConfig, server: str) -> Credentials | None:
    auths = docker.content.get("auths") or {}
    if not isinstance(auths, dict):
        raise DockerPkgError.single(docker.path, "'auths' in Docker config is not an object")
    # An exact key first: a config may hold both "host" and "https://host" entries.
    for key in sorted(auths, key=lambda key: key != server):
        if _same_registry(key, server):
            entry = auths[key]
            if not isinstance(entry, dict):
                raise DockerPkgError.single(
                    docker.path, f"'auths' entry {key!r} in Docker config is not an object"
                )
            found = _auth_entry(entry, key, docker.path)
            if found is not None:
                return found
    return None


def _auth_entry(entry: Mapping[str, object], key: str, path: str) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon or not username:
            raise DockerPkgError.single(
                path, f"'auth' of {key!r} in Docker config is not base64 of user:password"
            )
        return Credentials(username, password)
    plain_username, plain_password = entry.get("username"), entry.get("password")
    if isinstance(plain_username, str) and plain_username and isinstance(plain_password, str):
        return Credentials(plain_username, plain_password)
    # An empty entry is what `docker login` leaves when a credential store holds the secret;
    # an identity token is not supported.
    return None
