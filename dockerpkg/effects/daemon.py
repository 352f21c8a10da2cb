"""The Docker daemon: list, pull, tag, push and remove images through docker-py (builds are
in dockerpkg.effects.imagebuild).

Every call that can fail raises DaemonError with a message for the user; streams are read to
the end because docker-py reports pull/push failures inside them rather than raising. A
stream can be cut from another thread (cancellation, a build's deadline): closing our end of
the connection is how the daemon learns to stop, and for a build it kills and removes the
container of the step that was running.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, cast

import docker
import docker.auth
import docker.constants
import docker.errors
import docker.tls
import docker.utils.build
import requests
import urllib3.exceptions

from dockerpkg.core.bases import pulled_digest
from dockerpkg.core.builders import Builder
from dockerpkg.core.images import LocalImage, local_images
from dockerpkg.core.labels import split_label
from dockerpkg.core.platforms import Platform
from dockerpkg.core.runenv import run_environment
from dockerpkg.effects import waits
from dockerpkg.effects.causes import causes as causes_of
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.homes import expand_user
from dockerpkg.effects.sshtunnel import Client, tunnel_for
from dockerpkg.effects.waits import send_aside

log = logging.getLogger(__name__)

# The errors and waits of daemon calls, as callers have always named them.
DaemonError = waits.DaemonError
CancelledError = waits.CancelledError
TimedOutError = waits.TimedOutError
Guard = waits.Guard
remember_responses = waits.remember_responses

# Builds and pushes of big images take long; docker-pkg used the same.
TIMEOUT = 600
#: Seconds a pull or a push may wait for a word from the daemon (config `transfer_timeout`):
#: a daemon pulling from a registry that stalls says nothing at all.
TRANSFER_TIMEOUT = 300.0


# What a daemon call raises when it fails: docker-py's and requests' errors, and urllib3's and
# the socket's, which docker-py lets through when the daemon goes away in the middle of a stream.
FAILURES = (
    docker.errors.DockerException,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)

DEFAULT_HOST = "unix:///var/run/docker.sock"


def requests_of(client: docker.APIClient) -> Any:
    """docker-py's request layer (`_url`, `_post`, `_raise_for_status`, `_stream_helper`),
    private and so left out of its type stubs: used, in this one way, for the calls docker-py
    has no bounded or BuildKit form of (pulls, pushes, BuildKit builds)."""
    return client


def inspect(client: docker.APIClient, reference: str) -> dict[str, Any]:
    """`docker image inspect REFERENCE` (its stubs leave the answer untyped)."""
    return cast("dict[str, Any]", cast("Any", client).inspect_image(reference))


def connect(env: Mapping[str, str]) -> docker.APIClient:
    """A low-level client for the daemon named by the environment; DaemonError if none answers."""
    host = run_environment(env).docker_host
    tunnel = tunnel_for(host, env)
    try:
        given = env if tunnel is None else {**env, "DOCKER_HOST": tunnel.host}
        client = Client(
            version="auto",
            timeout=TIMEOUT,
            credstore_env=dict(env),  # the credential helpers docker-py runs: the run's
            **docker.utils.kwargs_from_env(environment=given),
        )
        client.keep(tunnel)
        client.ping()
    except FAILURES as exc:
        if tunnel is not None:
            tunnel.close()
        where = f"DOCKER_HOST={host}" if host else f"{DEFAULT_HOST}, DOCKER_HOST is not set"
        raise DaemonError(
            f"cannot reach the Docker daemon ({where}): {_reason(exc)}; is dockerd running?"
        ) from None
    remember_responses(client)
    return client


# A builder that does not answer a ping in this time is taken for lost.
PING_TIMEOUT = 10


def connect_to(builder: Builder, env: Mapping[str, str]) -> docker.APIClient:
    """A low-level client for BUILDER (TLS with its files; ssh:// through the `ssh` command,
    which brings the user's keys, agent and ~/.ssh/config); DaemonError if it does not answer.
    ENV: the run's environment (`ssh` runs with it; its HOME stands for `~` in file names)."""
    tls: docker.tls.TLSConfig | bool = False
    tunnel = tunnel_for(builder.url, env)
    if builder.tls is not None:
        files = builder.tls
        tls = docker.tls.TLSConfig(
            client_cert=(expand_user(files.cert, env), expand_user(files.key, env)),
            ca_cert=expand_user(files.ca, env),
            verify=True,
        )
    try:
        client = Client(
            base_url=builder.url if tunnel is None else tunnel.host,
            # (None would ask at once, as "auto" does: before trust_env can be set.)
            version=docker.constants.DEFAULT_DOCKER_API_VERSION if builder.tls else "auto",
            timeout=TIMEOUT,
            tls=tls,
            credstore_env=dict(env),
        )
        client.keep(tunnel)
        if builder.tls is not None:
            # requests lets REQUESTS_CA_BUNDLE (often set machine-wide) win over the
            # session's CA: the builder's own CA must be the one its certificate is checked
            # by. Then the version is asked for, as version="auto" would have.
            client.trust_env = False
            answer = client.version(api_version=False)
            client._version = answer["ApiVersion"]  # type: ignore[attr-defined]  # no setter
        client.ping()
    except FAILURES as exc:
        if tunnel is not None:
            tunnel.close()
        raise DaemonError(
            f"cannot reach the builder {builder.name}: {_reason(exc)}; is dockerd running there?"
        ) from None
    remember_responses(client)
    return client


def reachable(client: docker.APIClient) -> bool:
    """Whether the daemon answers a ping within PING_TIMEOUT seconds."""
    try:
        response = client.get(client.base_url + "/_ping", timeout=PING_TIMEOUT)
    except FAILURES:
        return False
    return bool(response.ok)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."


def _lost_daemon(exc: BaseException) -> str | None:
    """Why the daemon could not be talked to, if that is what EXC says; else None."""
    reasons = (
        (FileNotFoundError, "no such socket"),
        (ConnectionRefusedError, "connection refused"),
        (PermissionError, "permission denied (is this user allowed to use Docker?)"),
        (ConnectionResetError, "the daemon closed the connection"),
        (urllib3.exceptions.ProtocolError, "the daemon closed the connection"),
        (requests.exceptions.ChunkedEncodingError, "the daemon closed the connection"),
        (requests.Timeout, "timed out"),
        (TimeoutError, "timed out"),
    )
    causes = list(causes_of(exc))
    for kind, reason in reasons:  # the most telling first: a missing socket hides under others
        if any(isinstance(cause, kind) for cause in causes):
            return reason
    return None


def _reason(exc: BaseException) -> str:
    return _lost_daemon(exc) or _short(exc)


def failure(action: str, exc: BaseException, container: str | None = None) -> DaemonError:
    """DaemonError for a failed ACTION, with a hint when the daemon itself went away (and,
    then, the CONTAINER of the build step it was running, which nobody could remove)."""
    lost = _lost_daemon(exc)
    if lost is None:
        return DaemonError(f"{action}: {_short(exc)}")
    message = f"{action}: lost the Docker daemon ({lost}); is dockerd still running?"
    if container is not None:
        message += f" Its build container {container} may be left: `docker rm {container}`"
    return DaemonError(message)


# The classic engine's lines around a RUN step's container.


def list_images(client: docker.APIClient) -> tuple[LocalImage, ...]:
    """Every image of the daemon, in one call."""
    try:
        raw = client.images(all=False)
    except FAILURES as exc:
        raise failure("cannot list images", exc) from None
    return local_images(raw)


def local_labels(images: Iterable[LocalImage]) -> frozenset[str]:
    return frozenset(tag for image in images for tag in image.tags)


def _auth(credentials: Credentials | None) -> dict[str, str] | None:
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password}


