"""How a registry client's requests travel: one kept-alive session, the environment's
proxies and CAs, and a retry policy for a registry that refuses, fails or hangs."""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence

import attrs
import requests
import requests.adapters
import requests.auth

from dockerpkg.effects.registry.errors import Wording, describe, is_tls_failure

log = logging.getLogger(__name__)

# Answers that mean "busy or broken for now": asking again later may succeed.
RETRY_STATUSES = frozenset({500, 502, 503, 504})


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


class Transport:
    """Sends a client's requests, retrying as its policy says; safe to share between threads."""

    def __init__(
        self,
        words: Wording,
        retry: RetryPolicy,
        ca_bundle: str | None,
        workers: int,
        env: Mapping[str, str],
    ) -> None:
        self.words = words
        self.retry = retry
        self.verify: str | bool = ca_bundle or system_cas(env)
        self.session = new_session(workers)
        self._proxies: dict[str, dict[str, str]] = {}

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
        """The environment's proxies for URL's host, worked out once per host: requests would
        scan the environment on every call, a third of the cost of a kept-alive HEAD."""
        host = urllib.parse.urlsplit(url).netloc
        if host not in self._proxies:
            self._proxies[host] = requests.utils.get_environ_proxies(url)
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
            response = self.retrying(send, url, what)
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
    ) -> requests.Response:
        """SEND until it gets an answer other than 500/502/503/504, as the policy allows.

        A connection failure or timeout for which RETRY_ERROR (default: anything but TLS) says
        yes is tried again too; any other is raised as it is, for the caller to word. When
        the attempts are used up, RegistryError says what was asked (WHAT, at URL, of the
        token SERVER if not the registry), what went wrong and how many times it was tried.
        """
        retry_error = retry_error or transient
        policy = self.retry
        attempt = 1
        while True:
            try:
                response = send()
            except requests.RequestException as exc:
                if not retry_error(exc):
                    raise
                if attempt >= policy.attempts:
                    raise self.words.connection_error(exc, url, attempt, server) from None
                log.debug("attempt %d of %s failed: %s", attempt, url, describe(exc))
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                if attempt >= policy.attempts:
                    raise self.words.unexpected(response, what, attempt)
                log.debug("attempt %d of %s: HTTP %d", attempt, url, response.status_code)
                response.close()
            time.sleep(policy.delay(attempt))
            attempt += 1


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
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if env.get(name):
            return env[name]
    cafile = ssl.get_default_verify_paths().cafile
    return cafile if cafile and os.path.isfile(cafile) else True


def new_session(workers: int) -> requests.Session:
    session = requests.Session()
    # Proxies and CAs are given per request (see Transport.proxies_for, system_cas): no per-call
    # environment scan, and no .netrc credentials slipping into registry requests.
    session.trust_env = False
    # Connections to the registry and, for Bearer registries, to its token server. No retries
    # down here: Transport.retrying does them all, so that the policy's count is the
    # real one.
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=workers, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


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
