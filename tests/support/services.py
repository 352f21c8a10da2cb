"""Real services for integration tests and scripts: a busybox base image and throwaway registries.

Nothing here is a stand-in. Registries are Debian's `docker-registry` binary on a free
127.0.0.1 port, with a fresh data directory, optionally behind htpasswd, TLS (a CA made with the
`openssl` CLI) or Bearer tokens (a small token server in a thread, signing with `openssl`).
The base image is busybox-static on `scratch`, since these machines cannot pull images.

Used by tests/conftest.py (fixtures) and by scripts (`start_registry` is a context manager).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import attrs
import docker
import pytest
import requests

__all__ = [
    "BUSYBOX_TAG",
    "DOCKER_CERTS_DIR",
    "Auth",
    "Registry",
    "RegistryFactory",
    "RegistryProcess",
    "ServiceError",
    "ServiceUnavailableError",
    "build_busybox_base",
    "connect_docker",
    "push_image",
    "start_registry",
    "tag_image",
]

BUSYBOX_TAG = "dockerpkg-test/busybox:1.36"
BUSYBOX_BINARY = Path("/bin/busybox")  # from busybox-static: it must not need a libc
BUSYBOX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
COPY passwd group /etc/
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
"""
# Users as in real base images: BuildKit of dockerd 20.10 needs /etc/passwd for any USER.
BUSYBOX_FILES = {
    "passwd": (
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    ),
    "group": "root:x:0:\nnogroup:x:65534:\n",
}

# The daemon trusts a registry's CA found here, without a restart.
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")

TOKEN_SERVICE = "dockerpkg-test-registry"
TOKEN_ISSUER = "dockerpkg-test-token-issuer"
TOKEN_LIFETIME_S = 300

READY_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken between picking it and the registry binding it

Auth = Literal["none", "htpasswd", "token"]


class ServiceError(Exception):
    """A service was started but misbehaved (build failed, registry never answered, ...)."""


class ServiceUnavailableError(ServiceError):
    """A service cannot be had on this machine (no daemon, a tool missing)."""


@attrs.frozen
class Registry:
    """A running registry, as clients see it."""

    host: str  # "127.0.0.1:PORT": what image references start with
    url: str  # "http://127.0.0.1:PORT" or "https://..."
    auth: Auth
    username: str | None
    password: str | None
    ca_path: Path | None  # the CA that signed the server certificate when TLS is on
    data_dir: Path  # the registry's storage root
    token_realm: str | None  # the token endpoint when auth == "token"
    process: RegistryProcess | None = attrs.field(default=None, eq=False, repr=False)

    def stop(self) -> None:
        """Stop the registry process (as a crash or an outage would); `start` brings it back."""
        if self.process is None:
            raise ValueError(f"registry {self.host} was not started here")
        self.process.stop()

    def start(self) -> None:
        """Start the registry again, on the same port, with the same data and config."""
        if self.process is None:
            raise ValueError(f"registry {self.host} was not started here")
        self.process.start()

    @property
    def auth_config(self) -> dict[str, str] | None:
        """Credentials in the form docker-py's push/pull take."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password}

    @property
    def verify(self) -> str | bool:
        """What `requests` needs as `verify=` to trust this registry."""
        return str(self.ca_path) if self.ca_path is not None else True

    def ref(self, name: str) -> str:
        """An image reference inside this registry, e.g. ref("base/busybox:1.36")."""
        return f"{self.host}/{name}"

    def token(self, *scopes: str) -> str:
        """A Bearer token for `scopes` (e.g. "repository:base/busybox:pull"); auth="token" only."""
        if self.token_realm is None:
            raise ValueError(f"registry {self.host} does not use tokens")
        response = requests.get(
            self.token_realm,
            params={"service": TOKEN_SERVICE, "scope": list(scopes)},
            auth=(self.username or "", self.password or ""),
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


class RegistryFactory(Protocol):
    """What the `registry_factory` fixture gives: start a registry that lasts for the test."""

    def __call__(self, auth: Auth = "none", tls: bool = False) -> Registry: ...


# --- Docker -----------------------------------------------------------------------------------


def connect_docker() -> docker.DockerClient:
    """A client for the daemon named by the environment, checked to answer."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise ServiceUnavailableError(
            f"no Docker daemon answers ({error}); run `scripts/services.sh up`"
        ) from error
    return client


