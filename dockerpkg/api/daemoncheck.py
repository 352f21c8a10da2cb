"""Whether the Docker daemon the run's environment names answers: for callers that skip
work needing it (the pytest plugin's Docker items) rather than fail."""

from __future__ import annotations

from collections.abc import Mapping

from dockerpkg.effects.daemon import DaemonError, connect


def daemon_problem(env: Mapping[str, str]) -> str | None:
    """Why the daemon ENV names cannot be used (dockerpkg's message), or None if it answers."""
    try:
        client = connect(env)
    except DaemonError as exc:
        return str(exc)
    client.close()
    return None