def stream_errors(
    stream: Iterator[Any],
    log_file: IO[str] | None,
    cancel: threading.Event | None = None,
    on_text: Callable[[str], None] | None = None,
    on_aux: Callable[[Mapping[str, Any]], None] | None = None,
) -> str | None:
    """Copy a JSON progress stream to the log; return the first error it carries.

    A set CANCEL ends the read at the next chunk (the caller's Guard cuts a silent stream).
    ON_TEXT sees every text line too, ON_AUX every `aux` item (a push's digest).
    """
    error = None
    for chunk in stream:
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        raw_items = chunk if isinstance(chunk, list) else [chunk]
        for raw in raw_items:
            item = json.loads(raw) if isinstance(raw, bytes | str) else raw
            if "error" in item and error is None:
                error = item_error(item)
            if on_aux is not None and isinstance(item.get("aux"), dict):
                on_aux(item["aux"])
            text = item.get("stream") or item.get("status") or item.get("error") or ""
            if text and on_text is not None:
                on_text(text)
            if log_file is not None and text:
                progress = f" {item['progress']}" if item.get("progress") else ""
                log_file.write(text if text.endswith("\n") else f"{text}{progress}\n")
    return error


def item_error(item: Mapping[str, Any]) -> str:
    """The text of an error message in a daemon's JSON stream."""
    return str(item.get("error") or item.get("errorDetail", {}).get("message"))


