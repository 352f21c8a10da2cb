"""How a registry client's requests travel: one kept-alive session, the environment's
proxies and CAs, each try through its host's gate (registry/gate.py: the run's cap, rate and
backoff per host), and retries as core/registrylimits.py decides for a registry that
limits, refuses, fails or hangs."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import socket
import ssl
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import requests
import requests.adapters
import requests.auth
import urllib3

from dockerpkg.core.registrylimits import Attempt, Fault
from dockerpkg.core.runenv import run_environment
from dockerpkg.effects.registry.errors import (
    RegistryCancelledError,
    RegistryError,
    RegistryFailure,
    Wording,
    describe,
    is_tls_failure,
)
from dockerpkg.effects.registry.gate import (
    GateCancelledError,
    GaveUpError,
    RegistryGates,
    retried,
)
from dockerpkg.effects.registry.proxies import proxies_for

log = logging.getLogger(__name__)

# Answers that mean "busy or broken for now": asking again later may succeed.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# How much of an error answer's body is read for a hint (GHCR's `retry-after: 10.48ms`).
_HINT_BODY_CHARS = 2048


@attrs.frozen
class RetryPolicy:
    """How long to wait for the registry, and how often to ask again, before giving up.

    Requests are safe to repeat. A connection failure (refused, reset), a timeout or an
    answer 500/502/503/504 is retried, at most ``attempts`` tries in all (or the host's
    `registries` attempts, if fewer); a registry limiting the rate (429) is asked again up to
    its host's attempts. The pauses between tries are the gate's (core/registrylimits.py:
    doubling from 0.5 s with jitter, or what the registry asked); ``delay`` is kept for
    callers that pause on their own. A registry that accepts the connection but never
    answers fails after ``read_timeout`` seconds a try.
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


class Interrupter:
    """Ends every wait of the clients sharing it at once: `interrupt` shuts down each
    connection they opened (which wakes a thread blocked reading it or in its TLS handshake;
    closing it would not), connections opened later are shut as they open, and no request is
    tried again. A signal then ends a run within a second, not after the timeouts.

    What is watched is a duplicate of each socket, held by its connection: shutting it down
    ends the connection under both, and it cannot outlive the connection and hit an unrelated
    socket that reused the number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.event = threading.Event()

    def watch(self, sock: socket.socket) -> socket.socket:
        """A duplicate of SOCK for its owner to keep, and close, with it."""
        twin = sock.dup()
        with self._lock:
            if not self.event.is_set():
                self._watched.add(twin)
                return twin
        _shut(twin)
        return twin

    def interrupt(self) -> None:
        with self._lock:
            self.event.set()
            watched = list(self._watched)
        for twin in watched:
            _shut(twin)

    def check(self) -> None:
        if self.event.is_set():
            raise RegistryCancelledError("interrupted")


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed or never connected: nothing waits on it
        sock.shutdown(socket.SHUT_RDWR)


class Transport:
    """Sends a client's requests, retrying as its policy says; safe to share between threads."""

    def __init__(
        self,
        words: Wording,
        retry: RetryPolicy,
        ca_bundle: str | None,
        workers: int,
        env: Mapping[str, str],
        *,
        interrupter: Interrupter | None = None,
        gates: RegistryGates | None = None,
    ) -> None:
        self.words = words
        self.retry = retry
        self.gates = gates or RegistryGates()
        self.verify: str | bool = ca_bundle or system_cas(env)
        self.interrupter = interrupter or Interrupter()
        self.session = new_session(workers, self.interrupter)
        self._proxies: dict[str, dict[str, str]] = {}
        self._env = env

    def close(self) -> None:
        self.session.close()

    def get(
        self,
        url: str,
        auth: requests.auth.AuthBase,
        params: Sequence[tuple[str, str]] | None = None,
    ) -> requests.Response:
        """One GET as the policy times it (no retries: see `retrying`)."""
        return self.session.get(
            url, params=params, auth=auth, timeout=self.retry.timeout, verify=self.verify
        )

    def proxies_for(self, url: str) -> dict[str, str]:
        """The run's environment's proxies for URL's host, worked out once per host: requests
        would scan the process's environment on every call, a third of the cost of a
        kept-alive HEAD."""
        host = urllib.parse.urlsplit(url).netloc
        if host not in self._proxies:
            self._proxies[host] = proxies_for(url, self._env)
        return self._proxies[host]

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        authorization: requests.auth.AuthBase,
        what: str,
        *,
        body: bytes | None = None,
        tried: int = 0,
    ) -> requests.Response:
        def send() -> requests.Response:
            return self.session.request(
                method,
                url,
                data=body,
                headers=dict(headers),
                auth=authorization,
                timeout=self.retry.timeout,
                verify=self.verify,
                allow_redirects=True,
                proxies=self.proxies_for(url),
            )

        try:
            response = self.retrying(send, url, what, tried=tried)
        except requests.RequestException as exc:
            raise self.words.connection_error(exc, url) from None
        log.debug("%s %s -> %d", method, url, response.status_code)
        return response

    def retrying(
        self,
        send: Callable[[], requests.Response],
        url: str,
        what: str,
        *,
        retry_error: Callable[[requests.RequestException], bool] | None = None,
        server: str | None = None,
        tried: int = 0,
    ) -> requests.Response:
        """SEND, each try in one of the gate's slots of URL's host, until its answer is one
        to hand back (core.registrylimits.decide: a 429 or a 5xx is asked again, after the
        wait the registry asked for or a backoff, the whole host waiting when told).

        A connection failure or timeout for which RETRY_ERROR (default: anything but TLS) says
        yes is tried again too; any other is raised as it is, for the caller to word. When
        the tries are used up, RegistryError says what was asked (WHAT, at URL, of the
        token SERVER if not the registry), what went wrong and how many times it was tried
        (RATE_LIMITED, worded by limit_message, when the registry limited the rate). TRIED:
        tries made already elsewhere (a pipelined batch's), counted with these.
        """
        retry_error = retry_error or transient

        def judge(result: requests.Response | Exception) -> Attempt:
            if isinstance(result, requests.Response):
                if result.status_code == 429 or result.status_code in RETRY_STATUSES:
                    log.debug("try of %s: HTTP %d", url, result.status_code)
                return response_attempt(result)
            log.debug("try of %s failed: %s", url, describe(result))
            if isinstance(result, requests.RequestException) and retry_error(result):
                timed_out = isinstance(result, requests.Timeout)
                return Attempt(None, Fault.TIMEOUT if timed_out else Fault.CONNECTION)
            return Attempt(None, Fault.FINAL)

        gate = self.gates.host(urllib.parse.urlsplit(url).netloc)
        try:
            return retried(
                gate,
                self.interrupter.event,
                send,
                judge,
                attempts=self.retry.attempts,
                tried=tried,
            )
        except GateCancelledError:
            raise RegistryCancelledError("interrupted") from None
        except GaveUpError as exc:
            raise self.gave_up(exc, url, what, server) from None

    def gave_up(self, exc: GaveUpError, url: str, what: str, server: str | None) -> RegistryError:
        """The error of a request tried as often as allowed (EXC), as the user reads it."""
        last = exc.last
        if exc.decision.limited:
            return self.words.error(RegistryFailure.RATE_LIMITED, exc.message)
        if isinstance(last, requests.RequestException):
            return self.words.connection_error(last, url, exc.tries, server)
        if isinstance(last, requests.Response):
            return self.words.unexpected(last, what, exc.tries)
        return self.words.error(RegistryFailure.UNREACHABLE, exc.message)


