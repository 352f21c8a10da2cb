"""Fixtures for tests against a real Docker daemon and real registries (see tests/support).

Without a daemon those tests are skipped, unless DOCKERPKG_REQUIRE_DOCKER=1 (as in `make test`
and CI), where a missing service fails them: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

import docker
import pytest
from hypothesis import HealthCheck, settings

from tests.support import services
from tests.support.services import Auth, Registry, RegistryFactory

# Hypothesis's own clock checks time the machine, not the code: on a shared machine, or with
# `make unit` running a worker per core, a starved worker draws and runs examples slowly.
# Planning's cost is checked where it matters (test_linear_planning).
settings.register_profile("dockerpkg", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dockerpkg")

# The standard way to test a pytest plugin (dockerpkg's own: tests/*/test_pytest_plugin*.py).
pytest_plugins = ["pytester"]

# Tests using any of these get the `docker` marker, so `-m "not docker"` leaves them out.
DOCKER_FIXTURES = frozenset({"docker_client", "busybox_base", "registry_factory", "registry"})


def pytest_configure(config: pytest.Config) -> None:
    """The programs the tests start must see Ctrl-C as a user's would: a shell starting the
    tests in the background (`make test &`, nohup, some CI runners) makes SIGINT ignored,
    which its children inherit and Python then leaves ignored. A Python handler here is
    reset to the default in every child at exec."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(autouse=True)
def no_login_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come only from what a test sets, never from the developer's shell."""
    for name in ("DOCKERPKG_USERNAME", "DOCKERPKG_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


# The bundled trees live in this project's own checkout, whose commit would otherwise be the
# revision label of every plan made from them (and change with each commit): git stops
# looking for a repository at this folder.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def bundled_trees_outside_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", f"{FIXTURES}:{EXAMPLES}")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("DOCKERPKG_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the daemon named by the environment (DOCKER_HOST or the default socket)."""
    try:
        client = services.connect_docker()
    except services.ServiceUnavailableError as error:
        _unavailable(str(error))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def busybox_base(docker_client: docker.DockerClient) -> str:
    """The tag of a busybox image built from scratch, once a session: BUSYBOX_TAG.

    Give it another name with `services.tag_image(docker_client, busybox_base, target)`.
    """
    try:
        return services.build_busybox_base(docker_client)
    except services.ServiceUnavailableError as error:
        _unavailable(str(error))


@pytest.fixture
def registry_factory() -> Iterator[RegistryFactory]:
    """Start registries: `registry_factory(auth="none"|"htpasswd"|"token", tls=False)`.

    Each is fresh (own port, data, credentials) and stopped when the test ends.
    """
    with ExitStack() as stack:

        def start(auth: Auth = "none", tls: bool = False) -> Registry:
            try:
                return stack.enter_context(services.start_registry(auth, tls))
            except services.ServiceUnavailableError as error:
                _unavailable(str(error))

        yield start


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> Registry:
    """A fresh anonymous plain-HTTP registry."""
    return registry_factory()
