"""The SSH agents a build forwards to its `RUN --mount=type=ssh` steps: each one's socket,
from the plan's sources; a private key file gets an `ssh-agent` of its own, started for the
build and stopped with it (the key is never read by dockerpkg itself)."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping

from dockerpkg.core.plan import PlannedSecret, SecretKind
from dockerpkg.core.runenv import run_environment
from dockerpkg.effects import scratch
from dockerpkg.effects.homes import expand_user
from dockerpkg.effects.waits import Patience

_START_TIMEOUT = 10.0  # seconds a private agent may take to say it listens
_STOP_TIMEOUT = 1.0  # seconds it may take to end once told to, before it is killed


class AgentError(Exception):
    """An SSH agent a build needs cannot be had (no SSH_AUTH_SOCK, no such socket or key)."""


@contextlib.contextmanager
def agent_sockets(
    ids: Iterable[str],
    sources: Mapping[str, PlannedSecret],
    env: Mapping[str, str],
    patience: Patience | None = None,
) -> Iterator[dict[str, str]]:
    """Agent id -> the path of its socket, for the agents IDS, from SOURCES (id -> its
    source, as the plan gives it) and ENV, the run's environment; private agents started
    for key files end with the block. PATIENCE ends the waits for them to start."""
    with contextlib.ExitStack() as stack:
        sockets = {}
        for agent_id in ids:
            source = sources.get(agent_id)
            if source is None or source.kind is not SecretKind.SSH:
                raise AgentError(f"ssh {agent_id}: the plan gives no source for it")
            sockets[agent_id] = _socket_of(source, env, (stack, patience or Patience()))
        yield sockets


def _socket_of(
    source: PlannedSecret,
    env: Mapping[str, str],
    waits: tuple[contextlib.ExitStack, Patience],
) -> str:
    stack, patience = waits
    agent_id, where = source.id, source.where
    if source.run_agent:
        found = run_environment(env).ssh_auth_sock
        if not found:
            raise AgentError(f"ssh {agent_id}: SSH_AUTH_SOCK is not set (no agent to forward)")
        where = found
    path = expand_user(where, env)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise AgentError(f"ssh {agent_id}: cannot use {where}: {exc.strerror}") from None
    if stat.S_ISSOCK(mode):
        return path
    if stat.S_ISREG(mode):
        return stack.enter_context(_private_agent(agent_id, path, env, patience))
    raise AgentError(f"ssh {agent_id}: {where} is neither an agent's socket nor a key file")


@contextlib.contextmanager
def _private_agent(
    agent_id: str, key: str, env: Mapping[str, str], patience: Patience
) -> Iterator[str]:
    """An ssh-agent holding only KEY, on a socket in a private folder, for one build; found
    on the PATH of ENV, the run's environment, and run with it.

    The agent runs a command (a shell waiting on a pipe from this process) and ends when that
    command ends: when the block ends, and also when dockerpkg is killed (the pipe closes, the
    shell ends, the agent follows within seconds) - a key must not stay loaded after a run.
    """
    path = env.get("PATH", os.defpath)
    agent, add = shutil.which("ssh-agent", path=path), shutil.which("ssh-add", path=path)
    if agent is None or add is None:
        raise AgentError(
            f"ssh {agent_id}: forwarding the key file {key} needs ssh-agent and ssh-add "
            "(openssh-client); or give the socket of a running agent"
        )
    folder = scratch.make_folder("agent")
    socket_path = os.path.join(folder, "agent.sock")
    process = None
    agent_pid = None
    try:
        # The agent listens before it starts the command, which says so with the agent's pid.
        process = subprocess.Popen(
            [agent, "-a", socket_path, "sh", "-c", 'echo "$SSH_AGENT_PID"; read _'],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert process.stdout is not None
        said = _first_line(process.stdout.fileno(), patience)
        if not said.isdigit():
            raise AgentError(f"ssh {agent_id}: ssh-agent did not start")
        agent_pid = int(said)
        _add_key(agent_id, add, key, socket_path, patience)
        yield socket_path
    finally:
        if process is not None:
            _stop(process, agent_pid)
        shutil.rmtree(folder, ignore_errors=True)


def _first_line(descriptor: int, patience: Patience) -> str:
    """The first line read from DESCRIPTOR (what came, at its end or after _START_TIMEOUT
    seconds); PATIENCE ends the wait sooner."""
    give_up = time.monotonic() + _START_TIMEOUT
    said = b""
    while b"\n" not in said and time.monotonic() < give_up:
        patience.check()
        if select.select([descriptor], [], [], Patience.POLL)[0]:
            chunk = os.read(descriptor, 256)
            if not chunk:
                break
            said += chunk
    return said.partition(b"\n")[0].decode(errors="replace").strip()


def _add_key(agent_id: str, add: str, key: str, socket_path: str, patience: Patience) -> None:
    adding = subprocess.Popen(
        [add, "-q", key],
        env={"SSH_AUTH_SOCK": socket_path, "PATH": os.defpath},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    give_up = time.monotonic() + _START_TIMEOUT
    try:
        while adding.poll() is None:
            patience.check()
            if time.monotonic() > give_up:
                raise AgentError(f"ssh {agent_id}: ssh-add did not finish adding {key}")
            time.sleep(Patience.POLL)
    finally:
        if adding.poll() is None:
            adding.kill()
            adding.wait()
    assert adding.stderr is not None
    stderr = adding.stderr.read()
    adding.stderr.close()
    if adding.returncode != 0:
        said = stderr.decode(errors="replace").strip().splitlines()
        raise AgentError(
            f"ssh {agent_id}: ssh-add cannot add {key}"
            + (f": {said[-1]}" if said else "")
            + " (a key with a passphrase needs an agent of yours: give its socket)"
        )


def _stop(process: subprocess.Popen[bytes], agent_pid: int | None) -> None:
    """End the agent (it forgets the key) and the shell it runs."""
    for pid in (agent_pid, process.pid):
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
