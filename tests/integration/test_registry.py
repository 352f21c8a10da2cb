"""RegistryClient against real registries, and against a real in-process HTTP peer that counts.

The registries are Debian's docker-registry (see tests/support/services.py): anonymous,
htpasswd, Bearer tokens, TLS. Images are published by uploading a tiny manifest through the
registry API, which needs no daemon. The in-process peer is a small HTTP server speaking the
same Bearer protocol; it records every request and connection, so the tests can check that
the client keeps connections alive and makes no avoidable round trips.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from dockerpkg.api.logins import find_credentials
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import RegistryClient, RegistryError, RegistryFailure
from tests.support.services import Auth, Registry, RegistryFactory

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


# --- publishing without a daemon --------------------------------------------------------------


def _upload_auth(registry: Registry, repository: str) -> dict[str, Any]:
    if registry.auth == "htpasswd":
        return {"auth": (registry.username, registry.password)}
    if registry.auth == "token":
        token = registry.token(f"repository:{repository}:pull,push")
        return {"headers": {"Authorization": f"Bearer {token}"}}
    return {}


def _upload_blob(registry: Registry, repository: str, data: bytes, auth: dict[str, Any]) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(
        f"{registry.url}/v2/{repository}/blobs/uploads/",
        verify=registry.verify,
        timeout=10,
        **auth,
    )
    assert started.status_code == 202, started.text
    location = urllib.parse.urljoin(registry.url, started.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = requests.put(
        f"{location}{separator}digest={digest}",
        data=data,
        verify=registry.verify,
        timeout=10,
        **{
            **auth,
            "headers": {
                **auth.get("headers", {}),
                "Content-Type": "application/octet-stream",
            },
        },
    )
    assert done.status_code == 201, done.text
    return digest


def publish(registry: Registry, repository: str, tags: Iterable[str]) -> dict[str, str]:
    """Upload a one-layer image and tag it with each of `tags`; return each tag's digest."""
    auth = _upload_auth(registry, repository)
    layer = f"layer of {repository}".encode()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        }
    ).encode()
    config_digest = _upload_blob(registry, repository, config, auth)
    layer_digest = _upload_blob(registry, repository, layer, auth)
    manifest = {
        "schemaVersion": 2,
        "mediaType": SCHEMA2,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": layer_digest,
            }
        ],
    }
    body = json.dumps(manifest).encode()
    digests = {}
    for tag in tags:
        response = requests.put(
            f"{registry.url}/v2/{repository}/manifests/{tag}",
            data=body,
            verify=registry.verify,
            timeout=10,
            **{**auth, "headers": {**auth.get("headers", {}), "Content-Type": SCHEMA2}},
        )
        assert response.status_code == 201, response.text
        digests[tag] = response.headers["Docker-Content-Digest"]
    return digests


def client_for(registry: Registry, *, workers: int = 8, anonymous: bool = False) -> RegistryClient:
    credentials = None
    if not anonymous and registry.username is not None and registry.password is not None:
        credentials = Credentials(registry.username, registry.password)
    ca_bundle = str(registry.ca_path) if registry.ca_path is not None else None
    return RegistryClient(registry.host, credentials, ca_bundle, workers)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_no_secret(error: RegistryError, secret: str) -> None:
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert secret not in text


# --- real registries --------------------------------------------------------------------------


