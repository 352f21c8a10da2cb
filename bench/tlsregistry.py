"""A registry for the benchmark at https://127.0.0.1 (port 443), and cheap mass publishing.

docker-pkg 4.0.4 cannot resolve `image_tag` when the registry name carries a port (it splits
labels on ":"), so both tools must see a registry named plainly `127.0.0.1`: TLS on port 443
with a CA made here (openssl) and trusted by the daemon through /etc/docker/certs.d.
The registry process is started and stopped by its pid; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import requests

from tests.support.services import (
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    _serve_tokens,
    _TokenIssuer,
    make_server_certificate,
    stop_process,
)

HOST = "127.0.0.1"
PORT = 443
DOCKER_CERTS = Path("/etc/docker/certs.d") / HOST
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
READY_TIMEOUT_S = 30.0


class RegistryError(Exception):
    """The benchmark registry could not be set up or used."""


@attrs.frozen
class Tls:
    """A CA and the server certificate it signed for 127.0.0.1."""

    ca: Path
    certificate: Path
    key: Path


@attrs.frozen
class Login:
    username: str
    password: str
    htpasswd: Path


@attrs.frozen
class Registry:
    """A running registry as clients see it."""

    url: str
    ca: Path
    login: Login | None
    data_dir: Path

    @property
    def auth(self) -> tuple[str, str] | None:
        return None if self.login is None else (self.login.username, self.login.password)

    @property
    def auth_config(self) -> dict[str, str] | None:
        """Credentials as docker-py's push takes them."""
        if self.login is None:
            return None
        return {"username": self.login.username, "password": self.login.password}


def make_tls(directory: Path) -> Tls:
    """A CA and a server certificate for IP 127.0.0.1, as the test registries use."""
    return Tls(*make_server_certificate(directory))


def make_login(directory: Path, username: str, password: str) -> Login:
    """An htpasswd file (bcrypt) for one user."""
    line = subprocess.run(
        ["htpasswd", "-nBi", username],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = directory / "htpasswd"
    path.write_text(line, encoding="utf-8")
    return Login(username, password, path)


@contextlib.contextmanager
def trusted_by_docker(ca: Path) -> Iterator[None]:
    """Copy the CA where the daemon looks for 127.0.0.1's CA; put back what was there."""
    backup = None
    if DOCKER_CERTS.exists():
        backup = DOCKER_CERTS.with_name(f"{HOST}.bench-backup")
        shutil.rmtree(backup, ignore_errors=True)
        DOCKER_CERTS.rename(backup)
    DOCKER_CERTS.mkdir(parents=True)
    shutil.copyfile(ca, DOCKER_CERTS / "ca.crt")
    try:
        yield
    finally:
        shutil.rmtree(DOCKER_CERTS, ignore_errors=True)
        if backup is not None:
            backup.rename(DOCKER_CERTS)


def port_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the registry binds: connections of a registry just stopped may linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, PORT))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def token_auth(work: Path, login: Login) -> Iterator[dict[str, Any]]:
    """A Bearer token server granting LOGIN what it asks (the tests' own, in a thread, on a
    free port) for the block, and the registry's `auth` section trusting its tokens: the
    kind of registry public ones are (a token from the realm, then `Authorization: Bearer`)."""
    issuer = _TokenIssuer(work / "token", login.username, login.password)
    with _serve_tokens(issuer) as realm:
        yield {
            "token": {
                "realm": realm,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(issuer.cert_path),
            }
        }


@contextlib.contextmanager
def serve(
    work: Path,
    tls: Tls,
    data_dir: Path,
    login: Login | None,
    *,
    access_log: bool = False,
    token: bool = False,
) -> Iterator[Registry]:
    """Run `docker-registry serve` on 127.0.0.1:443 over DATA_DIR until the block ends; with
    ACCESS_LOG every request is a line of WORK/registry.log (see `count_requests`). LOGIN
    is checked by htpasswd, or with TOKEN by a Bearer token server (`token_auth`)."""
    if not port_free():
        raise RegistryError(f"{HOST}:{PORT} is taken: the benchmark registry needs that port")
    with contextlib.ExitStack() as stack:
        auth = None
        if login is not None:
            auth = stack.enter_context(token_auth(work, login)) if token else _htpasswd(login)
        yield stack.enter_context(_serving(work, tls, data_dir, login, auth, access_log))


