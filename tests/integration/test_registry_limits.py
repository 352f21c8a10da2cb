"""Registry limits through the API paths (checks, reads, copy_tag, promote, put_index), against
a real registry behind the fault-injecting proxy (tests/support/faulty_registry.py): every
wait a registry asks for is honoured (measured from the proxy's own log: the re-ask of a
limited path comes at least the asked time after the answer), transient failures are retried,
a registry that never stops limiting fails the request with a message naming it and saying
until when, the host's cap holds, existence is asked with HEAD, and a manifest is read by
digest once a run."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest

from dockerpkg.core.registrylimits import HostLimits, RegistryLimits
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import RegistryClient, RegistryError, RegistryFailure
from dockerpkg.effects.registry.gate import RegistryGates
from tests.integration.test_registry import publish
from tests.support.faulty_registry import FaultProxy, Limit, start_fault_proxy
from tests.support.services import Registry, RegistryFactory
from tests.support.trees import unique_prefix, write_image

REPOSITORIES = ("app/a", "app/b", "app/c")
# Generous: the waits measured may be longer than asked on a loaded machine, never shorter.
SLACK = 20.0


class Proxied(Protocol):
    def __call__(self, *limits: Limit, slow: tuple[str, float] | None = None) -> FaultProxy: ...


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> Registry:
    found = registry_factory()
    for repository in REPOSITORIES:
        publish(found, repository, ["1.0"])
    return found


@pytest.fixture
def proxied(registry: Registry, tmp_path: Path) -> Iterator[Proxied]:
    """`proxied(*limits, slow=None)`: a proxy in front of the registry, stopped at the end."""
    started: list[FaultProxy] = []

    def start(*limits: Limit, slow: tuple[str, float] | None = None) -> FaultProxy:
        proxy = start_fault_proxy(registry.host, tmp_path, limits=limits, slow=slow)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def asked_waits_honoured(proxy: FaultProxy) -> list[float]:
    """Each hinted answer's asked wait and what the client waited, checked; the asked waits."""
    entries = sorted(proxy.entries(), key=lambda e: e.start)
    asked = []
    for index, entry in enumerate(entries):
        if entry.until is None:
            continue
        same = [e for e in entries[index + 1 :] if (e.method, e.path) == (entry.method, entry.path)]
        assert same, f"{entry.method} {entry.path} was never asked again"
        # Never sooner than asked (the proxy computed `until` before sending its answer).
        assert same[0].start >= entry.until, (entry, same[0])
        assert same[0].start - entry.end < (entry.until - entry.start) + SLACK
        asked.append(entry.until - entry.start)
    return asked


