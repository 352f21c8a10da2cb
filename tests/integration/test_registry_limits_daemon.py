"""Daemon pushes and pulls at a registry that limits them: a real registry behind the fault
proxy (tests/support/faulty_registry.py), a real daemon. A push the registry limited is
pushed again after the wait it asked for, the registry's cap holds for the daemon's
transfers too, a registry that keeps limiting fails the run with its name and publishes
nothing wrong, and a rerun finishes the job; all-or-nothing promotions wait out a limit.

Waits are read from the proxy's log (when it answered, when it was asked again), never
timed here: lower bounds are what the registry asked for, upper bounds generous."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from dockerpkg.effects.registry import RegistryError
from tests.integration.test_build import (
    FROM_BASE,
    NAMESPACE,
    Outcome,
    Site,
    SiteFactory,
    read_json,
    steps_by_key,
)
from tests.support import services
from tests.support.faulty_registry import FaultProxy, Limit, start_fault_proxy
from tests.support.trees import BASE_IMAGE, write_image

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("isolated_home")]

Proxied = Callable[..., FaultProxy]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    """`proxied(site, *limits)`: the fault proxy in front of SITE's registry; stopped at the
    end of the test."""
    started: list[FaultProxy] = []

    def start(site: Site, *limits: Limit) -> FaultProxy:
        proxy = start_fault_proxy(site.registry.host, tmp_path, limits=limits)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


def proxy_config(site: Site, proxy: FaultProxy, extra: str = "", base: str = BASE_IMAGE) -> Path:
    """SITE's config with its registry (and BASE, its base image) reached through PROXY."""
    creds = site.credentials
    path = site.work / "config.yaml"
    path.write_text(
        f"registry: {proxy.host}\n"
        f"namespace: {NAMESPACE}\n"
        "base_images:\n"
        f"  - {proxy.host}/{base}\n"
        f"username: {creds.username}\n"
        f"password: {creds.password}\n" + extra,
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


FLAT_BASE = "base/flat:1.0"


def push_flat_base(site: Site, client: docker.DockerClient, busybox: str) -> None:
    """BUSYBOX's files as an image of one layer, pushed to SITE's registry as FLAT_BASE: the
    daemon sends one request at a time for a push of an image built on it (it sends the
    layers of an image side by side)."""
    container = client.api.create_container(busybox, command="true")
    try:
        tarball = b"".join(client.api.export(container["Id"]))
    finally:
        client.api.remove_container(container["Id"], force=True)
    repository, tag = site.registry.ref(FLAT_BASE).rsplit(":", 1)
    client.api.import_image_from_data(tarball, repository=repository, tag=tag)
    services.push_image(client, site.registry.ref(FLAT_BASE), site.registry)


def write_fan(site: Site, leaves: int, *, layer: bool = True) -> list[str]:
    """root and LEAVES images built on it; each with a layer of its own when LAYER (else
    on the one-layer FLAT_BASE, no layer of their own); their names."""
    run = "RUN echo {short} > /{short}\n" if layer else ""
    start = FROM_BASE if layer else 'FROM {{ "flat" | image_tag }}\n'
    write_image(site.tree, site.name("root"), "1.0", start + run.format(short="root"))
    names = [site.name("root")]
    for n in range(leaves):
        short = f"leaf{n}"
        write_image(
            site.tree,
            site.name(short),
            "1.0",
            f'FROM {{{{ "{site.name("root")}" | image_tag }}}}\n' + run.format(short=short),
            depends=[site.name("root")],
        )
        names.append(site.name(short))
    return names


def tags_of(site: Site, name: str) -> list[str]:
    """The tags the registry itself (not through the proxy) holds for image NAME."""
    try:
        return site.tags(name.removeprefix(f"{site.prefix}-"))
    except RegistryError:
        return []  # no manifest was ever put: the registry does not know the repository


def manifest_path(name: str, tag: str = "1.0") -> str:
    return f"/v2/{NAMESPACE}/{name}/manifests/{tag}"


def version_puts(tag: str = "1.0") -> str:
    """The proxy's pattern for a manifest PUT under TAG in the namespace (not staging)."""
    return rf"^PUT /v2/{NAMESPACE}/[^/]+/manifests/{tag}$"


def apply(
    dockerpkg: Callable[..., Outcome], site: Site, config: Path, tag: str, *flags: str
) -> tuple[Outcome, dict[str, object]]:
    report = site.work / f"report-{tag}.json"
    outcome = dockerpkg(
        "-c",
        config,
        "apply",
        "--report",
        report,
        "--run-dir",
        site.work / f"run-{tag}",
        *flags,
        site.tree,
    )
    return outcome, read_json(report)


def usage_of(report: dict[str, object], host: str) -> dict[str, float]:
    entries = report["registries"]
    assert isinstance(entries, list)
    [found] = [e for e in entries if e["host"] == host]
    return dict(found)


class TestDaemonPushesLimited:
    def test_a_push_limited_twice_is_pushed_again_after_the_wait_asked(
        self, make_site: SiteFactory, proxied: Proxied, dockerpkg: Callable[..., Outcome]
    ) -> None:
        """GHCR's form: the wait is in the body, which the daemon passes on in its error."""
        site = make_site()
        names = write_fan(site, 11)
        proxy = proxied(site, Limit(version_puts(), 2, "ghcr:2000"))
        outcome, report = apply(dockerpkg, site, proxy_config(site, proxy), "first")
        assert outcome.status == 0, outcome.text
        steps = steps_by_key(report)
        for name in names:
            assert steps["publish", name]["outcome"] == "succeeded", name
            assert tags_of(site, name) == ["1.0", "latest"]
            waits = proxy.waits(manifest_path(name), "PUT")
            assert len(waits) == 2, (name, waits)
            # At least what was asked; never anywhere near the longest wait allowed.
            assert all(2.0 <= wait < 2.0 + 30 for wait in waits), (name, waits)
        assert proxy.early() == []
        usage = usage_of(report, proxy.host)
        assert usage["limited"] >= 2 * len(names)
        assert usage["retries"] >= 2 * len(names)
        assert usage["waited_s"] >= 2.0
        assert f"registry {proxy.host}: " in outcome.out
        log = (site.work / "run-first" / f"{site.name('root')}.log").read_text("utf-8")
        assert f"registry {proxy.host} answered HTTP 429; trying again after" in log

    def test_a_push_limited_with_a_retry_after_header_is_pushed_again(
        self, make_site: SiteFactory, proxied: Proxied, dockerpkg: Callable[..., Outcome]
    ) -> None:
        """The daemon does not pass a Retry-After header on: the push is started again
        after dockerpkg's own backoff, and the run finishes."""
        site = make_site()
        names = write_fan(site, 2)
        proxy = proxied(site, Limit(version_puts(), 2, "retry-after:1"))
        outcome, report = apply(dockerpkg, site, proxy_config(site, proxy), "first")
        assert outcome.status == 0, outcome.text
        for name in names:
            assert tags_of(site, name) == ["1.0", "latest"]
            assert len(proxy.waits(manifest_path(name), "PUT")) == 2
        assert usage_of(report, proxy.host)["limited"] >= 2 * len(names)

    def test_a_registry_limiting_every_push_fails_the_run_and_a_rerun_publishes(
        self, make_site: SiteFactory, proxied: Proxied, dockerpkg: Callable[..., Outcome]
    ) -> None:
        """Every manifest PUT of the first run is limited, as often as a push is tried (6,
        the default attempts); the registry then lets them through."""
        site = make_site()
        names = [site.name(short) for short in ("one", "two", "three")]
        for name in names:
            write_image(site.tree, name, "1.0", FROM_BASE + f"RUN echo {name} > /name\n")
        proxy = proxied(site, Limit(version_puts(), 6, "ghcr:200"))
        config = proxy_config(site, proxy)
        outcome, report = apply(dockerpkg, site, config, "first")
        assert outcome.status == 1, outcome.text
        steps = steps_by_key(report)
        for name in names:
            step = steps["publish", name]
            assert step["outcome"] == "failed", name
            assert step["error"].startswith(
                f"registry {proxy.host} limited the run: HTTP 429 after 6 tries"
            ), step["error"]
            assert len(proxy.waits(manifest_path(name), "PUT")) == 5
            # Nothing users pull was put: no tag at all, in the registry itself.
            assert tags_of(site, name) == [], name
        assert f"registry {proxy.host} limited the run" in outcome.out
        assert proxy.early() == []
        # The rerun publishes everything, building nothing again.
        outcome, report = apply(dockerpkg, site, config, "again")
        assert outcome.status == 0, outcome.text
        steps = steps_by_key(report)
        for name in names:
            assert tags_of(site, name) == ["1.0", "latest"]
            assert ("build", name) not in steps
            assert steps["publish", name]["reason"] == "built_locally_not_published"


class TestTheCapHoldsForTransfers:
    def test_sixty_images_with_eight_jobs_never_more_than_three_at_once(
        self,
        make_site: SiteFactory,
        proxied: Proxied,
        dockerpkg: Callable[..., Outcome],
        docker_client: docker.DockerClient,
        busybox_base: str,
    ) -> None:
        site = make_site()
        push_flat_base(site, docker_client, busybox_base)
        # One layer each (the base's): a push is one request at a time.
        names = write_fan(site, 59, layer=False)
        proxy = proxied(site)
        limits = f"registries:\n  {proxy.host}:\n    max_requests: 3\n"
        config = proxy_config(site, proxy, limits, base=FLAT_BASE)
        outcome, report = apply(dockerpkg, site, config, "first", "--jobs", "8")
        assert outcome.status == 0, outcome.text
        assert len(names) == 60
        steps = steps_by_key(report)
        assert all(steps["publish", name]["outcome"] == "succeeded" for name in names)
        assert proxy.max_in_flight() <= 3
        # The proxy carried every transfer: 60 version manifests were put through it.
        puts = [r for r in proxy.requests() if r.startswith("PUT ") and "/manifests/1.0" in r]
        assert len(puts) >= 60
        assert usage_of(report, proxy.host)["requests"] >= 60


class TestAllOrNothingLimited:
    def test_a_limit_during_the_promotions_is_waited_out(
        self, make_site: SiteFactory, proxied: Proxied, dockerpkg: Callable[..., Outcome]
    ) -> None:
        site = make_site()
        names = write_fan(site, 5)
        # The first promotion PUT of each version tag (never the staging pushes) is limited.
        proxy = proxied(site, Limit(version_puts(), 1, "retry-after:1"))
        outcome, _ = apply(
            dockerpkg, site, proxy_config(site, proxy), "first", "--publish", "all_or_nothing"
        )
        assert outcome.status == 0, outcome.text
        assert f"Promoted all {len(names)}" in outcome.out
        for name in names:
            assert tags_of(site, name) == ["1.0", "latest"]
            assert all(wait >= 1.0 for wait in proxy.waits(manifest_path(name), "PUT"))
        assert proxy.early() == []