def build_busybox_base(client: docker.DockerClient, tag: str = BUSYBOX_TAG) -> str:
    """Build the busybox base image (cached by the daemon after the first time); return `tag`."""
    if not BUSYBOX_BINARY.is_file():
        raise ServiceUnavailableError(f"{BUSYBOX_BINARY} is missing; install busybox-static")
    with tempfile.TemporaryDirectory(prefix="dockerpkg-busybox-") as context:
        shutil.copy2(BUSYBOX_BINARY, Path(context, "busybox"))
        Path(context, "Dockerfile").write_text(BUSYBOX_DOCKERFILE, encoding="utf-8")
        for name, text in BUSYBOX_FILES.items():
            Path(context, name).write_text(text, encoding="utf-8")
        output: list[str] = []
        for chunk in client.api.build(
            path=context, tag=tag, rm=True, forcerm=True, pull=False, decode=True
        ):
            output.append(chunk.get("stream", ""))
            if "error" in chunk:
                raise ServiceError(
                    f"building {tag} failed: {chunk['error']}\n{''.join(output)}"
                    "\n(is /bin/busybox from busybox-static, not the dynamic busybox?)"
                )
    return tag


def tag_image(client: docker.DockerClient, source: str, target: str) -> str:
    """Give image `source` the additional name `target` (e.g. HOST/base/busybox:1.36)."""
    repository, tag = _split_tag(target)
    if not client.api.tag(source, repository, tag=tag, force=True):
        raise ServiceError(f"tagging {source} as {target} failed")
    return target


def push_image(client: docker.DockerClient, ref: str, registry: Registry | None = None) -> None:
    """Push `ref`, with the registry's credentials if given; raise on any error in the stream."""
    repository, tag = _split_tag(ref)
    auth_config = registry.auth_config if registry is not None else None
    for chunk in client.api.push(
        repository, tag=tag, auth_config=auth_config, stream=True, decode=True
    ):
        if "error" in chunk:
            raise ServiceError(f"pushing {ref} failed: {chunk['error']}")


def _split_tag(ref: str) -> tuple[str, str]:
    name, slash, last = ref.rpartition("/")
    if ":" not in last:
        return ref, "latest"
    repository, _, tag = last.partition(":")
    return f"{name}{slash}{repository}", tag


# --- Registry ---------------------------------------------------------------------------------


@contextlib.contextmanager
def start_registry(
    auth: Auth = "none",
    tls: bool = False,
    *,
    docker_certs_dir: Path | None = DOCKER_CERTS_DIR,
) -> Iterator[Registry]:
    """Run a fresh registry for the duration of the `with` block.

    With `tls`, the CA is also written to `docker_certs_dir/HOST/ca.crt` (and removed after) so
    the daemon can push; pass `docker_certs_dir=None` when no daemon needs to reach it.
    """
    binary = _require_tool("docker-registry", "docker-registry")
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="dockerpkg-registry-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        data_dir = work / "data"
        data_dir.mkdir()

        username = password = None
        auth_section: dict[str, Any] = {}
        token_realm = None
        if auth == "htpasswd":
            username, password = "dockerpkg", secrets.token_hex(16)
            htpasswd = work / "htpasswd"
            htpasswd.write_text(_htpasswd_line(username, password), encoding="utf-8")
            auth_section = {"htpasswd": {"realm": "dockerpkg-test", "path": str(htpasswd)}}
        elif auth == "token":
            username, password = "dockerpkg", secrets.token_hex(16)
            issuer = _TokenIssuer(work / "token", username, password)
            token_realm = stack.enter_context(_serve_tokens(issuer))
            auth_section = {
                "token": {
                    "realm": token_realm,
                    "service": TOKEN_SERVICE,
                    "issuer": TOKEN_ISSUER,
                    "rootcertbundle": str(issuer.cert_path),
                }
            }
        elif auth != "none":
            raise ValueError(f"unknown registry auth {auth!r}")

        tls_section: dict[str, str] = {}
        ca_path = None
        if tls:
            ca_path, cert, key = make_server_certificate(work / "tls")
            tls_section = {"certificate": str(cert), "key": str(key)}

        process = stack.enter_context(
            _run_registry(binary, work, data_dir, auth_section, tls_section, ca_path)
        )
        host = process.host
        scheme = "https" if tls else "http"
        registry = Registry(
            host=host,
            url=f"{scheme}://{host}",
            auth=auth,
            username=username,
            password=password,
            ca_path=ca_path,
            data_dir=data_dir,
            token_realm=token_realm,
            process=process,
        )
        if ca_path is not None and docker_certs_dir is not None:
            stack.enter_context(_trusted_by_docker(docker_certs_dir / host, ca_path))
        yield registry


