"""The run's stop for its registry client: a cancellation ends every wait of the client at
once (a gate waiting out a registry's Retry-After, a stalled answer), except once an
all-or-nothing promotion has started, whose set is finished whatever comes
(docs/failure.md, "All or nothing")."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Interruptible(Protocol):
    """A registry client whose waits can all be ended at once (RegistryClient)."""

    def interrupt(self) -> None: ...


class RegistryStop:
    """Shared by every executor of a run (it rides on their Settings, as the gates do)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interrupts: list[Callable[[], None]] = []
        self._promoting = False
        self._stopped = False

    def watch(self, registry: object) -> None:
        """End REGISTRY's waits on stop(), if it can end them."""
        if not isinstance(registry, Interruptible):
            return
        with self._lock:
            if any(known == registry.interrupt for known in self._interrupts):
                return  # the executors of a run share one client
            self._interrupts.append(registry.interrupt)
            stopped = self._stopped
        if stopped:
            registry.interrupt()

    def promotion_starts(self) -> None:
        """A promotion is about to start: from now on a cancellation waits for the set."""
        with self._lock:
            self._promoting = True

    @property
    def stopped(self) -> bool:
        """Whether the registry's waits were ended (a step failing since was cancelled)."""
        return self._stopped

    def stop(self) -> None:
        """The run is cancelled: end the registry's waits, unless promotions have started
        (a promotion whose start raced this one then fails before moving anything)."""
        with self._lock:
            if self._promoting or self._stopped:
                return
            self._stopped = True
            interrupts = list(self._interrupts)
        for interrupt in interrupts:
            interrupt()