def pull(
    client: docker.APIClient,
    label: str,
    credentials: Credentials | None,
    log_file: IO[str] | None = None,
    cancel: threading.Event | None = None,
    *,
    timeout: float = TRANSFER_TIMEOUT,
    platform: str | None = None,
) -> str | None:
    """Pull LABEL (`NAME:TAG`, or `NAME[:TAG]@DIGEST`: that manifest, no tag moved), for
    PLATFORM when given (that platform's image of a multi-platform one); TIMEOUT bounds each
    wait for the daemon (its answer, each progress line). Returns the manifest digest the
    daemon says LABEL resolved to (an index's, for a multi-platform image), if it says one."""
    named, _, digest = label.partition("@")
    repository, tag = split_label(named)
    params = {"fromImage": repository, "tag": digest or tag or "latest"}
    if platform:
        params["platform"] = platform
    url = requests_of(client)._url("/images/create")
    said: list[str] = []
    _transfer(
        client,
        url,
        params,
        (repository, credentials),
        log_file,
        cancel,
        timeout,
        f"cannot pull {label}",
        on_text=said.append,
    )
    return pulled_digest(said)


def _transfer(  # noqa: PLR0917 (one request's parts, from two callers)
    client: docker.APIClient,
    url: str,
    params: Mapping[str, str],
    login: tuple[str, Credentials | None],
    log_file: IO[str] | None,
    cancel: threading.Event | None,
    timeout: float,
    what: str,
    *,
    on_aux: Callable[[Mapping[str, Any]], None] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> None:
    """A pull or a push: POST URL and read its progress stream, each read bounded by TIMEOUT.

    docker-py's own `pull` waits for ever (it sends no timeout), so the request is made here
    with the client's lower-level calls; and it is sent from a thread of its own, so that a
    set CANCEL ends the wait for the daemon's first word at once (the thread ends at its
    timeout, its answer unread).
    """
    guard = Guard(cancel, None)
    repository, credentials = login
    try:
        # Inside the try: a credential helper's failure or a bad name is a failure, not a bug.
        headers = _auth_headers(client, repository, credentials)
        with guard:
            response = send_aside(
                lambda: requests_of(client)._post(
                    url, params=params, headers=headers, stream=True, timeout=timeout
                ),
                cancel,
            )
            guard.watch(response)
            requests_of(client)._raise_for_status(response)
            stream = requests_of(client)._stream_helper(response, decode=True)
            error = stream_errors(stream, log_file, cancel, on_text=on_text, on_aux=on_aux)
    except FAILURES as exc:
        guard.raise_if_cut()
        if _timed_out(exc):
            raise TimedOutError(
                f"{what}: the daemon said nothing for {timeout:g} s (transfer_timeout)"
            ) from None
        raise failure(what, exc) from None
    guard.raise_if_cut()
    if error:
        raise DaemonError(f"{what}: {error}")


def _auth_headers(
    client: docker.APIClient, repository: str, credentials: Credentials | None
) -> dict[str, str]:
    """X-Registry-Auth for REPOSITORY: CREDENTIALS (the caller gives them only for their own
    registry), else what the Docker client's config holds for its registry, if anything."""
    auth_config = _auth(credentials)
    header = (
        docker.auth.encode_header(auth_config)
        if auth_config is not None
        else docker.auth.get_config_header(
            client, docker.auth.resolve_repository_name(repository)[0]
        )
    )
    # encode_header gives bytes, get_config_header a str (or None).
    text = header.decode("ascii") if isinstance(header, bytes) else header
    return {"X-Registry-Auth": str(text)} if text else {}


def _timed_out(exc: BaseException) -> bool:
    """Whether EXC is, or was caused by, a read that waited past its timeout."""
    return any(
        isinstance(cause, TimeoutError | urllib3.exceptions.TimeoutError | requests.Timeout)
        for cause in causes_of(exc)
    )


def tag(client: docker.APIClient, label: str, repository: str, new_tag: str) -> None:
    try:
        client.tag(label, repository, new_tag, force=True)
    except FAILURES as exc:
        raise failure(f"cannot tag {label} as {repository}:{new_tag}", exc) from None


def image_id(client: docker.APIClient, label: str) -> str:
    """The ID of the local image LABEL (the digest of its image config)."""
    try:
        return str(inspect(client, label)["Id"])
    except FAILURES as exc:
        raise failure(f"cannot inspect {label}", exc) from None


def image_platform(client: docker.APIClient, label: str) -> str:
    """The platform (`linux/arm64`) the local image LABEL's config records, normalised."""
    try:
        found = inspect(client, label)
    except FAILURES as exc:
        raise failure(f"cannot inspect {label}", exc) from None
    try:
        platform = Platform.of_image(
            str(found.get("Os") or ""),
            str(found.get("Architecture") or ""),
            str(found.get("Variant") or "") or None,
        )
    except ValueError as exc:
        raise DaemonError(f"{label} records no platform dockerpkg can read: {exc}") from None
    return str(platform)


def repo_digests(client: docker.APIClient, label: str) -> tuple[str, ...]:
    """The manifest digests the daemon knows the local image LABEL by, in LABEL's repository
    (none for an image never pulled or pushed); LABEL missing is a failure."""
    repository, _ = split_label(label.partition("@")[0])
    try:
        found = inspect(client, label).get("RepoDigests") or []
    except FAILURES as exc:
        raise failure(f"cannot inspect {label}", exc) from None
    return tuple(
        digest
        for item in found
        for name, _, digest in (str(item).partition("@"),)
        if name == repository
    )


def push(
    client: docker.APIClient,
    repository: str,
    push_tag: str,
    credentials: Credentials | None,
    *,
    log_file: IO[str] | None = None,
    cancel: threading.Event | None = None,
    timeout: float = TRANSFER_TIMEOUT,
) -> str | None:
    """Push and read the whole stream: an error in it is a failure, whatever docker-py says.
    TIMEOUT bounds each wait for the daemon. Returns the digest of the manifest pushed, as
    the daemon reports it (None when it does not)."""
    pushed: list[str] = []

    def note(aux: Mapping[str, Any]) -> None:
        if isinstance(aux.get("Digest"), str) and aux.get("Tag") in (None, push_tag):
            pushed.append(aux["Digest"])

    _transfer(
        client,
        requests_of(client)._url("/images/{0}/push", repository),
        {"tag": push_tag},
        (repository, credentials),
        log_file,
        cancel,
        timeout,
        f"push of {repository}:{push_tag} failed",
        on_aux=note,
    )
    return pushed[-1] if pushed else None


def remove_image(client: docker.APIClient, image_id: str) -> None:
    """Remove without force: an image a container uses is refused by the daemon, not forced."""
    try:
        client.remove_image(image_id, force=False, noprune=False)
    except FAILURES as exc:
        raise failure(f"cannot remove {image_id[:19]}", exc) from None


def containers_images(client: docker.APIClient) -> frozenset[str]:
    """IDs of images used by any container, running or not."""
    try:
        return frozenset(c["ImageID"] for c in client.containers(all=True))
    except FAILURES as exc:
        raise failure("cannot list containers", exc) from None


def copy_from_image(
    client: docker.APIClient,
    image: str,
    source: str,
    out: IO[bytes],
    cancel: threading.Event | None = None,
) -> None:
    """Write a tar stream of SOURCE inside IMAGE to OUT, through a container created for it,
    never started, and removed whatever happens."""
    try:
        container = client.create_container(image, command=["true"])["Id"]
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot create a container from {image}: {_short(exc)}") from None
    try:
        stream, _ = client.get_archive(container, source)
        for chunk in stream:
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")
            out.write(chunk)
    except docker.errors.NotFound:
        raise DaemonError(f"{image} has no {source}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise DaemonError(f"cannot copy {source} out of {image}: {_short(exc)}") from None
    finally:
        try:
            client.remove_container(container, force=True)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise DaemonError(f"cannot remove container {container[:12]}: {_short(exc)}") from None
