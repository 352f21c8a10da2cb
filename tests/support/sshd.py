"""An SSH server of a test's own, so that `ssh://` Docker engines are tested for real: the
machine's own daemon reached over ssh, as a remote builder is.

The server listens on 127.0.0.1 on a free port and lets root in with a key made for it. The
client side is a host alias in /etc/ssh/ssh_config.d/ (ssh reads the home folder of the
password database, not $HOME, so a test cannot give it a config of its own any other way),
removed afterwards. Needs root, sshd (openssh-server) and ssh (openssh-client).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.services import ServiceError, ServiceUnavailableError, free_port

SSHD = Path("/usr/sbin/sshd")
CLIENT_CONFIGS = Path("/etc/ssh/ssh_config.d")


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def ssh_engine() -> Iterator[str]:
    """The URL of this machine's Docker daemon over ssh (`ssh://ALIAS`) for the block."""
    if os.geteuid() != 0:
        raise ServiceUnavailableError("an sshd of a test's own needs root")
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise ServiceUnavailableError(f"`{tool}` is missing; install openssh-client")
    if not SSHD.is_file():
        raise ServiceUnavailableError(f"{SSHD} is missing; install openssh-server")
    work = Path(tempfile.mkdtemp(prefix="dpkg-sshd-"))
    alias = f"dockerpkg-test-{secrets.token_hex(4)}"
    client_config = CLIENT_CONFIGS / f"{alias}.conf"
    process = None
    try:
        _keygen(work / "host_key")
        _keygen(work / "client_key")
        shutil.copyfile(work / "client_key.pub", work / "authorized_keys")
        port = free_port()
        (work / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host_key'}\n"
            f"AuthorizedKeysFile {work / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {work / 'sshd.pid'}\n",
            encoding="utf-8",
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(work / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        said = []
        # sshd says so once it listens; a failure to start ends its output.
        for line in process.stderr:
            said.append(line)
            if "Server listening on" in line:
                break
        else:
            raise ServiceError(f"sshd did not start: {''.join(said)}")
        CLIENT_CONFIGS.mkdir(parents=True, exist_ok=True)
        client_config.write_text(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
            f"  IdentityFile {work / 'client_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
            "  BatchMode yes\n",
            encoding="utf-8",
        )
        yield f"ssh://{alias}"
    finally:
        client_config.unlink(missing_ok=True)
        if process is not None:
            process.kill()
            process.wait()
            if process.stderr is not None:
                process.stderr.close()
        shutil.rmtree(work, ignore_errors=True)