def response_attempt(response: requests.Response) -> Attempt:
    """What a try got, for the rules: its status, Retry-After and (for an error) the start
    of its body, where GHCR puts its hint."""
    status = response.status_code
    body = response.text[:_HINT_BODY_CHARS] if status >= 400 and response.content else ""
    return Attempt(status, retry_after=response.headers.get("Retry-After"), body=body)


def transient(exc: requests.RequestException) -> bool:
    """Whether asking again may succeed: a connection failure or timeout, but no TLS problem
    (a certificate does not get better by asking again)."""
    return isinstance(
        exc,
        requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError,
    ) and not is_tls_failure(exc)


def system_cas(env: Mapping[str, str]) -> str | bool:
    """The CA file to trust: the environment's choice, else the system's (requests alone
    would use its own certifi copy and ignore CAs the administrator installed)."""
    if found := run_environment(env).ca_bundle:
        return found
    cafile = ssl.get_default_verify_paths().cafile
    return cafile if cafile and os.path.isfile(cafile) else True


def new_session(workers: int, interrupter: Interrupter | None = None) -> requests.Session:
    session = requests.Session()
    # Proxies and CAs are given per request (see Transport.proxies_for, system_cas): no per-call
    # environment scan, and no .netrc credentials slipping into registry requests.
    session.trust_env = False
    # Connections to the registry and, for Bearer registries, to its token server. No retries
    # down here: Transport.retrying does them all, so that the policy's count is the
    # real one.
    adapter = _WatchedAdapter(
        interrupter or Interrupter(), pool_connections=4, pool_maxsize=workers, max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections INTERRUPTER watches (direct ones and through a proxy)."""

    def __init__(self, interrupter: Interrupter, **options: Any) -> None:
        self._pools = _watched_pools(interrupter)
        super().__init__(**options)

    def init_poolmanager(self, *args: Any, **options: Any) -> None:
        super().init_poolmanager(*args, **options)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **options: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **options)
        if type(manager) is urllib3.ProxyManager:  # SOCKS proxies have pools of their own
            manager.pool_classes_by_scheme = self._pools
        return manager


def _watched_pools(interrupter: Interrupter) -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """urllib3's pool classes, with connections whose sockets INTERRUPTER watches from the
    moment they open (the TLS handshake included)."""

    class Plain(urllib3.connection.HTTPConnection):
        _twin: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            if self._twin is not None:  # a reconnection: the old twin goes with the old socket
                self._twin.close()
            self._twin = interrupter.watch(sock)
            return sock

        def close(self) -> None:
            try:
                super().close()
            finally:
                if self._twin is not None:
                    self._twin.close()
                    self._twin = None

    class Secure(urllib3.connection.HTTPSConnection, Plain):
        pass

    class PlainPool(urllib3.HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


def is_loopback(host: str) -> bool:
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
