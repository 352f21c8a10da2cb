"""Ask a Docker registry (HTTP API v2) which ``repository:tag`` pairs are published.

One client talks to one registry over one ``requests`` session whose connections are kept alive
and shared by worker threads. The first request learns, once, the scheme (HTTPS, or plain HTTP
for a loopback registry that speaks nothing else) and how the registry wants to be
authenticated; after that every check is a single ``HEAD``, except that a Bearer registry needs
one token per repository (fetched in batches by ``published_many``). ``published_many`` sends
its checks in pipelined batches (``effects/pipeline.py``) on connections of its own, and asks
anything but a plain 200 or 404 again through the session.

Failures are never answered with "not published": a registry that cannot be reached, whose TLS
cannot be verified, or that refuses us raises RegistryError, worded for the user and free of
secrets. Every request is idempotent (GET, HEAD), so connection failures, timeouts and answers
500/502/503/504 are tried again as a RetryPolicy says, with growing pauses, before that error.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import attrs
import requests
import requests.adapters
import requests.auth

from dockerpkg.effects.causes import causes as causes_of
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.pipeline import Answer, Endpoint, Head, PipelinedConnection

__all__ = [
    "DOCKER_HUB_API_HOST",
    "MANIFEST_MEDIA_TYPES",
    "RegistryClient",
    "RegistryError",
    "RegistryFailure",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

#: Where Docker Hub's registry API lives; ``docker.io`` itself only redirects to the website.
DOCKER_HUB_API_HOST = "registry-1.docker.io"

#: Every manifest type an image we build or pull can be stored as. Without an ``Accept``
#: listing them, registries answer for (or convert to) the old schema 1, or say 404.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB_API_HOST})

# Names as the distribution spec defines them; checked so that a name cannot alter the URL.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Answers that mean "busy or broken for now": asking again later may succeed.
_RETRY_STATUSES = frozenset({500, 502, 503, 504})

# Checks written at once on one connection by published_many: a round trip for many, a share
# for every worker when the checks are few, and few enough that the batch's requests (with
# tokens, about 1 KiB each) and answers fit the socket buffers: the server never waits for
# us to read while we still write.
_BATCH = 32

# Scopes asked for in one token request by published_many: enough to save round trips, few
# enough that the token URL stays short.
_SCOPES_PER_TOKEN = 16

# Tokens whose stated lifetime is about to run out are fetched again rather than used.
_TOKEN_MARGIN_SECONDS = 10.0
# The token spec's lifetime when the server states none.
_DEFAULT_TOKEN_SECONDS = 60.0

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class RegistryFailure(enum.Enum):
    """Why a registry question had no answer; the value is the JSON spelling."""

    UNREACHABLE = "unreachable"
    TLS = "tls"
    AUTHENTICATION = "authentication"
    UNEXPECTED_STATUS = "unexpected_status"
    BAD_RESPONSE = "bad_response"


class RegistryCancelledError(Exception):
    """The caller stopped the checks (it no longer needs their answers)."""


class RegistryError(Exception):
    """A registry could not answer; ``str()`` is a message for the user without secrets."""

    def __init__(self, registry: str, failure: RegistryFailure, message: str) -> None:
        self.registry = registry
        self.failure = failure
        self.message = message
        super().__init__(message)


@attrs.frozen
class RetryPolicy:
    """How long to wait for the registry, and how often to ask again, before giving up.

    Every request the client sends is a GET or a HEAD, safe to repeat. A connection failure
    (refused, reset), a timeout or an answer 500/502/503/504 is retried; the pause after failed
    attempt N is ``base_delay * 2**(N-1)``, plus up to ``jitter`` of that at random so that many
    clients do not come back in step. A registry that accepts the connection but never answers
    fails after ``read_timeout`` seconds: the worst case is ``attempts`` times the timeouts plus
    the pauses (about 92 s with the defaults).
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    jitter: float = attrs.field(default=0.1, validator=attrs.validators.ge(0))
    connect_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    read_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, as requests takes them."""
        return (self.connect_timeout, self.read_timeout)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ATTEMPT (1-based) before the next one."""
        pause: float = self.base_delay * 2 ** (attempt - 1)
        if self.jitter:
            pause += random.uniform(0, pause * self.jitter)  # noqa: S311 (spreading, not secrecy)
        return pause