def _htpasswd(login: Login) -> dict[str, Any]:
    return {"htpasswd": {"realm": "bench", "path": str(login.htpasswd)}}


@contextlib.contextmanager
def _serving(
    work: Path,
    tls: Tls,
    data_dir: Path,
    login: Login | None,
    auth: dict[str, Any] | None,
    access_log: bool,
) -> Iterator[Registry]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "error", "accesslog": {"disabled": not access_log}},
        "storage": {
            "filesystem": {"rootdirectory": str(data_dir)},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f"{HOST}:{PORT}",
            "tls": {"certificate": str(tls.certificate), "key": str(tls.key)},
        },
    }
    if auth is not None:
        config["auth"] = auth
    config_path = work / "registry.yml"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    log_path = work / "registry.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"https://{HOST}"
    try:
        _wait_until_answering(process, url, tls.ca, log_path)
        yield Registry(url=url, ca=tls.ca, login=login, data_dir=data_dir)
    finally:
        stop_process(process)


def _wait_until_answering(
    process: subprocess.Popen[bytes], url: str, ca: Path, log_path: Path
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(requests.ConnectionError):
            response = requests.get(f"{url}/v2/", timeout=2, verify=str(ca))
            if response.status_code in (200, 401):
                return
        time.sleep(0.05)
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RegistryError(f"the registry did not start; its log ends:\n{tail}")


# --- Publishing many names without building them -----------------------------------------


def publish_copies(
    registry: Registry, source: str, tag: str, targets: Iterable[tuple[str, str]], workers: int = 16
) -> int:
    """Publish SOURCE:TAG's manifest as every (name, tag) in TARGETS; returns how many.

    Blobs are linked into each repository by cross-repository mount (no data moves), then the
    same manifest bytes are PUT under each name and tag: seconds for thousands of images.
    """
    session = _session(registry)
    response = session.get(
        f"{registry.url}/v2/{source}/manifests/{tag}", headers={"Accept": MANIFEST_V2}, timeout=30
    )
    if response.status_code != 200:
        raise RegistryError(f"cannot read {source}:{tag}: HTTP {response.status_code}")
    manifest = response.content
    parsed = json.loads(manifest)
    digests = [parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])]
    local = threading.local()

    def publish(target: tuple[str, str]) -> None:
        name, target_tag = target
        if not hasattr(local, "session"):
            local.session = _session(registry)
        own: requests.Session = local.session
        for digest in digests:
            mount = own.post(
                f"{registry.url}/v2/{name}/blobs/uploads/",
                params={"mount": digest, "from": source},
                timeout=30,
            )
            if mount.status_code != 201:
                raise RegistryError(f"mounting {digest} into {name}: HTTP {mount.status_code}")
        put = own.put(
            f"{registry.url}/v2/{name}/manifests/{target_tag}",
            data=manifest,
            headers={"Content-Type": MANIFEST_V2},
            timeout=30,
        )
        if put.status_code != 201:
            raise RegistryError(f"putting {name}:{target_tag}: HTTP {put.status_code}")

    items = list(targets)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(publish, items))
    return len(items)


def count_published(registry: Registry, refs: Iterable[tuple[str, str]], workers: int = 16) -> int:
    """How many of the (name, tag) pairs have a manifest in the registry."""
    local = threading.local()

    def published(ref: tuple[str, str]) -> bool:
        if not hasattr(local, "session"):
            local.session = _session(registry)
        own: requests.Session = local.session
        name, tag = ref
        response = own.head(
            f"{registry.url}/v2/{name}/manifests/{tag}",
            headers={"Accept": MANIFEST_V2},
            timeout=30,
        )
        return response.status_code == 200

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(published, list(refs)))


def _session(registry: Registry) -> requests.Session:
    session = requests.Session()
    session.verify = str(registry.ca)
    session.trust_env = False  # no ~/.netrc, no proxies: exactly the credentials given
    if registry.auth is not None:
        session.auth = registry.auth
    return session


def count_requests(work: Path) -> int:
    """The requests the registry served, from its access log (one line each)."""
    log = work / "registry.log"
    if not log.exists():
        return 0
    request = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" \d{3} ')
    return sum(1 for line in log.read_text(errors="replace").splitlines() if request.search(line))
