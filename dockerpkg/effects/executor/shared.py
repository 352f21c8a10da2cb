"""What the steps of one executor share: the daemon and the registry, the settings, the run's
cancellation, what earlier steps leave for later ones, the logs and references in the
registry."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.logins import login_for
from dockerpkg.core.runrules import log_name
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.executor.settings import Settings
from dockerpkg.effects.logs import CappedLog, Tee
from dockerpkg.effects.ports import Daemon, Registry
from dockerpkg.effects.tasks import TaskCancelledError, TaskFailedError


class Shared:
    """One executor's daemon, registry and settings, and its state across steps."""

    def __init__(self, daemon: Daemon, registry: Registry | None, settings: Settings) -> None:
        self.daemon = daemon
        self.registry = registry
        self.settings = settings
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        # Image name -> folder holding build/ from its build stage, until its build takes it.
        self.artifacts: dict[str, Path] = {}
        # Image name -> the manifest digest this run pushed to its staging reference (after
        # its verification): what its promotion moves, whatever the staging tag holds then.
        self.staged: dict[str, str] = {}
        # Label -> the manifest digest the daemon said its pull in this run resolved it to.
        self.pulled: dict[str, str] = {}
        # Label -> held while it is pulled: a pull moves the label's tag on the daemon, so
        # two pulls of one label (for two platforms) must not overlap before each is named.
        self._pull_locks: dict[str, threading.Lock] = {}

    def pull_lock(self, label: str) -> threading.Lock:
        """The lock held while LABEL is pulled and named (see _pull_locks)."""
        with self.lock:
            return self._pull_locks.setdefault(label, threading.Lock())

    def failed(self, exc: Exception) -> TaskFailedError:
        """The step's failure for EXC: cancelled, once the run is."""
        if self.cancel.is_set():
            return TaskCancelledError("cancelled")
        return TaskFailedError(str(exc))

    @contextlib.contextmanager
    def log(self, name: str, title: str) -> Iterator[IO[str]]:
        """NAME's log in the run's folder (core.runrules.log_name), capped, opened with a
        TITLE line."""
        path = self.settings.run_dir / log_name(name)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"== {title} ({time.strftime('%Y-%m-%d %H:%M:%S')}) ==\n")
            capped = CappedLog(handle, self.settings.log_limit)
            echo = self.settings.echo
            try:
                # Both write, flush and give a file descriptor: all the log users need of IO.
                yield cast("IO[str]", capped if echo is None else Tee(capped, echo, name))
            finally:
                capped.close()

    def credentials_for(self, label: str) -> Credentials | None:
        """The login a pull or push of LABEL is given (see core.logins.login_for)."""
        return login_for(label, self.settings.config.registry, self.settings.credentials)

    def reference(self, label: str) -> tuple[str, str, str]:
        """LABEL's repository, tag (`latest` when it names none) and path in the registry."""
        repository, tag = split_label(label)
        return (
            repository,
            tag or "latest",
            repository_path(repository, self.settings.config.registry),
        )

    def registry_for(self, what: str) -> Registry:
        if self.registry is None:
            # The API gives every publishing run its registry client: this is a caller's bug.
            raise TaskFailedError(f"{what} needs the registry client of the run")
        return self.registry