class _Scheme(enum.Enum):
    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


@attrs.frozen
class _Challenge:
    """What a ``WWW-Authenticate`` header asks for."""

    scheme: _Scheme
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


@attrs.frozen
class _Token:
    value: str = attrs.field(repr=False)
    expires_at: float


class _Authorization(requests.auth.AuthBase):
    """Sets (or leaves out) the Authorization header.

    Passing an auth object on every request also stops requests from reading ``~/.netrc``,
    which would otherwise replace our header with credentials we did not choose.
    """

    def __init__(self, header: str | None) -> None:
        self._header = header

    @property
    def header(self) -> str | None:
        return self._header

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._header is not None:
            request.headers["Authorization"] = self._header
        return request


_NO_AUTH = _Authorization(None)


class RegistryClient:
    """Answers questions about one registry; safe to share between threads.

    ``registry`` is ``host[:port]``; ``None`` or ``""`` means Docker Hub. ``ca_bundle`` is a
    PEM file of CAs to trust instead of the system ones. ``workers`` bounds both the threads of
    ``published_many`` and the connections kept open to the registry. ``retry`` bounds the
    time spent on a registry that refuses, fails or hangs.
    """

    def __init__(
        self,
        registry: str | None,
        credentials: Credentials | None = None,
        ca_bundle: str | None = None,
        workers: int = 8,
        retry: RetryPolicy | None = None,
    ) -> None:
        if workers < 1:
            msg = f"workers must be at least 1, not {workers}"
            raise ValueError(msg)
        if registry and ("/" in registry or not registry.strip()):
            msg = f"registry must be host[:port], not {registry!r}"
            raise ValueError(msg)
        self._is_hub = not registry or registry in _HUB_NAMES
        self._host = DOCKER_HUB_API_HOST if self._is_hub else str(registry)
        self.name = "Docker Hub" if self._is_hub else str(registry)
        self._credentials = credentials
        self._retry = retry or RetryPolicy()
        self._verify: str | bool = ca_bundle or _system_cas()
        self._proxies: dict[str, dict[str, str]] = {}
        # published_many's fast path: one pipelined connection per worker thread.
        self._local = threading.local()
        self._quick_connections: list[PipelinedConnection] = []
        self._workers = workers
        self._session = _new_session(workers)
        # Learned once, then only read; guarded by _lock while being decided.
        self._lock = threading.Lock()
        self._base_url: str | None = None
        self._challenge = _Challenge(_Scheme.NONE)
        self._tokens: dict[str, _Token] = {}
        self._scope_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.name!r}, user={self._username()!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._session.close()
        with self._lock:
            for connection in self._quick_connections:
                connection.close()
            self._quick_connections.clear()

    # --- questions -------------------------------------------------------------------------

    def published(self, repository: str, tag: str) -> bool:
        """Whether ``repository:tag`` has a manifest in the registry."""
        response = self._head_manifest(repository, tag)
        return response is not None

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag``'s manifest, or None when it is not published."""
        response = self._head_manifest(repository, tag)
        if response is None:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        # The header is optional in the spec; the digest is by definition that of the bytes.
        repo = self._api_repository(repository)
        what = f"the manifest of {repository}:{tag}"
        body = self._call("GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what)
        if body.status_code != 200:
            raise self._unexpected(body, what)
        return _content_digest(body.content)

    def copy_tag(self, repository: str, source: str, target: str) -> str | None:
        """Point tag TARGET of REPOSITORY at SOURCE's manifest, as it is (one GET, one PUT);
        returns the manifest's digest, or None when SOURCE is not published.

        What a second `docker push` of the same image would leave, without its check of
        every layer.
        """
        _check_names(repository, source)
        _check_names(repository, target)
        repo = self._api_repository(repository)
        what = f"the manifest of {repository}:{source}"
        manifest = self._call(
            "GET", repo, f"/v2/{repo}/manifests/{source}", {"Accept": _ACCEPT}, what
        )
        if manifest.status_code == 404 or _insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise self._unexpected(manifest, what)
        media_type = manifest.headers.get("Content-Type", "")
        body = manifest.content
        digest = _content_digest(body)
        put = self._call(
            "PUT",
            repo,
            f"/v2/{repo}/manifests/{target}",
            {"Content-Type": media_type},
            f"tagging {repository}:{source} as {target}",
            body=body,
            push=True,
        )
        if put.status_code not in (200, 201):
            raise self._unexpected(put, f"PUT manifest {repository}:{target}")
        return digest

    def published_many(
        self, refs: Iterable[tuple[str, str]], cancel: threading.Event | None = None
    ) -> dict[tuple[str, str], bool]:
        """``published`` for every ``(repository, tag)``, asked concurrently (see
        ``digests_many``)."""
        return {ref: digest is not None for ref, digest in self.digests_many(refs, cancel).items()}

    def digests_many(
        self, refs: Iterable[tuple[str, str]], cancel: threading.Event | None = None
    ) -> dict[tuple[str, str], str | None]:
        """``manifest_digest`` for every ``(repository, tag)``, asked concurrently.

        The answer has one entry per distinct ref, in the order given. If any check fails, the
        first failure is raised and the checks not yet started are cancelled; a set CANCEL
        does the same, raising RegistryCancelledError.
        """
        unique = list(dict.fromkeys(refs))
        for repository, tag in unique:
            _check_names(repository, tag)
        if not unique:
            return {}
        # Decide scheme and authentication here, once, rather than in every worker at once.
        self._ensure_ready()
        workers = min(self._workers, len(unique))
        # Every worker gets a share when the refs are few; batches stay short when many.
        size = min(_BATCH, -(-len(unique) // workers))
        batches = [unique[start : start + size] for start in range(0, len(unique), size)]
        answers: dict[tuple[str, str], str | None] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry") as pool:
            self._prefetch_tokens(pool, [repository for repository, _ in unique])
            futures = [pool.submit(self._quick_digests, cancel, batch) for batch in batches]
            try:
                for future in as_completed(futures):
                    answers.update(future.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return {ref: answers[ref] for ref in unique}

    def _quick_digests(
        self, cancel: threading.Event | None, batch: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        """``manifest_digest`` for BATCH, pipelined on a connection kept by this thread.

        Only the common answers (200 with a digest, 404) are taken from the pipeline; anything
        else (a token to renew, an error, a redirect, no answer at all) is asked again through
        ``manifest_digest``, which handles it fully.
        """
        if cancel is not None and cancel.is_set():
            raise RegistryCancelledError("cancelled")
        connection = self._thread_connection(self._ensure_ready())
        quick: Sequence[Answer | None] = [None] * len(batch)
        if connection is not None:
            quick = connection.heads([self._quick_head(*ref) for ref in batch])
        answers: dict[tuple[str, str], str | None] = {}
        for ref, answer in zip(batch, quick, strict=True):
            if answer is not None and answer.status == 404:
                answers[ref] = None
                continue
            if answer is not None and answer.status == 200 and answer.digest:
                answers[ref] = answer.digest
                continue
            if cancel is not None and cancel.is_set():
                raise RegistryCancelledError("cancelled")
            answers[ref] = self.manifest_digest(*ref)
        return answers

    def _quick_head(self, repository: str, tag: str) -> Head:
        repo = self._api_repository(repository)
        headers = {"Accept": _ACCEPT}
        header = self._authorization(f"repository:{repo}:pull", fresh=False).header
        if header is not None:
            headers["Authorization"] = header
        return Head(f"/v2/{repo}/manifests/{tag}", headers)

    def _thread_connection(self, base_url: str) -> PipelinedConnection | None:
        """This thread's connection, or None where a proxy is in the way (requests does it)."""
        connection: PipelinedConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._proxies_for(base_url):
            return None
        url = urlsplit(base_url)
        context = None
        if url.scheme == "https":
            verify = self._verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        endpoint = Endpoint(
            url.hostname or self._host,
            url.port or (443 if url.scheme == "https" else 80),
            context,
            self._retry.connect_timeout,
            self._retry.read_timeout,
        )
        connection = PipelinedConnection(endpoint, url.netloc)
        self._local.connection = connection
        with self._lock:
            self._quick_connections.append(connection)
        return connection

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, sorted; empty when the repository does not exist."""
        _check_names(repository, None)
        repo = self._api_repository(repository)
        found: set[str] = set()
        path: str | None = f"/v2/{repo}/tags/list"
        what = f"the tags of {repository}"
        while path is not None:
            response = self._call("GET", repo, path, {"Accept": "application/json"}, what)
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise self._unexpected(response, what)
            found.update(self._tags_in(response, repository))
            path = _next_page(response)
        return sorted(found)

    def config_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag``'s image config (what the daemon calls the image
        ID); None when it is not published. A multi-platform index has none of its own: its
        manifest's digest is given instead, which no image ID equals."""
        found = self._manifest(repository, tag)
        if found is None:
            return None
        manifest, body = found
        config = manifest.get("config") if isinstance(manifest, dict) else None
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else _content_digest(body)

    def image_labels(self, repository: str, tag: str) -> dict[str, str] | None:
        """The labels in ``repository:tag``'s image config (manifest, then config blob); None
        when it is not published or is a multi-platform index (no single config)."""
        found = self._manifest(repository, tag)
        if found is None:
            return None
        try:
            config_digest = found[0]["config"]["digest"]
        except (KeyError, TypeError):
            return None
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        blob = self._call("GET", repo, f"/v2/{repo}/blobs/{config_digest}", {}, what)
        if blob.status_code != 200:
            raise self._unexpected(blob, f"GET image config of {repository}:{tag}")
        try:
            labels = (blob.json().get("config") or {}).get("Labels") or {}
        except (ValueError, AttributeError):
            return None
        return {str(k): str(v) for k, v in labels.items()}

    def _manifest(self, repository: str, tag: str) -> tuple[Any, bytes] | None:
        """``repository:tag``'s manifest, parsed, and its bytes; None when not published."""
        _check_names(repository, tag)
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        manifest = self._call("GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what)
        if manifest.status_code == 404 or _insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise self._unexpected(manifest, f"GET manifest of {repository}:{tag}")
        try:
            return manifest.json(), manifest.content
        except ValueError:
            return None, manifest.content

    # --- one request, authenticated --------------------------------------------------------

    def _head_manifest(self, repository: str, tag: str) -> requests.Response | None:
        _check_names(repository, tag)
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        response = self._call(
            "HEAD", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what
        )
        if response.status_code == 200:
            return response
        if response.status_code == 404 or _insufficient_scope(response):
            return None
        raise self._unexpected(response, what)

    def _call(
        self,
        method: str,
        repository: str,
        path: str,
        headers: Mapping[str, str],
        what: str,
        *,
        body: bytes | None = None,
        push: bool = False,
    ) -> requests.Response:
        """Send a request for ``repository`` (WHAT it asks about, for messages), authenticating
        as the registry asks and retrying as the policy says.

        Returns any response but 401/403, which become RegistryError. A 401 is answered once
        with fresh authentication (a Bearer token may have expired, or the registry may demand
        authentication only for some repositories); a second refusal is final.
        """
        base_url = self._ensure_ready()
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        url = base_url + path
        authorization = self._authorization(scope, fresh=False)
        response = self._send(method, url, headers, authorization, what, body=body)
        if response.status_code == 401:
            challenge = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge.scheme is _Scheme.NONE:
                raise self._error(
                    RegistryFailure.AUTHENTICATION,
                    f"authentication required by registry {self.name} for {repository}, "
                    "but it sent no usable WWW-Authenticate challenge",
                )
            already_basic = self._challenge.scheme is _Scheme.BASIC
            self._learn(challenge)
            if challenge.scheme is _Scheme.BASIC and (already_basic or self._credentials is None):
                # We already sent the Basic credentials, or have none to send.
                raise self._refused(f"repository {repository}", response.status_code)
            retry_scope = challenge.scope or scope
            authorization = self._authorization(retry_scope, fresh=True, also_for=scope)
            response = self._send(method, url, headers, authorization, what, body=body)
        if response.status_code == 401 and _insufficient_scope(response):
            # The token server accepted us but granted nothing on this repository: Docker Hub
            # answers so for a repository that does not exist yet. Callers decide.
            return response
        if response.status_code in (401, 403):
            raise self._refused(f"repository {repository}", response.status_code)
        return response

    def _authorization(
        self, scope: str, *, fresh: bool, also_for: str | None = None
    ) -> _Authorization:
        challenge = self._challenge
        if challenge.scheme is _Scheme.BASIC:
            if self._credentials is None:
                return _NO_AUTH
            return _Authorization(_basic_header(self._credentials))
        if challenge.scheme is _Scheme.BEARER:
            token = self._token(challenge, scope, fresh=fresh)
            if also_for is not None and also_for != scope:
                with self._lock:
                    self._tokens[also_for] = token
            return _Authorization(f"Bearer {token.value}")
        return _NO_AUTH

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for URL's host, worked out once per host: requests would
        scan the environment on every call, a third of the cost of a kept-alive HEAD."""
        host = urllib.parse.urlsplit(url).netloc
        if host not in self._proxies:
            self._proxies[host] = requests.utils.get_environ_proxies(url)
        return self._proxies[host]

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorization: _Authorization,
        what: str,
        *,
        body: bytes | None = None,
    ) -> requests.Response:
        def send() -> requests.Response:
            return self._session.request(
                method,
                url,
                data=body,
                headers=dict(headers),
                auth=authorization,
                timeout=self._retry.timeout,
                verify=self._verify,
                allow_redirects=True,
                proxies=self._proxies_for(url),
            )

        try:
            response = self._retrying(send, url, what)
        except requests.RequestException as exc:
            raise self._connection_error(exc, url) from None
        log.debug("%s %s -> %d", method, url, response.status_code)
        return response

    def _retrying(
        self,
        send: Callable[[], requests.Response],
        url: str,
        what: str,
        *,
        retry_error: Callable[[requests.RequestException], bool] | None = None,
        server: str | None = None,
    ) -> requests.Response:
        """SEND until it gets an answer other than 500/502/503/504, as the policy allows.

        A connection failure or timeout for which RETRY_ERROR (default: anything but TLS) says
        yes is tried again too; any other is raised as it is, for the caller to word. When
        the attempts are used up, RegistryError says what was asked (WHAT, at URL, of the
        token SERVER if not the registry), what went wrong and how many times it was tried.
        """
        retry_error = retry_error or _transient
        policy = self._retry
        attempt = 1
        while True:
            try:
                response = send()
            except requests.RequestException as exc:
                if not retry_error(exc):
                    raise
                if attempt >= policy.attempts:
                    raise self._connection_error(exc, url, attempt, server) from None
                log.debug("attempt %d of %s failed: %s", attempt, url, _describe(exc))
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return response
                if attempt >= policy.attempts:
                    raise self._unexpected(response, what, attempt)
                log.debug("attempt %d of %s: HTTP %d", attempt, url, response.status_code)
                response.close()
            time.sleep(policy.delay(attempt))
            attempt += 1

    # --- scheme and authentication, learned once -------------------------------------------

    def _ensure_ready(self) -> str:
        """The base URL, deciding it (and the authentication scheme) on first use."""
        with self._lock:
            if self._base_url is None:
                self._base_url, self._challenge = self._ping()
            return self._base_url

    def _ping(self) -> tuple[str, _Challenge]:
        """``GET /v2/`` to learn the scheme and how the registry wants us to authenticate.

        A loopback registry may speak plain HTTP, as the Docker daemon allows for those: HTTPS
        is tried first, and HTTP only when the TLS handshake failed in a way that means "no TLS
        here" (never after a certificate was rejected).
        """
        https_url = f"https://{self._host}"
        try:
            # On loopback, a failure that means "no TLS here" is an answer, not a fault.
            response = self._ping_url(
                https_url,
                retry_error=(
                    (lambda exc: _transient(exc) and not _means_no_tls(exc))
                    if _is_loopback(self._host)
                    else None
                ),
            )
        except requests.RequestException as exc:
            if not (_is_loopback(self._host) and _means_no_tls(exc)):
                raise self._connection_error(exc, f"{https_url}/v2/") from None
            http_url = f"http://{self._host}"
            try:
                response = self._ping_url(http_url)
            except requests.RequestException as http_exc:
                raise self._error(
                    RegistryFailure.UNREACHABLE,
                    f"cannot reach registry {self.name} over HTTPS ({_describe(exc)}) "
                    f"nor over HTTP ({_describe(http_exc)})",
                ) from None
            if response.status_code == 400:
                # "Client sent an HTTP request to an HTTPS server": TLS is there but failed.
                raise self._connection_error(exc, f"{https_url}/v2/") from None
            log.debug("registry %s speaks plain HTTP", self.name)
            return http_url, self._challenge_of(response)
        return https_url, self._challenge_of(response)

    def _ping_url(
        self,
        base_url: str,
        *,
        retry_error: Callable[[requests.RequestException], bool] | None = None,
    ) -> requests.Response:
        url = f"{base_url}/v2/"
        response = self._retrying(
            lambda: self._session.get(
                url, auth=_NO_AUTH, timeout=self._retry.timeout, verify=self._verify
            ),
            url,
            "its API root /v2/",
            retry_error=retry_error,
        )
        log.debug("GET %s -> %d", url, response.status_code)
        return response

    @staticmethod
    def _challenge_of(response: requests.Response) -> _Challenge:
        if response.status_code != 401:
            return _Challenge(_Scheme.NONE)
        return _parse_challenge(response.headers.get("WWW-Authenticate", ""))

    def _learn(self, challenge: _Challenge) -> None:
        """Remember how the registry authenticates, so later requests authenticate at once."""
        with self._lock:
            self._challenge = attrs.evolve(challenge, scope=None)

    def _token(self, challenge: _Challenge, scope: str, *, fresh: bool) -> _Token:
        with self._lock:
            cached = self._tokens.get(scope)
            scope_lock = self._scope_locks.setdefault(scope, threading.Lock())
        if cached is not None and not fresh and _usable(cached):
            return cached
        # One fetch per scope even when many workers want it at the same moment.
        with scope_lock:
            with self._lock:
                latest = self._tokens.get(scope)
            if latest is not None and latest is not cached and _usable(latest):
                return latest
            token = self._fetch_token(challenge, [scope])
            with self._lock:
                self._tokens[scope] = token
            return token

    def _prefetch_tokens(self, pool: ThreadPoolExecutor, repositories: Sequence[str]) -> None:
        """Ask a Bearer registry for tokens covering many repositories in few requests.

        The token server grants what it may of the scopes asked for; a repository left out
        is simply asked for again, alone, by its own check. So failures here are not errors.
        """
        challenge = self._challenge
        if challenge.scheme is not _Scheme.BEARER:
            return
        with self._lock:
            missing = sorted(
                {
                    scope
                    for scope in (
                        f"repository:{self._api_repository(repo)}:pull" for repo in repositories
                    )
                    if scope not in self._tokens or not _usable(self._tokens[scope])
                }
            )
        batches = [
            missing[start : start + _SCOPES_PER_TOKEN]
            for start in range(0, len(missing), _SCOPES_PER_TOKEN)
        ]

        def fetch(scopes: list[str]) -> None:
            try:
                token = self._fetch_token(challenge, scopes)
            except RegistryError as exc:
                log.debug("batched token request failed, asking per repository: %s", exc)
                return
            with self._lock:
                for scope in scopes:
                    self._tokens[scope] = token

        list(pool.map(fetch, batches))

    def _fetch_token(self, challenge: _Challenge, scopes: Sequence[str]) -> _Token:
        if not challenge.realm:
            raise self._error(
                RegistryFailure.AUTHENTICATION,
                f"registry {self.name} asked for a Bearer token without naming a token server",
            )
        params = [("service", challenge.service)] if challenge.service else []
        params += [("scope", scope) for scope in scopes]
        credentials = self._credentials
        authorization = (
            _NO_AUTH if credentials is None else _Authorization(_basic_header(credentials))
        )
        realm = challenge.realm
        realm_host = urlsplit(realm).netloc or realm
        try:
            response = self._retrying(
                lambda: self._session.get(
                    realm,
                    params=params,
                    auth=authorization,
                    timeout=self._retry.timeout,
                    verify=self._verify,
                ),
                realm,
                f"a token from {realm_host}",
                server=realm_host,
            )
        except requests.RequestException as exc:
            raise self._connection_error(exc, realm, server=realm_host) from None
        log.debug("GET token from %s for %s -> %d", realm_host, scopes, response.status_code)
        if response.status_code in (401, 403):
            raise self._refused(f"scope {' '.join(scopes)}", response.status_code, realm_host)
        if response.status_code != 200:
            raise self._unexpected(response, f"a token from {realm_host}")
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise self._error(
                RegistryFailure.BAD_RESPONSE,
                f"token server {realm_host} of registry {self.name} answered without a token",
            )
        return _Token(value, time.monotonic() + lifetime)

    # --- names and errors ------------------------------------------------------------------

    def _api_repository(self, repository: str) -> str:
        """Docker Hub keeps official images under ``library/``, which users leave out."""
        if self._is_hub and "/" not in repository:
            return f"library/{repository}"
        return repository

    def _tags_in(self, response: requests.Response, repository: str) -> list[str]:
        try:
            tags = response.json().get("tags") or []
        except (ValueError, AttributeError):
            tags = None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise self._error(
                RegistryFailure.BAD_RESPONSE,
                f"registry {self.name} sent an unreadable tag list for {repository}",
            )
        return tags

    def _username(self) -> str | None:
        return None if self._credentials is None else self._credentials.username

    def _error(self, failure: RegistryFailure, message: str) -> RegistryError:
        return RegistryError(self.name, failure, message)

    def _refused(self, what: str, status: int, server: str | None = None) -> RegistryError:
        where = (
            f"registry {self.name}"
            if server is None
            else f"token server {server} of registry {self.name}"
        )
        if self._credentials is None:
            message = (
                f"authentication required: {where} refused anonymous access to {what} "
                f"(HTTP {status}), and no credentials were found for registry {self.name}"
            )
        else:
            message = (
                f"authentication refused: {where} did not accept user "
                f"{self._credentials.username!r} for {what} (HTTP {status})"
            )
        return self._error(RegistryFailure.AUTHENTICATION, message)

    def _unexpected(
        self, response: requests.Response, what: str, attempts: int = 1
    ) -> RegistryError:
        detail = _registry_error_text(response)
        return self._error(
            RegistryFailure.UNEXPECTED_STATUS,
            f"registry {self.name} answered HTTP {response.status_code} for {what}"
            + _after(attempts)
            + (f": {detail}" if detail else ""),
        )

    def _connection_error(
        self,
        exc: requests.RequestException,
        url: str,
        attempts: int = 1,
        server: str | None = None,
    ) -> RegistryError:
        who = (
            f"registry {self.name}"
            if server is None
            else f"the token server {server} of registry {self.name}"
        )
        if _is_tls_failure(exc):
            return self._error(
                RegistryFailure.TLS,
                f"TLS failure talking to {who} ({url}){_after(attempts)}: {_describe(exc)}",
            )
        return self._error(
            RegistryFailure.UNREACHABLE,
            f"cannot reach {who} ({url}){_after(attempts)}: {_describe(exc)}",
        )


def _after(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""


def _transient(exc: requests.RequestException) -> bool:
    """Whether asking again may succeed: a connection failure or timeout, but no TLS problem
    (a certificate does not get better by asking again)."""
    return isinstance(
        exc,
        requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError,
    ) and not _is_tls_failure(exc)


def _system_cas() -> str | bool:
    """The CA file to trust: the environment's choice, else the system's (requests alone
    would use its own certifi copy and ignore CAs the administrator installed)."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    cafile = ssl.get_default_verify_paths().cafile
    return cafile if cafile and os.path.isfile(cafile) else True


def _new_session(workers: int) -> requests.Session:
    session = requests.Session()
    # Proxies and CAs are given per request (see _proxies_for, _system_cas): no per-call
    # environment scan, and no .netrc credentials slipping into registry requests.
    session.trust_env = False
    # Connections to the registry and, for Bearer registries, to its token server. No retries
    # down here: RegistryClient._retrying does them all, so that the policy's count is the
    # real one.
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=workers, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _content_digest(content: bytes) -> str:
    """A manifest's digest: by definition, that of its bytes."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _check_names(repository: str, tag: str | None) -> None:
    if not _REPOSITORY.fullmatch(repository):
        msg = f"not a valid repository name: {repository!r}"
        raise ValueError(msg)
    if tag is not None and not _TAG.fullmatch(tag):
        msg = f"not a valid tag: {tag!r}"
        raise ValueError(msg)


def _is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` names this machine, where Docker allows plain HTTP."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        name = host.partition(":")[0]
    else:
        name = host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _usable(token: _Token) -> bool:
    return time.monotonic() < token.expires_at - _TOKEN_MARGIN_SECONDS


def _basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _insufficient_scope(response: requests.Response) -> bool:
    header = response.headers.get("WWW-Authenticate", "")
    return (
        response.status_code == 401
        and header.lower().startswith("bearer")
        and ('error="insufficient_scope"' in header)
    )


def _parse_challenge(header: str) -> _Challenge:
    """Read ``Basic realm=..`` or ``Bearer realm=..,service=..,scope=..``.

    Values are quoted and may contain commas (``scope="repository:a:pull,push"``).
    """
    scheme_name, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): (
            re.sub(r"\\(.)", r"\1", match.group(2))
            if match.group(2) is not None
            else match.group(3)
        )
        for match in _AUTH_PARAM.finditer(rest)
    }
    scheme_name = scheme_name.lower()
    if scheme_name == "basic":
        return _Challenge(_Scheme.BASIC, realm=params.get("realm"))
    if scheme_name == "bearer":
        return _Challenge(
            _Scheme.BEARER,
            realm=params.get("realm"),
            service=params.get("service"),
            scope=params.get("scope"),
        )
    return _Challenge(_Scheme.NONE)


def _next_page(response: requests.Response) -> str | None:
    """The path of the next page of a paginated list (``Link: <..>; rel="next"``)."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    absolute = urljoin(response.url, url)
    parts = urlsplit(absolute)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _registry_error_text(response: requests.Response) -> str:
    """The codes and messages of a registry's JSON error body, short; never other body text."""
    try:
        errors = response.json().get("errors") or []
        texts = [
            f"{error.get('code', '')} {error.get('message', '')}".strip()
            for error in errors
            if isinstance(error, dict)
        ]
    except (ValueError, AttributeError):
        return ""
    return "; ".join(text for text in texts if text)[:300]


def _is_tls_failure(exc: BaseException) -> bool:
    return any(isinstance(cause, ssl.SSLError) for cause in causes_of(exc)) or isinstance(
        exc, requests.exceptions.SSLError
    )


def _means_no_tls(exc: BaseException) -> bool:
    """Whether HTTPS failed because the server does not speak TLS (rather than distrust)."""
    causes = list(causes_of(exc))
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
        return False
    return (
        isinstance(exc, requests.exceptions.SSLError)
        or any(
            isinstance(cause, ssl.SSLError | ConnectionResetError | ConnectionAbortedError)
            for cause in causes
        )
        or any("RemoteDisconnected" in type(cause).__name__ for cause in causes)
    )


def _describe(exc: BaseException) -> str:
    """A short reason (``connection refused``) instead of urllib3's nested repr."""
    causes = list(causes_of(exc))
    # Most telling first: a certificate problem hides under several generic wrappers.
    for describe in _DESCRIPTIONS:
        for cause in causes:
            text = describe(cause)
            if text is not None:
                return text
    return type(exc).__name__


def _certificate_text(cause: BaseException) -> str | None:
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    return None


def _tls_text(cause: BaseException) -> str | None:
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause.strerror or cause}"
    return None


def _timeout_text(cause: BaseException) -> str | None:
    return "timed out" if isinstance(cause, requests.exceptions.Timeout | TimeoutError) else None


def _socket_text(cause: BaseException) -> str | None:
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(cause, socket.gaierror):
        return "host name not resolved"
    return None


def _os_text(cause: BaseException) -> str | None:
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return None


_DESCRIPTIONS: tuple[Callable[[BaseException], str | None], ...] = (
    _certificate_text,
    _tls_text,
    _timeout_text,
    _socket_text,
    _os_text,
)