class RegistryProcess:
    """One registry process, which a test may stop and start again on the same port and data."""

    def __init__(self, binary: str, config_path: Path, log_path: Path, host: str) -> None:
        self._binary = binary
        self._config_path = config_path
        self._log_path = log_path
        self.host = host
        self._url = ""
        self._ca: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def launch(self, url: str, ca: Path | None) -> None:
        """Start it and wait until it answers URL; ServiceError if it does not."""
        self._url, self._ca = url, ca
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self._binary, "serve", str(self._config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_until_answering(self._process, url, ca)
        except ServiceError:
            self.stop()
            raise

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.launch(self._url, self._ca)

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)


@contextlib.contextmanager
def _run_registry(
    binary: str,
    work: Path,
    data_dir: Path,
    auth_section: dict[str, Any],
    tls_section: dict[str, str],
    ca_path: Path | None,
) -> Iterator[RegistryProcess]:
    log_path = work / "registry.log"
    for attempt in range(1, START_ATTEMPTS + 1):
        host = f"127.0.0.1:{free_port()}"
        http: dict[str, Any] = {"addr": host}
        if tls_section:
            http["tls"] = tls_section
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(data_dir)},
                "delete": {"enabled": True},
            },
            "http": http,
        }
        if auth_section:
            config["auth"] = auth_section
        config_path = work / "config.yml"
        # JSON is YAML, and needs no YAML library here.
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        process = RegistryProcess(binary, config_path, log_path, host)
        scheme = "https" if tls_section else "http"
        try:
            process.launch(f"{scheme}://{host}/v2/", ca_path)
        except ServiceError:
            if attempt == START_ATTEMPTS:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise ServiceError(f"the registry did not start; its log ends:\n{tail}") from None
            continue
        try:
            yield process
        finally:
            process.stop()
        return


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, ca: Path | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"the registry exited with status {process.returncode}")
        with contextlib.suppress(requests.ConnectionError):
            response = requests.get(url, timeout=2, verify=str(ca) if ca else True)
            # Still running: otherwise whatever took the port first is what answered.
            if response.status_code in (200, 401) and process.poll() is None:
                return
        time.sleep(0.1)
    raise ServiceError(f"{url} did not answer within {READY_TIMEOUT_S:.0f}s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


T = TypeVar("T")


@contextlib.contextmanager
def running_or_skip(service: contextlib.AbstractContextManager[T]) -> Iterator[T]:
    """SERVICE for the block, or the test skipped when this machine cannot run it (failed
    instead under DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)."""
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(service)
        except ServiceUnavailableError as error:
            if os.environ.get("DOCKERPKG_REQUIRE_DOCKER") == "1":
                pytest.fail(f"{error} (DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)")
            pytest.skip(str(error))
        yield running


def free_port() -> int:
    """A TCP port on 127.0.0.1, free now (whoever is given it binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceUnavailableError(
            f"`{name}` is missing; install {package} (scripts/services.sh up)"
        )
    return path


def _htpasswd_line(username: str, password: str) -> str:
    htpasswd = _require_tool("htpasswd", "apache2-utils")
    # -i reads the password from stdin, so it never shows in a process list.
    return subprocess.run(
        [htpasswd, "-nBi", username], input=password, capture_output=True, text=True, check=True
    ).stdout


@contextlib.contextmanager
def _trusted_by_docker(directory: Path, ca_path: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca_path, directory / "ca.crt")
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- TLS --------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    openssl = _require_tool("openssl", "openssl")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1 (an IP SAN: Go ignores the CN); returns
    the CA, the certificate and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=dockerpkg test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
        cwd=directory,
    )  # fmt: skip
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def make_client_certificate(directory: Path) -> tuple[Path, Path]:
    """A client certificate and its key, signed by the CA make_server_certificate left in
    DIRECTORY (for an engine that verifies its clients, `dockerd --tlsverify`)."""
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
        "-subj", "/CN=dockerpkg test client", cwd=directory,
    )  # fmt: skip
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n", encoding="utf-8")
    openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "client.ext", "-out", "client.crt",
        cwd=directory,
    )  # fmt: skip
    return directory / "client.crt", directory / "client.key"


# --- Bearer tokens ----------------------------------------------------------------------------


class _TokenIssuer:
    """Issues RS256 JWTs the registry accepts: the signing certificate rides in the `x5c` header
    and is also the registry's `rootcertbundle`, so the chain is that one self-signed cert."""

    def __init__(self, directory: Path, username: str, password: str) -> None:
        directory.mkdir()
        self.username = username
        self._password = password
        self._openssl_path = _require_tool("openssl", "openssl")
        self.key_path = directory / "token.key"
        self.cert_path = directory / "token.crt"
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(self.key_path), "-out", str(self.cert_path),
            "-subj", f"/CN={TOKEN_ISSUER}",
            cwd=directory,
        )  # fmt: skip
        der = ssl.PEM_cert_to_DER_cert(self.cert_path.read_text(encoding="ascii"))
        self._x5c = base64.b64encode(der).decode("ascii")

    def authenticate(self, username: str, password: str) -> bool:
        return secrets.compare_digest(
            f"{username}\0{password}".encode(), f"{self.username}\0{self._password}".encode()
        )

    def issue(self, subject: str, scopes: list[str]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "iat": now,
            "nbf": now - 10,
            "exp": now + TOKEN_LIFETIME_S,
            "jti": secrets.token_hex(16),
            # Whoever authenticates gets every action asked for: the tests need no finer rules.
            "access": [_access(scope) for scope in scopes],
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        signature = subprocess.run(
            [self._openssl_path, "dgst", "-sha256", "-sign", str(self.key_path)],
            input=signing_input.encode("ascii"),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"


def _access(scope: str) -> dict[str, Any]:
    # TYPE:NAME:ACTIONS, e.g. "repository:base/busybox:pull,push".
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: _TokenIssuer) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.issuer = issuer


class _TokenHandler(BaseHTTPRequestHandler):
    """GET with Basic credentials (what the daemon does) and the OAuth2 password grant (POST)."""

    server: _TokenServer

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        credentials = self._basic_credentials()
        if credentials is None or not self.server.issuer.authenticate(*credentials):
            self._deny()
            return
        self._grant(credentials[0], query.get("scope", []))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8"))
        username = form.get("username", [""])[0]
        password = form.get("password", [""])[0]
        if form.get("grant_type") != ["password"] or not self.server.issuer.authenticate(
            username, password
        ):
            self._deny()
            return
        scopes = [scope for value in form.get("scope", []) for scope in value.split(" ")]
        self._grant(username, scopes)

    def _basic_credentials(self) -> tuple[str, str] | None:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except ValueError:
            return None
        return username, password

    def _grant(self, subject: str, scopes: list[str]) -> None:
        token = self.server.issuer.issue(subject, [s for s in scopes if s])
        body = json.dumps(
            {"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_S}
        ).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _deny(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="dockerpkg-test-token"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: requests would clutter test output."""


@contextlib.contextmanager
def _serve_tokens(issuer: _TokenIssuer) -> Iterator[str]:
    server = _TokenServer(issuer)
    thread = threading.Thread(target=server.serve_forever, name="token-server", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/token"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
