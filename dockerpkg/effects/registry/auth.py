"""How a registry wants to be authenticated, learned once (`GET /v2/`, and the scheme: HTTPS,
or plain HTTP on loopback), and the credentials or Bearer tokens each request carries."""

from __future__ import annotations

import base64
import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import attrs
import requests
import requests.auth

from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry.errors import (
    RegistryError,
    RegistryFailure,
    Wording,
    describe,
    means_no_tls,
)
from dockerpkg.effects.registry.transport import Transport, is_loopback, transient

log = logging.getLogger(__name__)

# Scopes asked for in one token request by published_many: enough to save round trips, few
# enough that the token URL stays short.
_SCOPES_PER_TOKEN = 16

# Tokens whose stated lifetime is about to run out are fetched again rather than used.
_TOKEN_MARGIN_SECONDS = 10.0
# The token spec's lifetime when the server states none.
_DEFAULT_TOKEN_SECONDS = 60.0

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class Scheme(enum.Enum):
    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


@attrs.frozen
class _Challenge:
    """What a ``WWW-Authenticate`` header asks for."""

    scheme: Scheme
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


class Authenticator:
    """One registry's scheme, challenge and tokens; safe to share between threads."""

    def __init__(
        self, host: str, credentials: Credentials | None, transport: Transport, words: Wording
    ) -> None:
        self._host = host
        self._credentials = credentials
        self._transport = transport
        self._words = words
        # Learned once, then only read; guarded by _lock while being decided.
        self._lock = threading.Lock()
        self._base_url: str | None = None
        self._challenge = _Challenge(Scheme.NONE)
        self._tokens: dict[str, _Token] = {}
        self._scope_locks: dict[str, threading.Lock] = {}

    @property
    def scheme(self) -> Scheme:
        return self._challenge.scheme

    def authorization(
        self, scope: str, *, fresh: bool, also_for: str | None = None
    ) -> _Authorization:
        challenge = self._challenge
        if challenge.scheme is Scheme.BASIC:
            if self._credentials is None:
                return _NO_AUTH
            return _Authorization(_basic_header(self._credentials))
        if challenge.scheme is Scheme.BEARER:
            token = self._token(challenge, scope, fresh=fresh)
            if also_for is not None and also_for != scope:
                with self._lock:
                    self._tokens[also_for] = token
            return _Authorization(f"Bearer {token.value}")
        return _NO_AUTH

    def ensure_ready(self) -> str:
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
                    (lambda exc: transient(exc) and not means_no_tls(exc))
                    if is_loopback(self._host)
                    else None
                ),
            )
        except requests.RequestException as exc:
            if not (is_loopback(self._host) and means_no_tls(exc)):
                raise self._words.connection_error(exc, f"{https_url}/v2/") from None
            http_url = f"http://{self._host}"
            try:
                response = self._ping_url(http_url)
            except requests.RequestException as http_exc:
                raise self._words.error(
                    RegistryFailure.UNREACHABLE,
                    f"cannot reach registry {self._words.name} over HTTPS ({describe(exc)}) "
                    f"nor over HTTP ({describe(http_exc)})",
                ) from None
            if response.status_code == 400:
                # "Client sent an HTTP request to an HTTPS server": TLS is there but failed.
                raise self._words.connection_error(exc, f"{https_url}/v2/") from None
            log.debug("registry %s speaks plain HTTP", self._words.name)
            return http_url, self._challenge_of(response)
        return https_url, self._challenge_of(response)

    def _ping_url(
        self,
        base_url: str,
        *,
        retry_error: Callable[[requests.RequestException], bool] | None = None,
    ) -> requests.Response:
        url = f"{base_url}/v2/"
        response = self._transport.retrying(
            lambda: self._transport.get(url, _NO_AUTH),
            url,
            "its API root /v2/",
            retry_error=retry_error,
        )
        log.debug("GET %s -> %d", url, response.status_code)
        return response

    @staticmethod
    def _challenge_of(response: requests.Response) -> _Challenge:
        if response.status_code != 401:
            return _Challenge(Scheme.NONE)
        return parse_challenge(response.headers.get("WWW-Authenticate", ""))

    def learn(self, challenge: _Challenge) -> None:
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

    def prefetch_tokens(self, pool: ThreadPoolExecutor, scopes: Sequence[str]) -> None:
        """Ask a Bearer registry for tokens covering many repositories in few requests.

        The token server grants what it may of the scopes asked for; a repository left out
        is simply asked for again, alone, by its own check. So failures here are not errors.
        """
        challenge = self._challenge
        if challenge.scheme is not Scheme.BEARER:
            return
        with self._lock:
            missing = sorted(
                {
                    scope
                    for scope in scopes
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
            raise self._words.error(
                RegistryFailure.AUTHENTICATION,
                f"registry {self._words.name} asked for a Bearer token without naming a token "
                "server",
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
            response = self._transport.retrying(
                lambda: self._transport.get(realm, authorization, params),
                realm,
                f"a token from {realm_host}",
                server=realm_host,
            )
        except requests.RequestException as exc:
            raise self._words.connection_error(exc, realm, server=realm_host) from None
        log.debug("GET token from %s for %s -> %d", realm_host, scopes, response.status_code)
        if response.status_code in (401, 403):
            raise self._words.refused(f"scope {' '.join(scopes)}", response.status_code, realm_host)
        if response.status_code != 200:
            raise self._words.unexpected(response, f"a token from {realm_host}")
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise self._words.error(
                RegistryFailure.BAD_RESPONSE,
                f"token server {realm_host} of registry {self._words.name} answered without a "
                "token",
            )
        return _Token(value, time.monotonic() + lifetime)


def _usable(token: _Token) -> bool:
    return time.monotonic() < token.expires_at - _TOKEN_MARGIN_SECONDS


def _basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def insufficient_scope(response: requests.Response) -> bool:
    header = response.headers.get("WWW-Authenticate", "")
    return (
        response.status_code == 401
        and header.lower().startswith("bearer")
        and ('error="insufficient_scope"' in header)
    )


def parse_challenge(header: str) -> _Challenge:
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
        return _Challenge(Scheme.BASIC, realm=params.get("realm"))
    if scheme_name == "bearer":
        return _Challenge(
            Scheme.BEARER,
            realm=params.get("realm"),
            service=params.get("service"),
            scope=params.get("scope"),
        )
    return _Challenge(Scheme.NONE)