class TestHintsHonoured:
    """The first request of each path is limited; every path is asked again no sooner than
    the registry said, and every answer is the right one."""

    @pytest.mark.parametrize("kind", ["retry-after:2", "retry-after-date:2", "ghcr:1500"])
    def test_checks_reads_and_copies(self, registry: Registry, proxied: Proxied, kind: str) -> None:
        proxy = proxied(Limit(r"^(GET|HEAD|PUT) /v2/app/.*/manifests/", 1, kind))
        refs = [(r, "1.0") for r in REPOSITORIES] + [("app/a", "9.9")]
        with RegistryClient(proxy.host, gates=RegistryGates()) as client:
            found = client.digests_many(refs)
            assert [found[ref] is not None for ref in refs] == [True, True, True, False]
            for repository in REPOSITORIES:
                assert client.copy_tag(repository, "1.0", "latest") == found[(repository, "1.0")]
        with RegistryClient(registry.host) as direct:
            assert all(direct.tags(r) == ["1.0", "latest"] for r in REPOSITORIES)
        limited = [e for e in proxy.entries() if e.fault == kind]
        # HEADs of the checks, GETs and PUTs of the copies: each path limited once.
        assert len(limited) == len(refs) + 2 * len(REPOSITORIES)
        asked = asked_waits_honoured(proxy)
        # GHCR's hint is in the body, which a HEAD answer has not: those are guessed.
        hinted = [e for e in limited if e.method != "HEAD" or not kind.startswith("ghcr")]
        assert len(asked) == len(hinted)
        assert min(asked) >= (1.5 if kind.startswith("ghcr") else 1.0)

    def test_put_index_and_promote(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied(Limit(r"^PUT /v2/app/.*/manifests/", 1, "retry-after:1"))
        with RegistryClient(proxy.host, gates=RegistryGates()) as client:
            digest = client.put_index("app/a", ["multi"], [("linux/amd64", "1.0")])
            promoted = client.promote("app/a", "app/b", "1.0")
        assert promoted is not None
        with RegistryClient(registry.host) as direct:
            assert direct.manifest_digest("app/a", "multi") == digest
            assert direct.manifest_digest("app/b", "1.0") == promoted
        assert len([e for e in proxy.entries() if e.fault]) == 2
        assert len(asked_waits_honoured(proxy)) == 2


class TestPipelinedBatch:
    """Checks limited in one pipelined batch, each asking its own wait: the host waits for
    the longest, and no path is asked again sooner than it asked."""

    def test_every_wait_asked_in_a_batch(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied(
            Limit(r"^HEAD /v2/app/a/manifests/1\.0$", 1, "retry-after:1"),
            Limit(r"^HEAD /v2/app/b/manifests/1\.0$", 1, "retry-after:4"),
        )
        refs = [(r, "1.0") for r in REPOSITORIES]
        gates = RegistryGates()
        # One worker: the three checks go in one batch, on one connection.
        with RegistryClient(proxy.host, workers=1, gates=gates) as client:
            found = client.digests_many(refs)
        assert all(found[ref] is not None for ref in refs)
        assert sorted(asked_waits_honoured(proxy)) == [
            pytest.approx(1, abs=0.5),
            pytest.approx(4, abs=0.5),
        ]
        heads = sorted(
            (e for e in proxy.entries() if e.method == "HEAD" and "/manifests/" in e.path),
            key=lambda e: e.start,
        )
        limited = [e for e in heads if e.fault]
        assert len(limited) == 2
        assert len({e.conn for e in limited}) == 1  # one batch
        longest = max(e.until or 0.0 for e in limited)
        # The whole host waited the longest wait: neither path was asked again before it.
        again = [e for e in heads if not e.fault and e.path in {x.path for x in limited}]
        assert len(again) == 2
        assert all(e.start >= longest for e in again)
        usage = gates.usage()[0]
        assert (usage.retries, usage.limited) == (2, 2)


class TestTransientFailures:
    """A 503 without a hint and a connection reset mid-blob are asked again after a backoff."""

    def test_503_and_a_reset_blob(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied(
            Limit(r"^GET /v2/app/a/manifests/1\.0$", 1, "503"),
            Limit(r"^GET /v2/app/a/blobs/", 1, "reset-blob"),
        )
        gates = RegistryGates()
        with RegistryClient(proxy.host, gates=gates) as client:
            assert client.image_labels("app/a", "1.0") == {}
        faults = [e for e in proxy.entries() if e.fault]
        assert [e.fault for e in faults] == ["503", "reset-blob"]
        for entry in faults:
            waits = proxy.waits(entry.path, entry.method)
            assert len(waits) == 1
            assert 0.5 <= waits[0] < 0.75 + SLACK  # the first backoff, spread by its jitter
        usage = {u.host: u for u in gates.usage()}[proxy.host]
        assert (usage.retries, usage.limited) == (2, 0)


class TestGivingUp:
    """A registry that keeps limiting fails the request after the host's attempts, with a
    message naming it and the time it asked to wait until; nothing is written half-way, and
    the same work succeeds once it stops."""

    def test_always_limited(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied(Limit(r"^HEAD /v2/app/a/manifests/1\.0$", 0, "429-always"))
        client = RegistryClient(proxy.host, gates=RegistryGates())
        with client, pytest.raises(RegistryError) as raised:
            client.published("app/a", "1.0")
        error = raised.value
        assert error.failure is RegistryFailure.RATE_LIMITED
        # The host's attempts (6 by default) bound limits; the retry policy's 3 do not.
        assert str(error).startswith(
            f"registry {proxy.host} limited the run: HTTP 429 after 6 tries; it asked to wait "
            "until 20"
        )
        assert str(error).endswith(" UTC")
        assert proxy.requests().count("HEAD /v2/app/a/manifests/1.0") == 6
        assert proxy.early() == []

    def test_writes_limited_then_done_by_a_rerun(
        self, registry: Registry, proxied: Proxied
    ) -> None:
        proxy = proxied(Limit(r"^PUT ", 0, "429-always"))
        gates = RegistryGates(RegistryLimits({proxy.host: HostLimits(attempts=2)}))
        client = RegistryClient(proxy.host, gates=gates)
        with client, pytest.raises(RegistryError, match="limited the run: HTTP 429 after 2 tries"):
            client.copy_tag("app/a", "1.0", "latest")
        with RegistryClient(registry.host) as direct:
            assert direct.tags("app/a") == ["1.0"]
            assert direct.copy_tag("app/a", "1.0", "latest") is not None
            assert direct.tags("app/a") == ["1.0", "latest"]
        assert (gates.usage()[0].limited, gates.usage()[0].retries) == (2, 1)

    def test_a_wait_over_the_longest_fails_at_once(
        self, registry: Registry, proxied: Proxied
    ) -> None:
        proxy = proxied(Limit(r"^HEAD ", 1, "retry-after:600"))
        client = RegistryClient(proxy.host, gates=RegistryGates())
        with client, pytest.raises(RegistryError) as raised:
            client.published("app/a", "1.0")
        assert "the limit for one wait is 60 s" in str(raised.value)
        assert proxy.requests().count("HEAD /v2/app/a/manifests/1.0") == 1


class TestFewerRequests:
    """Existence is asked with HEAD; a manifest by digest is read once a run."""

    def test_head_for_existence(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied()
        with RegistryClient(proxy.host, gates=RegistryGates()) as client:
            assert client.published("app/a", "1.0")
            assert not client.published("app/a", "2.0")
            assert len(client.digests_many([(r, "1.0") for r in REPOSITORIES])) == 3
        manifests = [r for r in proxy.requests() if "/manifests/" in r]
        assert len(manifests) == 5
        assert all(r.startswith("HEAD ") for r in manifests)

    def test_a_manifest_by_digest_once(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied()
        gates = RegistryGates()
        with RegistryClient(proxy.host, gates=gates) as client:
            digest = client.manifest_digest("app/a", "1.0")
            assert digest is not None
            config = client.config_digest("app/a", digest)
            assert client.copy_tag("app/a", digest, "x") == digest
            assert client.promote("app/a", "app/b", "1.0", digest) == digest
        # A second client of the same run reads nothing again.
        with RegistryClient(proxy.host, gates=gates) as again:
            assert again.config_digest("app/a", digest) == config
        by_digest = [
            r for r in proxy.requests() if r.startswith(f"GET /v2/app/a/manifests/{digest}")
        ]
        assert by_digest == [f"GET /v2/app/a/manifests/{digest}"]
        # Reads by tag are always asked: tags move.
        with RegistryClient(proxy.host, gates=gates) as client:
            client.config_digest("app/a", "1.0")
            client.config_digest("app/a", "1.0")
        assert proxy.requests().count("GET /v2/app/a/manifests/1.0") == 2


class TestCap:
    """The proxy never holds more of the run's requests at once than the host's cap."""

    def test_checks_and_reads_within_the_cap(self, registry: Registry, proxied: Proxied) -> None:
        proxy = proxied(slow=(r"(HEAD|GET) /v2/app/.*", 0.1))
        gates = RegistryGates(RegistryLimits({proxy.host: HostLimits(max_requests=2)}))
        refs = [(r, t) for r in REPOSITORIES for t in ("1.0", "2.0", "3.0", "4.0")]
        with RegistryClient(proxy.host, workers=8, gates=gates) as client:
            threads = [
                threading.Thread(target=client.image_labels, args=(r, "1.0"))
                for r in REPOSITORIES * 2
            ]
            for thread in threads:
                thread.start()
            found = client.digests_many(refs)
            for thread in threads:
                thread.join()
        assert sum(d is not None for d in found.values()) == 3
        assert proxy.max_in_flight() == 2
        usage = gates.usage()[0]
        assert usage.host == proxy.host
        assert usage.waited > 0


def test_a_token_server_has_a_gate_of_its_own(registry_factory: RegistryFactory) -> None:
    registry = registry_factory(auth="token")
    publish(registry, "app/a", ["1.0"])
    assert registry.token_realm is not None
    assert registry.username is not None
    assert registry.password is not None
    gates = RegistryGates()
    credentials = Credentials(registry.username, registry.password)
    with RegistryClient(registry.host, credentials, gates=gates) as client:
        assert client.published("app/a", "1.0")
    realm = urlsplit(registry.token_realm).netloc
    hosts = {u.host: u.requests for u in gates.usage()}
    assert set(hosts) == {registry.host, realm}
    assert hosts[realm] >= 1


@pytest.mark.usefixtures("docker_client", "isolated_home")
def test_plan_waits_out_a_limited_registry(
    registry: Registry, proxied: Proxied, tmp_path: Path, busybox_base: str
) -> None:
    """`plan` against a registry limiting the first check of every image: the plan is made,
    each check asked again no sooner than asked (the run that once ended on the first 429)."""
    proxy = proxied(Limit(r"^(HEAD|GET) /v2/.*/manifests/", 1, "retry-after:1"))
    prefix = unique_prefix()
    for index in range(6):
        write_image(
            tmp_path / "tree",
            f"{prefix}-{index}",
            "1.0",
            f'FROM {{{{ "busybox" | image_tag }}}}\nRUN echo {index}\n',
        )
    config = tmp_path / "config.yaml"
    config.write_text(f"registry: {proxy.host}\nbase_images:\n  - {busybox_base}\n")
    run = subprocess.run(
        [sys.executable, "-m", "dockerpkg", "-c", str(config), "plan", str(tmp_path / "tree")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    limited = [e for e in proxy.entries() if e.fault]
    assert len(limited) >= 6
    assert len(asked_waits_honoured(proxy)) == len(limited)
    # The user is told on stderr which registry limited the plan; the plan says nothing of it.
    [warning] = [line for line in run.stderr.splitlines() if "limited the run" in line]
    assert re.fullmatch(
        rf"warning: registry {re.escape(proxy.host)} limited the run: [\d,]+ answers? "
        r"limited, waited [\d.]+ s for its limits",
        warning,
    ), warning
    assert "limited" not in run.stdout