@pytest.mark.docker
class TestAnonymousRegistry:
    """A registry without authentication, on loopback plain HTTP."""

    def test_published_or_not(self, registry: Registry) -> None:
        publish(registry, "base/busybox", ["1.36"])
        with client_for(registry) as client:
            assert client.published("base/busybox", "1.36") is True
            assert client.published("base/busybox", "1.37") is False
            assert client.published("never/pushed", "1.0") is False

    def test_falls_back_to_plain_http(self, registry: Registry) -> None:
        assert registry.url.startswith("http://")
        publish(registry, "app", ["1"])
        with client_for(registry) as client:
            assert client.published("app", "1") is True
            # The decision is kept: later questions go straight to HTTP.
            assert client.published("app", "2") is False

    def test_manifest_digest(self, registry: Registry) -> None:
        digests = publish(registry, "base/busybox", ["1.36", "latest"])
        with client_for(registry) as client:
            assert client.manifest_digest("base/busybox", "1.36") == digests["1.36"]
            assert client.manifest_digest("base/busybox", "latest") == digests["1.36"]
            assert client.manifest_digest("base/busybox", "0.1") is None

    def test_tags(self, registry: Registry) -> None:
        publish(registry, "base/busybox", ["latest", "1.36", "1.35"])
        with client_for(registry) as client:
            assert client.tags("base/busybox") == ["1.35", "1.36", "latest"]
            assert client.tags("never/pushed") == []

    def test_published_many(self, registry: Registry) -> None:
        repositories = [f"team/image{index}" for index in range(10)]
        for repository in repositories:
            publish(registry, repository, ["1.0", "2.0"])
        refs = [(repository, tag) for repository in repositories for tag in ("1.0", "2.0", "3.0")]
        refs += [(f"missing/image{index}", "1.0") for index in range(20)]
        with client_for(registry, workers=8) as client:
            answers = client.published_many([*refs, refs[0]])
        assert list(answers) == refs
        assert answers == {ref: ref[1] != "3.0" and ref[0].startswith("team/") for ref in refs}

    def test_invalid_names_are_refused_before_asking(self, registry: Registry) -> None:
        with client_for(registry) as client, pytest.raises(ValueError, match="repository"):
            client.published("../etc", "1")
        with client_for(registry) as client, pytest.raises(ValueError, match="tag"):
            client.published_many([("ok", "1"), ("ok", "bad?tag")])


