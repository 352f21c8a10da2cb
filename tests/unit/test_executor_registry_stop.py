"""A cancellation ends the waits of the run's registry client (a gate waiting out a
registry's Retry-After), except once an all-or-nothing promotion has started: its set is
finished whatever comes (docs/failure.md)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dockerpkg.core.plan import PublishMode
from dockerpkg.core.registrylimits import Decision, Verdict
from dockerpkg.core.report import Outcome
from dockerpkg.effects.executor.registrystop import RegistryStop
from dockerpkg.effects.registry import RegistryCancelledError
from dockerpkg.effects.registry.gate import GateCancelledError, RegistryGates
from dockerpkg.effects.registry.transport import Interrupter
from dockerpkg.effects.tasks import Interrupt
from tests.support.fakedaemon import FakeDaemon, FakeRegistry, digest_of
from tests.unit.test_executor import BASE, HOST, outcomes, planned, run, write_tree

# What the registry asks for when it limits the run: under the longest wait (60 s).
ASKED = 50.0


class LimitedRegistry(FakeRegistry):
    """The registry's fake, asked as RegistryClient asks: each request through the run's
    gate for its host, waiting on the client's Interrupter; the first request of LIMITED
    (a method name) is answered as a 429 asking for ASKED seconds, which the whole host
    waits out before its next request."""

    def __init__(self, gates: RegistryGates, limited: str, asked: float = ASKED) -> None:
        super().__init__(HOST)
        self.asked = asked
        self.gate = gates.host(HOST)
        self.interrupter = Interrupter()
        self.limited = limited
        self.waiting = threading.Event()  # a request waits for the limit to pass

    def interrupt(self) -> None:
        self.interrupter.interrupt()

    def _enter(self, method: str, *args: str) -> None:
        if method == self.limited and not self.waiting.is_set():
            self.gate.back_off(Decision(Verdict.RETRY, self.asked, host_wide=True, limited=True))
            self.waiting.set()
        try:
            with self.gate.slot(self.interrupter.event):
                pass
        except GateCancelledError:
            raise RegistryCancelledError("interrupted") from None
        super()._enter(method, *args)


def cancel_when(event: threading.Event, interrupt: Interrupt) -> None:
    def go() -> None:
        event.wait(60)
        interrupt.cancel()

    threading.Thread(target=go, daemon=True).start()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path)


class TestACancelEndsTheRegistryWaits:
    def test_a_cancel_ends_the_wait_of_tagging_latest(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        gates = RegistryGates()
        registry = LimitedRegistry(gates, "copy_tag")
        daemon = FakeDaemon(remote={BASE: digest_of("debian")}, registry=registry)
        interrupt = Interrupt()
        cancel_when(registry.waiting, interrupt)
        began = time.monotonic()
        report = run(workspace, plan, daemon, registry, tmp_path, interrupt, gates=gates)
        # The run ends at the cancellation, not once the 50 s asked for have passed.
        assert time.monotonic() - began < 20
        assert report.interrupted
        found = outcomes(report)
        assert found["publish:base"][0] is Outcome.CANCELLED, found
        assert ("ns/base", "latest") not in registry.tags

    def test_a_cancel_waits_for_the_promotions_started(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        gates = RegistryGates()
        # The first promotion is limited for a moment (what matters is that the
        # cancellation does not end its wait): the set still finishes.
        registry = LimitedRegistry(gates, "promote", asked=0.5)
        daemon = FakeDaemon(remote={BASE: digest_of("debian")}, registry=registry)
        interrupt = Interrupt()
        cancel_when(registry.waiting, interrupt)
        report = run(workspace, plan, daemon, registry, tmp_path, interrupt, gates=gates)
        found = outcomes(report)
        assert report.interrupted
        assert found["promote:base"][0] is Outcome.SUCCEEDED, found
        assert found["promote:app"][0] is Outcome.SUCCEEDED, found
        assert registry.tags["ns/base", "latest"] == registry.tags["ns/base", "1.0"]


class TestRegistryStop:
    def test_stop_interrupts_each_client_once_known(self) -> None:
        stop, calls = RegistryStop(), []

        class Client:
            def interrupt(self) -> None:
                calls.append(self)

        client = Client()
        stop.watch(client)
        stop.watch(client)  # a second executor of the same run
        stop.watch(object())  # a registry that cannot be interrupted: left alone
        stop.stop()
        assert calls == [client]
        assert stop.stopped
        late = Client()
        stop.watch(late)  # a client known after the stop is interrupted at once
        assert calls == [client, late]

    def test_no_stop_once_a_promotion_has_started(self) -> None:
        stop, calls = RegistryStop(), []

        class Client:
            def interrupt(self) -> None:
                calls.append(self)

        stop.watch(Client())
        stop.promotion_starts()
        stop.stop()
        assert calls == []
        assert not stop.stopped
