"""A BuildKit session for one build, serving its secrets, SSH agents and registry logins.

The daemon's BuildKit asks its client for secrets over a session: the client opens
`POST /session`, the daemon answers 101 and from then on speaks HTTP/2 gRPC on that
connection, as the gRPC *client*, calling `moby.buildkit.secrets.v1.Secrets/GetSecret` (and
`moby.filesync.v1.Auth/Credentials` when it imports cache from a registry, and
`moby.sshforward.v1.SSH/ForwardAgent`, a stream of the bytes between a RUN step's SSH client
and the agent, for each connection to a mounted agent socket). The session is
served by a grpcio server on a private unix socket, the hijacked connection relayed to it
byte for byte; grpcio is loaded here only, for builds that need a session. The messages
are small protobufs, encoded by hand (no protobuf runtime).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import select
import shutil
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.plan import PlannedSecret, SecretKind
from dockerpkg.core.secrets import SecretSource
from dockerpkg.effects import scratch
from dockerpkg.effects.daemon import DaemonError
from dockerpkg.effects.homes import expand_user
from dockerpkg.effects.secretvalues import SecretReadError, read_value
from dockerpkg.effects.sshtunnel import SshError, dial_stdio, relay
from dockerpkg.effects.sshtunnel import end as end_process
from dockerpkg.effects.waits import Patience

_SECRETS = "moby.buildkit.secrets.v1.Secrets"
_AUTH = "moby.filesync.v1.Auth"
_HEALTH = "grpc.health.v1.Health"
_SSH = "moby.sshforward.v1.SSH"
_SSH_ID_KEY = "buildkit.ssh.id"  # the gRPC metadata naming the agent a stream is for
_CHUNK = 65536
_RESPONSE_LIMIT = 65536  # bytes of the /session answer's head read before giving up


def read_secrets(
    ids: Iterable[str], sources: Mapping[str, PlannedSecret], env: Mapping[str, str]
) -> dict[str, bytes]:
    """The values of the secrets IDS, from SOURCES (id -> its source, as the plan gives it)
    and ENV, the run's environment; read for one build, kept by none. Each is checked again
    as when planning (a regular file, at most 500 KiB)."""
    values = {}
    for secret_id in ids:
        source = sources.get(secret_id)
        if source is None or source.kind is SecretKind.SSH:
            raise SecretReadError(f"secret {secret_id}: the plan gives no source for it")
        values[secret_id] = read_value(SecretSource(secret_id, source.kind, source.where), env)
    return values


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def first_field(message: bytes) -> bytes:
    """Field 1 of a protobuf MESSAGE whose field 1 is a string or bytes (GetSecretRequest's
    ID, CheckAgentRequest's ID, BytesMessage's data); other fields are not needed."""
    at = 0
    while at < len(message):
        key, at = _read_varint(message, at)
        kind = key & 7
        if kind == 2:
            length, at = _read_varint(message, at)
            if key >> 3 == 1:
                return message[at : at + length]
            at += length
        elif kind == 0:
            _, at = _read_varint(message, at)
        else:
            break
    return b""


def secret_id_of(request: bytes) -> str:
    """Field 1 (ID) of a GetSecretRequest (or a CredentialsRequest's Host)."""
    return first_field(request).decode("utf-8", errors="replace")


def bytes_message(data: bytes) -> bytes:
    """A BytesMessage: field 1, the data."""
    return b"\x0a" + _varint(len(data)) + data if data else b""


def secret_response(value: bytes) -> bytes:
    """A GetSecretResponse: field 1, the data."""
    return b"\x0a" + _varint(len(value)) + value


def _forward(agent: str, requests: Iterator[bytes]) -> Iterator[bytes]:
    """The bytes of one connection to the agent at AGENT, both ways: REQUESTS (BytesMessages
    from the build) are written to it, what it answers is given back as BytesMessages."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(agent)

    def pump() -> None:
        try:
            for message in requests:
                connection.sendall(first_field(message))
        except Exception:  # noqa: BLE001, S110 (the stream ended: the build closed it)
            pass
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while data := connection.recv(_CHUNK):
            yield bytes_message(data)
    except OSError:
        return
    finally:
        connection.close()


def credentials_response(username: str, secret: str) -> bytes:
    """A CredentialsResponse: field 1 the username, field 2 the secret (both empty: none)."""
    user, word = username.encode(), secret.encode()
    found = b"\x0a" + _varint(len(user)) + user if user else b""
    return found + (b"\x12" + _varint(len(word)) + word if word else b"")


def _handlers(
    values: Mapping[str, bytes],
    logins: Mapping[str, tuple[str, str]],
    agents: Mapping[str, str],
) -> tuple[Any, ...]:
    import grpc

    def credentials(request: bytes, context: Any) -> bytes:
        # CredentialsRequest{Host: 1}: the login for the registry BuildKit pulls cache from.
        username, secret = logins.get(secret_id_of(request), ("", ""))
        return credentials_response(username, secret)

    def get_secret(request: bytes, context: Any) -> bytes:
        secret_id = secret_id_of(request)
        if secret_id not in values:
            context.abort(grpc.StatusCode.NOT_FOUND, f"secret {secret_id} not given to this build")
        return secret_response(values[secret_id])

    def health(request: bytes, context: Any) -> bytes:
        return b"\x08\x01"  # SERVING

    def check_agent(request: bytes, context: Any) -> bytes:
        agent_id = secret_id_of(request) or "default"
        if agent_id not in agents:
            context.abort(grpc.StatusCode.NOT_FOUND, f"ssh {agent_id} not given to this build")
        return b""

    def forward_agent(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        agent_id = dict(context.invocation_metadata()).get(_SSH_ID_KEY) or "default"
        if agent_id not in agents:
            context.abort(grpc.StatusCode.NOT_FOUND, f"ssh {agent_id} not given to this build")
        try:
            yield from _forward(agents[agent_id], requests)
        except OSError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"ssh {agent_id}: {exc.strerror}")

    def unary(function: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=bytes, response_serializer=bytes
        )

    forward = grpc.stream_stream_rpc_method_handler(
        forward_agent, request_deserializer=bytes, response_serializer=bytes
    )
    return (
        grpc.method_handlers_generic_handler(_SECRETS, {"GetSecret": unary(get_secret)}),
        grpc.method_handlers_generic_handler(_AUTH, {"Credentials": unary(credentials)}),
        grpc.method_handlers_generic_handler(_HEALTH, {"Check": unary(health)}),
        grpc.method_handlers_generic_handler(
            _SSH, {"CheckAgent": unary(check_agent), "ForwardAgent": forward}
        ),
    )


def _connect(
    host: str,
    tls: TLSFiles | None,
    env: Mapping[str, str],
    ends: tuple[contextlib.ExitStack, Patience],
) -> socket.socket:
    """A connection to the Docker host at HOST (DOCKER_HOST's form); TLS: the CA that
    signed the host's certificate and this client's certificate and key; ENV: the run's
    environment. For ssh://, the `ssh` command's `docker system dial-stdio` on that host,
    as the docker CLI and docker-py reach it, its stdin and stdout one end of a socket
    pair; ENDS: the stack that ends it, and the patience that ends the waits."""
    stack, patience = ends
    parts = urllib.parse.urlsplit(host)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(parts.path)
        return sock
    if parts.scheme == "ssh" and parts.hostname:
        return _dial_over_ssh(parts, env, stack)
    if parts.scheme == "tcp" and parts.hostname:
        sock = _tcp(parts.hostname, parts.port or 2375, patience)
        if tls is None:
            return sock
        context = ssl.create_default_context(cafile=expand_user(tls.ca, env))
        context.load_cert_chain(expand_user(tls.cert, env), expand_user(tls.key, env))
        return _handshake(context, sock, parts.hostname, patience)
    raise DaemonError(
        f"build secrets, SSH agents and the registry cache need a BuildKit session, which "
        f"dockerpkg opens on unix://, tcp:// and ssh:// builders, not {parts.scheme}://"
    )


_CONNECT_TIMEOUT = 30.0  # seconds a TCP builder may take to accept the session's connection


def _tcp(host: str, port: int, patience: Patience) -> socket.socket:
    """A connection to HOST:PORT, made without blocking so that PATIENCE ends the wait."""
    give_up = time.monotonic() + _CONNECT_TIMEOUT
    failure: OSError = OSError(errno.EHOSTUNREACH, f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            while code in (errno.EINPROGRESS, errno.EALREADY):
                patience.check()
                if select.select([], [sock], [], Patience.POLL)[1]:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                elif time.monotonic() > give_up:
                    code = errno.ETIMEDOUT
            if code == 0:
                sock.setblocking(True)
                return sock
            failure = OSError(code, os.strerror(code))
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise failure


def _handshake(
    context: ssl.SSLContext, sock: socket.socket, hostname: str, patience: Patience
) -> ssl.SSLSocket:
    """SOCK wrapped in TLS for HOSTNAME, its handshake made without blocking so that
    PATIENCE (or the connect timeout) ends the wait for a builder that never answers."""
    give_up = time.monotonic() + _CONNECT_TIMEOUT
    wrapped = context.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
    waiting: tuple[list[ssl.SSLSocket], list[ssl.SSLSocket]]
    try:
        wrapped.setblocking(False)
        while True:
            try:
                wrapped.do_handshake()
                break
            except ssl.SSLWantReadError:
                waiting = ([wrapped], [])
            except ssl.SSLWantWriteError:
                waiting = ([], [wrapped])
            patience.check()
            if time.monotonic() > give_up:
                raise OSError(errno.ETIMEDOUT, "the builder did not finish the TLS handshake")
            select.select(*waiting, [], Patience.POLL)
        wrapped.setblocking(True)
    except BaseException:
        wrapped.close()
        raise
    return wrapped


def _dial_over_ssh(
    parts: urllib.parse.SplitResult, env: Mapping[str, str], stack: contextlib.ExitStack
) -> socket.socket:
    try:
        ours, process = dial_stdio(parts.geturl(), env)
    except SshError as exc:
        raise DaemonError(f"cannot reach {parts.hostname}: {exc}") from None
    stack.callback(end_process, process)
    return ours


def _open(
    host: tuple[str, TLSFiles | None, Mapping[str, str]],
    session_id: str,
    stack: contextlib.ExitStack,
    patience: Patience,
) -> socket.socket:
    """`POST /session` to HOST (its address, TLS files and the run's environment, as
    `_connect` takes them), read up to the end of the daemon's 101 answer (byte by byte:
    what follows is the daemon's HTTP/2 and must reach the gRPC server whole); PATIENCE
    ends the wait for it."""
    address, tls, env = host
    sock = _connect(address, tls, env, (stack, patience))
    stack.callback(sock.close)  # a wait ended by PATIENCE leaves no connection behind
    head = [
        "POST /session HTTP/1.1",
        "Host: docker",
        "Upgrade: h2c",
        "Connection: Upgrade",
        "Content-Length: 0",
        f"X-Docker-Expose-Session-Uuid: {session_id}",
        "X-Docker-Expose-Session-Name: dockerpkg",
        f"X-Docker-Expose-Session-Sharedkey: {session_id}",
        f"X-Docker-Expose-Session-Grpc-Method: /{_SECRETS}/GetSecret",
        f"X-Docker-Expose-Session-Grpc-Method: /{_AUTH}/Credentials",
        f"X-Docker-Expose-Session-Grpc-Method: /{_HEALTH}/Check",
        f"X-Docker-Expose-Session-Grpc-Method: /{_SSH}/CheckAgent",
        f"X-Docker-Expose-Session-Grpc-Method: /{_SSH}/ForwardAgent",
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    answer = bytearray()
    sock.settimeout(Patience.POLL)
    while not answer.endswith(b"\r\n\r\n") and len(answer) < _RESPONSE_LIMIT:
        try:
            byte = sock.recv(1)
        except TimeoutError:
            patience.check()
            continue
        if not byte:
            break
        answer += byte
    sock.settimeout(None)
    status = bytes(answer).split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in f"{status} ":
        sock.close()
        raise DaemonError(
            f"the Docker daemon does not open BuildKit sessions (it answered {status!r} to "
            "POST /session): build secrets, SSH agents and the registry cache need a daemon "
            "with BuildKit (Docker 18.09 or later)"
        )
    return sock


@contextlib.contextmanager
def build_session(
    host: str,
    tls: TLSFiles | None,
    values: Mapping[str, bytes],
    logins: Mapping[str, tuple[str, str]] | None = None,
    agents: Mapping[str, str] | None = None,
    *,
    patience: Patience | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """A session on the Docker host at HOST serving VALUES (secret id -> bytes), LOGINS (registry
    -> username, password: BuildKit asks for them to import cache) and AGENTS (SSH id -> the
    agent's socket) to the build that names its id (`POST /build?session=ID`); it ends with
    the block, however it ends. PATIENCE ends the wait for the host to open it; ENV: the
    run's environment (the HOME of `~` in TLS file names, the `ssh` of ssh:// hosts)."""
    import grpc  # only builds that need a session pay for loading it

    folder = scratch.make_folder("session")
    os.chmod(folder, 0o700)
    path = os.path.join(folder, "grpc.sock")
    # A forwarded agent connection holds a worker while it lasts: room for a few at once.
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(_handlers(values, logins or {}, agents or {}))
    server.add_insecure_port(f"unix:{path}")
    server.start()
    session_id = secrets.token_hex(16)
    sockets: list[socket.socket] = []
    ends = contextlib.ExitStack()
    try:
        where = (host, tls, env or {})
        daemon_side = _open(where, session_id, ends, patience or Patience())
        sockets.append(daemon_side)
        server_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sockets.append(server_side)
        server_side.connect(path)
        for source, target in ((daemon_side, server_side), (server_side, daemon_side)):
            threading.Thread(target=relay, args=(source, target), daemon=True).start()
        yield session_id
    except OSError as exc:
        raise DaemonError(f"cannot open a BuildKit session: {exc}") from None
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        ends.close()
        server.stop(0)
        shutil.rmtree(folder, ignore_errors=True)
