"""ssh:// builders reached the way the docker CLI reaches them: `ssh HOST docker system
dial-stdio`, with the user's ssh, keys, agent and ~/.ssh/config.

docker-py can only do this with paramiko installed (its ssh transport imports it even to
shell out to `ssh`), so dockerpkg keeps a unix socket in a private folder instead, each
connection to it relayed to an `ssh ... dial-stdio` of its own, and gives docker-py that
socket. A BuildKit session dials the same way (`dial_stdio`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import urllib.parse
import weakref
from collections.abc import Mapping

import docker

from dockerpkg.effects import scratch

_BACKLOG = 16


class SshError(Exception):
    """`ssh` cannot be run."""


def relay(source: socket.socket, target: socket.socket) -> None:
    """Copy SOURCE to TARGET until SOURCE ends, then end TARGET's writing side."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _command(url: str) -> list[str]:
    parts = urllib.parse.urlsplit(url)
    destination = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
    port = ["-p", str(parts.port)] if parts.port else []
    return ["ssh", *port, "--", destination or "", "docker", "system", "dial-stdio"]


def dial_stdio(url: str, env: Mapping[str, str]) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """A connection to the Docker host at URL (ssh://[USER@]HOST[:PORT]): one end of a socket
    pair whose other end is the stdin and stdout of `ssh ... docker system dial-stdio`, run
    with ENV, the run's environment (ssh finds the user's agent and files by it); the caller
    ends the process once done."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            _command(url),
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,  # Ctrl-C is the run's to handle, not ssh's
        )
    except OSError as exc:
        ours.close()
        raise SshError(f"cannot run ssh: {exc.strerror}") from None
    finally:
        theirs.close()
    return ours, process


def end(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


class SshTunnel:
    """A private unix socket standing for the Docker host at an ssh:// URL, until closed."""

    def __init__(self, url: str, env: Mapping[str, str]) -> None:
        self.url = url
        self._env = env
        self._folder = scratch.make_folder("ssh")
        os.chmod(self._folder, 0o700)
        self.path = os.path.join(self._folder, "docker.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(_BACKLOG)
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._carry, args=(connection,), daemon=True).start()

    def _carry(self, connection: socket.socket) -> None:
        try:
            remote, process = dial_stdio(self.url, self._env)
        except SshError:
            connection.close()
            return
        with self._lock:
            if self._closed:
                end(process)
                remote.close()
                connection.close()
                return
            self._processes.append(process)
        back = threading.Thread(target=relay, args=(remote, connection), daemon=True)
        back.start()
        relay(connection, remote)
        back.join()
        remote.close()
        connection.close()
        end(process)
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            processes, self._processes = self._processes, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept that waits
        with contextlib.suppress(OSError):
            self._listener.close()
        for process in processes:
            end(process)
        shutil.rmtree(self._folder, ignore_errors=True)


def tunnel_for(host: str | None, env: Mapping[str, str]) -> SshTunnel | None:
    """For an ssh:// builder, the local socket standing for it (see effects/sshtunnel); ENV:
    the run's environment, the `ssh` commands' own."""
    if not host or not host.startswith("ssh://"):
        return None
    return SshTunnel(host, env)


class Client(docker.APIClient):
    """An APIClient that ends its ssh tunnel (if any) when closed, or else when collected."""

    _tunnel: SshTunnel | None = None

    def keep(self, tunnel: SshTunnel | None) -> None:
        if tunnel is not None:
            self._tunnel = tunnel
            weakref.finalize(self, tunnel.close)

    def close(self) -> None:
        super().close()
        if self._tunnel is not None:
            self._tunnel.close()
