"""Registry failures as the user reads them: why a question had no answer, worded without
secrets (never a password, a token or a response body beyond the registry's error codes)."""

from __future__ import annotations

import enum
import socket
import ssl
from collections.abc import Callable

import attrs
import requests

from dockerpkg.effects.causes import causes as causes_of
from dockerpkg.effects.credentials import Credentials


class RegistryFailure(enum.Enum):
    """Why a registry question had no answer; the value is the JSON spelling."""

    UNREACHABLE = "unreachable"
    TLS = "tls"
    AUTHENTICATION = "authentication"
    UNEXPECTED_STATUS = "unexpected_status"
    BAD_RESPONSE = "bad_response"
    RATE_LIMITED = "rate_limited"  # asked again as long as the host's limits allow


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
class Wording:
    """The messages of one registry's client: NAME as users call it, the user (if any)."""

    name: str
    credentials: Credentials | None = attrs.field(repr=False)

    def username(self) -> str | None:
        return None if self.credentials is None else self.credentials.username

    def error(self, failure: RegistryFailure, message: str) -> RegistryError:
        return RegistryError(self.name, failure, message)

    def refused(self, what: str, status: int, server: str | None = None) -> RegistryError:
        where = (
            f"registry {self.name}"
            if server is None
            else f"token server {server} of registry {self.name}"
        )
        if self.credentials is None:
            message = (
                f"authentication required: {where} refused anonymous access to {what} "
                f"(HTTP {status}), and no credentials were found for registry {self.name}"
            )
        else:
            message = (
                f"authentication refused: {where} did not accept user "
                f"{self.credentials.username!r} for {what} (HTTP {status})"
            )
        return self.error(RegistryFailure.AUTHENTICATION, message)

    def unexpected(
        self, response: requests.Response, what: str, attempts: int = 1
    ) -> RegistryError:
        detail = registry_error_text(response)
        return self.error(
            RegistryFailure.UNEXPECTED_STATUS,
            f"registry {self.name} answered HTTP {response.status_code} for {what}"
            + after(attempts)
            + (f": {detail}" if detail else ""),
        )

    def connection_error(
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
        if is_tls_failure(exc):
            return self.error(
                RegistryFailure.TLS,
                f"TLS failure talking to {who} ({url}){after(attempts)}: {describe(exc)}",
            )
        return self.error(
            RegistryFailure.UNREACHABLE,
            f"cannot reach {who} ({url}){after(attempts)}: {describe(exc)}",
        )


def after(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""


def registry_error_text(response: requests.Response) -> str:
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


def is_tls_failure(exc: BaseException) -> bool:
    return any(isinstance(cause, ssl.SSLError) for cause in causes_of(exc)) or isinstance(
        exc, requests.exceptions.SSLError
    )


def means_no_tls(exc: BaseException) -> bool:
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


def describe(exc: BaseException) -> str:
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