@pytest.mark.docker
class TestHtpasswdRegistry:
    """Basic authentication: right, wrong and missing credentials."""

    def test_right_credentials(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd")
        publish(registry, "private/app", ["1.0"])
        with client_for(registry) as client:
            assert client.published("private/app", "1.0") is True
            assert client.published("private/app", "2.0") is False
            assert client.tags("private/app") == ["1.0"]
            answers = client.published_many([("private/app", "1.0"), ("private/app", "9")])
            assert answers == {("private/app", "1.0"): True, ("private/app", "9"): False}

    def test_wrong_password(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd")
        wrong = "wrong-" + (registry.password or "")
        client = RegistryClient(registry.host, Credentials(registry.username or "", wrong), None, 4)
        with client, pytest.raises(RegistryError) as raised:
            client.published("private/app", "1.0")
        error = raised.value
        assert error.failure is RegistryFailure.AUTHENTICATION
        assert "authentication refused" in str(error)
        assert registry.host in str(error)
        assert_no_secret(error, wrong)
        assert wrong not in repr(client)

    def test_no_credentials(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd")
        with client_for(registry, anonymous=True) as client, pytest.raises(RegistryError) as raised:
            client.published("private/app", "1.0")
        assert raised.value.failure is RegistryFailure.AUTHENTICATION
        assert "authentication required" in str(raised.value)
        assert "no credentials" in str(raised.value)

    def test_published_many_raises_instead_of_answering_false(
        self, registry_factory: RegistryFactory
    ) -> None:
        registry = registry_factory(auth="htpasswd")
        refs = [(f"private/app{index}", "1.0") for index in range(20)]
        with client_for(registry, anonymous=True) as client, pytest.raises(RegistryError):
            client.published_many(refs)

    def test_credentials_from_docker_config(
        self, registry_factory: RegistryFactory, tmp_path: Path
    ) -> None:
        registry = registry_factory(auth="htpasswd")
        publish(registry, "private/app", ["1.0"])
        config = tmp_path / "config.json"
        pair = f"{registry.username}:{registry.password}".encode()
        config.write_text(
            json.dumps({"auths": {registry.host: {"auth": base64.b64encode(pair).decode()}}}),
            encoding="utf-8",
        )
        credentials = find_credentials(registry.host, None, None, str(config))
        with RegistryClient(registry.host, credentials, None, 2) as client:
            assert client.published("private/app", "1.0") is True


@pytest.mark.docker
class TestTokenRegistry:
    """Bearer tokens from a token server, as Docker Hub and most hosted registries do."""

    def test_right_credentials(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="token")
        digests = publish(registry, "base/busybox", ["1.36"])
        with client_for(registry) as client:
            assert client.published("base/busybox", "1.36") is True
            assert client.published("base/busybox", "1.37") is False
            assert client.published("other/image", "1.0") is False
            assert client.manifest_digest("base/busybox", "1.36") == digests["1.36"]
            assert client.tags("base/busybox") == ["1.36"]

    def test_published_many(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="token")
        repositories = [f"svc/image{index}" for index in range(25)]
        for repository in repositories[:10]:
            publish(registry, repository, ["1.0"])
        refs = [(repository, tag) for repository in repositories for tag in ("1.0", "latest")]
        with client_for(registry, workers=8) as client:
            answers = client.published_many(refs)
        expected = {ref: ref[1] == "1.0" and ref[0] in repositories[:10] for ref in refs}
        assert answers == expected
        assert len(answers) == 50

    def test_wrong_password(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="token")
        wrong = "not-" + (registry.password or "")
        client = RegistryClient(registry.host, Credentials(registry.username or "", wrong), None, 4)
        with client, pytest.raises(RegistryError) as raised:
            client.published_many([("base/busybox", "1.36"), ("base/other", "1")])
        error = raised.value
        assert error.failure is RegistryFailure.AUTHENTICATION
        assert "authentication refused" in str(error)
        assert_no_secret(error, wrong)

    def test_no_credentials(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="token")
        with client_for(registry, anonymous=True) as client, pytest.raises(RegistryError) as raised:
            client.published("base/busybox", "1.36")
        assert raised.value.failure is RegistryFailure.AUTHENTICATION
        assert "authentication required" in str(raised.value)


@pytest.mark.docker
class TestTlsRegistry:
    """HTTPS with the registry's own CA, and never a silent fallback when it is not trusted."""

    def test_with_ca_bundle(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd", tls=True)
        assert registry.url.startswith("https://")
        publish(registry, "secure/app", ["1.0"])
        with client_for(registry) as client:
            assert client.published("secure/app", "1.0") is True
            assert client.published("secure/app", "2.0") is False

    def test_untrusted_certificate_is_a_tls_error(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(tls=True)
        client = RegistryClient(registry.host, None, None, 2)
        with client, pytest.raises(RegistryError) as raised:
            client.published("secure/app", "1.0")
        assert raised.value.failure is RegistryFailure.TLS
        assert "certificate verify failed" in str(raised.value)


class TestUnreachable:
    """Nothing listening is an error, never "not published"."""

    def test_closed_port(self) -> None:
        host = f"127.0.0.1:{free_port()}"
        with RegistryClient(host, None, None, 2) as client, pytest.raises(RegistryError) as raised:
            client.published_many([("a", "1"), ("b", "1")])
        assert raised.value.failure is RegistryFailure.UNREACHABLE
        assert str(raised.value).startswith(f"cannot reach registry {host}")
        assert "connection refused" in str(raised.value)


# --- a counting Bearer peer -------------------------------------------------------------------


class _Peer(ThreadingHTTPServer):
    """A plain-HTTP registry in a thread, speaking the Bearer challenge protocol.

    Anonymous tokens are granted (like Docker Hub for public images); a token allows pulling the
    repositories in its scopes. `published` holds the (repository, tag) pairs that exist.
    """

    daemon_threads = True

    def __init__(self, published: set[tuple[str, str]], delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _PeerHandler)
        self.published = published
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self.tls_attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.tokens: dict[str, set[str]] = {}
        # Repositories that do not exist: like Docker Hub, tokens grant nothing on them and
        # manifests answer 401 insufficient_scope rather than 404.
        self.missing: set[str] = set()
        # Hang up after this many HEADs on a connection (0: never), as servers that limit
        # keep-alive requests do.
        self.close_every = 0

    @property
    def host(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def paths(self) -> list[str]:
        with self.lock:
            return [
                f"{method} {urllib.parse.urlsplit(path).path}" for method, path in self.requests
            ]


class _PeerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real registries do
    server: _Peer

    def handle(self) -> None:
        with self.server.lock:
            self.server.connections += 1
        # A TLS ClientHello starts with 0x16: hang up, as a plain-HTTP server effectively does.
        if isinstance(self.rfile, io.BufferedReader) and self.rfile.peek(1)[:1] == b"\x16":
            with self.server.lock:
                self.server.tls_attempts += 1
            return
        super().handle()

    def _record(self) -> None:
        with self.server.lock:
            self.server.requests.append((self.command, self.path))

    def _reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        if self.command == "HEAD" and self.server.close_every:
            self.heads = getattr(self, "heads", 0) + 1
            if self.heads % self.server.close_every == 0:
                self.send_header("Connection", "close")
                self.close_connection = True
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _challenge(self, scope: str | None = None) -> dict[str, str]:
        value = f'Bearer realm="http://{self.server.host}/token",service="peer"'
        if scope:
            value += f',scope="{scope}"'
        return {"WWW-Authenticate": value}

    def do_GET(self) -> None:
        self._record()
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/":
            self._reply(401, self._challenge())
        elif url.path == "/token":
            scopes = set(urllib.parse.parse_qs(url.query).get("scope", []))
            with self.server.lock:
                token = f"token-{len(self.server.requests)}"
                denied = {f"repository:{r}:pull" for r in self.server.missing}
                self.server.tokens[token] = scopes - denied
            self._reply(
                200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()
            )
        else:
            self._reply(404)

    def do_HEAD(self) -> None:
        self._record()
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            time.sleep(self.server.delay)
            self._head_manifest()
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def _head_manifest(self) -> None:
        prefix, _, rest = self.path.partition("/v2/")
        repository, _, tag = rest.partition("/manifests/")
        scope = f"repository:{repository}:pull"
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.server.lock:
            allowed = scope in self.server.tokens.get(bearer, set())
        if repository in self.server.missing and bearer in self.server.tokens:
            challenge = self._challenge(scope)
            challenge["WWW-Authenticate"] += ',error="insufficient_scope"'
            self._reply(401, challenge)
        elif prefix or not allowed:
            self._reply(401, self._challenge(scope))
        elif (repository, tag) in self.server.published:
            self._reply(200, {"Docker-Content-Digest": "sha256:" + "0" * 64})
        else:
            self._reply(404)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the recorded requests instead."""


@pytest.fixture
def peer() -> Iterator[_Peer]:
    server = _Peer({("app", "1.0"), ("lib/base", "2")})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class TestRoundTrips:
    """After the first question, each answer costs one request on a kept-alive connection."""

    def test_repository_that_does_not_exist_yet(self, peer: _Peer) -> None:
        """A granted token without access to a repository means it is not there (Docker Hub)."""
        peer.missing.add("brand/new")
        with RegistryClient(peer.host, None, None, 4) as client:
            assert client.published("brand/new", "1.0") is False
            assert client.published("app", "1.0") is True

    def test_first_question_learns_then_one_request_each(self, peer: _Peer) -> None:
        with RegistryClient(peer.host, None, None, 4) as client:
            assert client.published("app", "1.0") is True
            assert peer.paths() == ["GET /v2/", "GET /token", "HEAD /v2/app/manifests/1.0"]
            assert client.published("app", "2.0") is False
            assert client.published("app", "1.0") is True
            assert peer.paths()[3:] == ["HEAD /v2/app/manifests/2.0", "HEAD /v2/app/manifests/1.0"]
        # One TLS attempt (loopback: HTTPS first), then one kept-alive HTTP connection.
        assert peer.tls_attempts == 1
        assert peer.connections == 2

    def test_token_per_repository_then_cached(self, peer: _Peer) -> None:
        with RegistryClient(peer.host, None, None, 4) as client:
            assert client.published("lib/base", "2") is True
            assert client.published("app", "1.0") is True
            assert client.published("lib/base", "3") is False
        assert peer.paths() == [
            "GET /v2/",
            "GET /token",
            "HEAD /v2/lib/base/manifests/2",
            "GET /token",
            "HEAD /v2/app/manifests/1.0",
            "HEAD /v2/lib/base/manifests/3",
        ]

    def test_expired_token_is_renewed_once(self, peer: _Peer) -> None:
        with RegistryClient(peer.host, None, None, 4) as client:
            assert client.published("app", "1.0") is True
            peer.revoke_tokens()
            assert client.published("app", "1.0") is True
        assert peer.paths()[3:] == [
            "HEAD /v2/app/manifests/1.0",
            "GET /token",
            "HEAD /v2/app/manifests/1.0",
        ]

    @staticmethod
    def _ask_forty(peer: _Peer, workers: int) -> list[tuple[str, str]]:
        """Two tags of each of 40 repositories asked at once, half of them published; the
        answers must be right. Returns the refs asked."""
        peer.published = {(f"repo{index}", "1") for index in range(0, 40, 2)}
        refs = [(f"repo{index}", tag) for index in range(40) for tag in ("1", "2")]
        with RegistryClient(peer.host, None, None, workers) as client:
            answers = client.published_many(refs)
        assert answers == {ref: ref in peer.published for ref in refs}
        return refs

    def test_published_many_batches_tokens_and_runs_concurrently(self, peer: _Peer) -> None:
        peer.delay = 0.05
        self._ask_forty(peer, 8)
        paths = peer.paths()
        assert paths.count("GET /v2/") == 1
        assert paths.count("GET /token") == 3  # 40 repositories, 16 scopes a token
        assert sum(path.startswith("HEAD ") for path in paths) == 80
        assert 1 < peer.max_in_flight <= 8
        # Connections are reused: 80 checks over at most one per worker, plus the TLS
        # attempt and the session's own for the ping and the (concurrent) token requests.
        assert peer.connections <= 1 + 8 + 4

    def test_published_many_survives_connections_closed_mid_batch(self, peer: _Peer) -> None:
        """Checks written ahead on a connection the server closes are asked again."""
        peer.close_every = 3
        refs = self._ask_forty(peer, 4)
        heads = [path for path in peer.paths() if path.startswith("HEAD ")]
        assert sorted(set(heads)) == sorted(f"HEAD /v2/{r}/manifests/{t}" for r, t in refs)
        # Far more connections than workers: the server hung up every third answer.
        assert peer.connections > 80 // 3


class TestCopyTag:
    """`latest` is pointed at a pushed manifest in the registry: one GET and one PUT."""

    @pytest.mark.parametrize("auth", ["none", "htpasswd", "token"])
    def test_copies_the_manifest_as_it_is(
        self, registry_factory: RegistryFactory, auth: Auth
    ) -> None:
        registry = registry_factory(auth=auth)
        digests = publish(registry, "app/web", ["1.0"])
        with client_for(registry) as client:
            assert client.copy_tag("app/web", "1.0", "latest") == digests["1.0"]
            assert client.manifest_digest("app/web", "latest") == digests["1.0"]
            assert client.tags("app/web") == ["1.0", "latest"]

    def test_unpublished_source_is_none_and_writes_nothing(
        self, registry_factory: RegistryFactory
    ) -> None:
        registry = registry_factory(auth="htpasswd")
        publish(registry, "app/web", ["1.0"])
        with client_for(registry) as client:
            assert client.copy_tag("app/web", "2.0", "latest") is None
            assert client.tags("app/web") == ["1.0"]

    def test_refused_without_push_rights(self, registry_factory: RegistryFactory) -> None:
        registry = registry_factory(auth="htpasswd")
        publish(registry, "app/web", ["1.0"])
        with client_for(registry, anonymous=True) as client, pytest.raises(RegistryError):
            client.copy_tag("app/web", "1.0", "latest")
