"""A Docker daemon of a test's own, which the test may stop or kill: never the shared one.

It gets its own data root, exec root, pid file, socket (under a short temporary folder, since
socket paths are limited to about 100 bytes), config file and network bridge. The bridge must be
its own: with `--bridge none` dockerd deletes the `docker0` interface the main daemon's builds
use. Needs root and the `ip` tool (iproute2).

After a test killed it, the teardown starts it again so that it cleans up its own containers
and mounts, then stops it, removes the bridge and the folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from tests.support import services
from tests.support.services import ServiceError, ServiceUnavailableError

__all__ = ["SecondDaemon", "second_daemon_or_skip", "start_second_daemon"]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


class SecondDaemon:
    """A running dockerd of one test; `host` is what DOCKER_HOST takes."""

    def __init__(self, work: Path, bridge: str, tls_port: int | None = None) -> None:
        self.work = work
        self.bridge = bridge
        self.socket = work / "docker.sock"
        self.host = f"unix://{self.socket}"
        # With TLS it also listens on tcp://127.0.0.1:PORT, verifying its clients.
        self.tls_url = None if tls_port is None else f"tcp://127.0.0.1:{tls_port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def tls_files(self) -> dict[str, str]:
        """The CA, client certificate and key a client of tls_url needs (a builder's tls)."""
        folder = self.work / "tls"
        names = {"ca": "ca.crt", "cert": "client.crt", "key": "client.key"}
        return {key: str(folder / name) for key, name in names.items()}

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version="auto", timeout=120)

    def start(self) -> None:
        if self.running:
            return
        config = self.work / "daemon.json"
        config.write_text("{}\n", encoding="utf-8")  # not the main daemon's /etc/docker one
        # The containerd it started died with it, but may linger unreaped under its pid: a new
        # dockerd would wait for that one instead of starting its own.
        (self.work / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        args = [
            "dockerd",
            f"--config-file={config}",
            f"--data-root={self.work / 'data'}",
            f"--exec-root={self.work / 'exec'}",
            f"--pidfile={self.work / 'dockerd.pid'}",
            f"--host={self.host}",
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--shutdown-timeout=2",
        ]
        if self.tls_url is not None:
            folder = self.work / "tls"
            if not (folder / "client.crt").exists():
                services.make_server_certificate(folder)
                services.make_client_certificate(folder)
            args += [
                f"--host={self.tls_url}",
                "--tlsverify",
                f"--tlscacert={folder / 'ca.crt'}",
                f"--tlscert={folder / 'server.crt'}",
                f"--tlskey={folder / 'server.key'}",
            ]
        with (self.work / "dockerd.log").open("ab") as log:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise ServiceError(f"the second dockerd exited; its log ends:\n{self.log_tail()}")
            with contextlib.suppress(docker.errors.DockerException):
                with contextlib.closing(self.client()) as client:
                    client.ping()
                return
            time.sleep(0.2)
        raise ServiceError(f"the second dockerd did not answer; its log ends:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop it as an administrator would (SIGTERM): containers are stopped first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill it (SIGKILL), as a crash would: nothing is cleaned up."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signum)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_tail(self) -> str:
        log = self.work / "dockerd.log"
        return log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""

    def leftover_processes(self) -> list[int]:
        """Pids of processes started for this daemon (containerd, shims) still running."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(self.work).encode() in command:
                pids.append(int(entry.name))
        return pids


@contextlib.contextmanager
def start_second_daemon(*, tls: bool = False) -> Iterator[SecondDaemon]:
    """Run a second dockerd for the block (TLS: also on TCP with TLS); removes everything it
    made afterwards."""
    for tool in ("dockerd", "ip"):
        if shutil.which(tool) is None:
            raise ServiceUnavailableError(f"`{tool}` is missing; a second daemon needs it")
    if os.geteuid() != 0:
        raise ServiceUnavailableError("a second Docker daemon needs root")
    work = Path(tempfile.mkdtemp(prefix="dpkgd-", dir="/tmp"))
    bridge = "dpkg" + secrets.token_hex(4)
    daemon = SecondDaemon(work, bridge, services.free_port() if tls else None)
    try:
        _add_bridge(bridge)
        daemon.start()
        yield daemon
    finally:
        _clean_up(daemon)


def second_daemon_or_skip(*, tls: bool = False) -> contextlib.AbstractContextManager[SecondDaemon]:
    """start_second_daemon, or the test skipped when this machine cannot run one (failed
    instead under DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)."""
    return services.running_or_skip(start_second_daemon(tls=tls))


def _add_bridge(name: str) -> None:
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for _ in range(100):
        subnet = f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(250) + 1}"
        if f"{subnet}." not in used:
            break
    else:
        raise ServiceUnavailableError("no free private subnet for the second daemon's bridge")
    for args in (
        ["link", "add", name, "type", "bridge"],
        ["addr", "add", f"{subnet}.1/24", "dev", name],
        ["link", "set", name, "up"],
    ):
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceUnavailableError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _children(parents: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            if int(stat.rpartition(")")[2].split()[1]) in parents:
                found.append(int(entry.name))
    return found


def _clean_up(daemon: SecondDaemon) -> None:
    if not daemon.running:
        # After a kill, its containers still run under their shims: end them first, or the
        # restarted daemon gives each ten seconds to stop.
        for pid in _children(set(daemon.leftover_processes())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ServiceError):
        daemon.start()  # after a kill: it cleans up its own containers and mounts
    if daemon.running:
        with (
            contextlib.suppress(docker.errors.DockerException),
            contextlib.closing(daemon.client()) as client,
        ):
            for container in client.containers.list(all=True):
                container.remove(force=True)
    daemon.stop()
    for pid in daemon.leftover_processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(daemon.work))
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", daemon.bridge], capture_output=True, check=False)
    shutil.rmtree(daemon.work, ignore_errors=True)
