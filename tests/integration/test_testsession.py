"""A test session's builds on the real daemon: one run for a parent and two children,
verification by test.sh, a failing parent, close() leaving nothing, the leftovers of a
session killed with SIGKILL, and two live sessions side by side.

Each test writes its own tree (names no other run uses) under tmp_path, with the busybox
base in a registry of its own (make_site), and keeps its sessions' marks in a folder of its
own. What the daemon holds is read from one image listing, never guessed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import docker
import pytest
from docker.models.containers import Container

from dockerpkg.api.testsession import (
    BuildOutcome,
    SessionOptions,
    TestSession,
    VerifyOutcome,
)
from dockerpkg.errors import DockerPkgError
from tests.integration.test_build import FROM_BASE, Site, SiteFactory
from tests.support import cleanup
from tests.support.trees import write_image

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("isolated_home")]

PASSING = '#!/bin/sh\nset -e\ndocker run --rm "$1" cat /etc/child-marker\necho "checked $1"\n'
FAILING = '#!/bin/sh\necho "the marker is not what it should be" >&2\nexit 3\n'


def write_family(site: Site, *, parent_fails: bool = False) -> tuple[str, str, str]:
    """A parent and two children built FROM it: `pass` (a test.sh that passes) and `fail`
    (one that fails)."""
    parent, good, bad = (site.name(n) for n in ("parent", "pass", "fail"))
    run = "RUN false" if parent_fails else "RUN echo parent > /etc/parent-marker"
    write_image(site.tree, parent, "1.0-1", f"{FROM_BASE}{run}\n")
    for name, test in ((good, PASSING), (bad, FAILING)):
        write_image(
            site.tree,
            name,
            "2.0",
            f'FROM {{{{ "{parent}" | image_tag }}}}\n'
            "RUN cat /etc/parent-marker > /etc/child-marker\n",
            depends=[parent],
            files={"test.sh": test},
        )
    return parent, good, bad


def session_tags(client: docker.DockerClient, session: TestSession) -> list[str]:
    return [t for t in cleanup.tags_under(client, "") if t.endswith(session.suffix)]


@pytest.fixture
def site(make_site: SiteFactory) -> Site:
    return make_site()


@pytest.fixture
def options(site: Site) -> SessionOptions:
    # The site's config has the registry's credentials: publishing is off all the same.
    return SessionOptions(str(site.config()), dict(os.environ), jobs=2)


@pytest.fixture
def marks(tmp_path: Path) -> str:
    return str(tmp_path / "marks")


@pytest.fixture
def sessions(site: Site, options: SessionOptions, marks: str) -> Iterator[list[TestSession]]:
    """The sessions a test opens, closed after it whatever happened."""
    made: list[TestSession] = []
    yield made
    for session in made:
        session.close()


def open_session(
    made: list[TestSession], site: Site, options: SessionOptions, marks: str
) -> TestSession:
    session = TestSession(str(site.tree), options, marks=marks)
    made.append(session)
    return session


def test_one_run_builds_the_parent_and_both_children_once(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, good, bad = write_family(site)
    session = open_session(sessions, site, options, marks)
    results = session.build([good, bad])
    assert set(results) == {parent, good, bad}
    versions = {"parent": "1.0-1", "pass": "2.0", "fail": "2.0"}
    for short, version in versions.items():
        result = results[site.name(short)]
        assert result.build is BuildOutcome.BUILT, result.message
        assert result.label == site.label(short, version + session.suffix)
    assert results[parent].verify is VerifyOutcome.NO_TEST
    assert results[good].verify is VerifyOutcome.PASSED
    assert results[bad].verify is VerifyOutcome.FAILED
    assert "verification failed" in results[bad].message
    assert "the marker is not what it should be" in results[bad].message  # the log's tail
    assert results[bad].log == str(Path(session.run_dir, f"{bad}.log"))
    assert Path(session.run_dir, f"{bad}.log").is_file()
    assert sorted(session_tags(docker_client, session)) == sorted(r.label for r in results.values())
    # The children were built FROM the session's parent.
    child = docker_client.containers.run(
        results[good].label, ["cat", "/etc/child-marker"], remove=True
    )
    assert child == b"parent\n"
    assert site.catalog() == ["base/busybox"]  # nothing published
    logs = {name: Path(session.run_dir, f"{name}.log").read_text() for name in (parent, good, bad)}

    again = session.build([parent, good, bad])
    assert again == results
    assert {n: Path(session.run_dir, f"{n}.log").read_text() for n in logs} == logs

    session.close()
    assert session_tags(docker_client, session) == []
    session.close()  # again: nothing to do


def test_a_failing_parent_leaves_its_children_unbuilt(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, good, bad = write_family(site, parent_fails=True)
    session = open_session(sessions, site, options, marks)
    results = session.build([good])
    assert results[parent].build is BuildOutcome.FAILED
    assert "false" in results[parent].message
    assert results[good].build is BuildOutcome.PARENT_FAILED
    assert results[good].verify is VerifyOutcome.NOT_RUN
    assert results[good].message == f"not built: parent image {parent} was not built"
    assert not Path(session.run_dir, f"{good}.log").exists()
    # Asked later, the other child is not built either, and no run starts for it.
    later = session.build([bad])
    assert later[bad].build is BuildOutcome.PARENT_FAILED
    assert not Path(session.run_dir, f"{bad}.log").exists()
    assert session_tags(docker_client, session) == []


def test_probes_and_close_removing_the_session_containers(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, good, _ = write_family(site)
    session = open_session(sessions, site, options, marks)
    label = session.build([parent])[parent].label
    probe = session.probe(parent)
    assert probe.run(["cat", "/etc/parent-marker"]).stdout == "parent\n"
    assert probe.file("/etc/parent-marker") == b"parent\n"
    assert probe.digest == docker_client.images.get(label).id
    with pytest.raises(DockerPkgError, match=f"image {good} is not built yet"):
        session.probe(good)
    container = docker_client.containers.create(
        label, ["true"], labels=dict(session.container_labels)
    )
    other = docker_client.containers.create(label, ["true"])  # not the session's
    try:
        session.close()
        with pytest.raises(docker.errors.NotFound):
            container.reload()
        other.reload()
        # The session's tag goes; the user's container keeps its image, untagged.
        assert session_tags(docker_client, session) == []
    finally:
        other.remove(force=True)
        if _exists(container):
            container.remove(force=True)


def _exists(container: Container) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return True


_KILLED = """
import os, sys, time
from dockerpkg.api.testsession import SessionOptions, TestSession
tree, config, marks, name = sys.argv[1:]
session = TestSession(tree, SessionOptions(config, dict(os.environ)), marks=marks)
result = session.build([name])[name]
print(result.build.value, result.label, flush=True)
time.sleep(120)
"""


def test_the_next_session_removes_what_a_killed_one_left(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, good, _ = write_family(site)
    killed = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(site.tree), options.config_path or "", marks, parent],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert killed.stdout is not None
        outcome, label = killed.stdout.readline().split()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert outcome == "built"
    assert label in cleanup.tags_under(docker_client, "")
    dead_id = label.rpartition("-pytest-")[2]

    session = open_session(sessions, site, options, marks)
    results = session.build([good])
    assert results[good].build is BuildOutcome.BUILT
    assert session.warnings == [
        f"removed what test session {dead_id} left (it was killed): {label}"
    ]
    assert label not in cleanup.tags_under(docker_client, "")
    assert os.listdir(marks) == [f"{session.id}.live"]


def test_two_live_sessions_keep_their_own_tags(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, good, _ = write_family(site)
    first = open_session(sessions, site, options, marks)
    second = open_session(sessions, site, options, marks)
    assert first.id != second.id
    mine = first.build([parent])[parent].label
    theirs = second.build([good])
    assert second.warnings == []
    assert mine != theirs[parent].label
    assert session_tags(docker_client, first) == [mine]
    second.close()
    assert session_tags(docker_client, first) == [mine]
    assert session_tags(docker_client, second) == []
    first.close()
    assert session_tags(docker_client, first) == []


_TERMINATED = """
import os, sys
from dockerpkg.api.testsession import SessionOptions, TestSession
tree, config, marks, run_dir, name = sys.argv[1:]
options = SessionOptions(config, dict(os.environ), run_dir=run_dir)
with TestSession(tree, options, marks=marks) as session:
    print(session.suffix, flush=True)
    try:
        session.build([name])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
print("closed", flush=True)
"""


def test_sigterm_during_a_build_stops_it_and_close_removes_its_tags(
    site: Site, options: SessionOptions, marks: str, docker_client: docker.DockerClient
) -> None:
    parent, _, _ = write_family(site)
    slow = site.name("slow")
    write_image(
        site.tree,
        slow,
        "1",
        f'FROM {{{{ "{parent}" | image_tag }}}}\nRUN sleep 120\n',
        depends=[parent],
    )
    run_dir = Path(site.work, "run")
    script = [_TERMINATED, str(site.tree), options.config_path or "", marks, str(run_dir), slow]
    session = subprocess.Popen([sys.executable, "-c", *script], stdout=subprocess.PIPE, text=True)
    try:
        assert session.stdout is not None
        suffix = session.stdout.readline().strip()
        deadline = time.monotonic() + 120
        while not (run_dir / f"{slow}.log").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the slow build is under way
        session.send_signal(signal.SIGTERM)
        out, _ = session.communicate(timeout=60)
    finally:
        session.kill()
    assert out.split() == ["interrupted", "closed"]
    assert session.returncode == 0
    assert [t for t in cleanup.tags_under(docker_client, "") if t.endswith(suffix)] == []
    assert os.listdir(marks) == []


def test_a_closed_session_leaves_the_classic_builders_cache(
    site: Site, options: SessionOptions, marks: str, sessions: list[TestSession]
) -> None:
    name = site.name("cached")
    # A step no other build ran: the first session cannot find it in the cache.
    write_image(site.tree, name, "1", f"{FROM_BASE}RUN echo {site.prefix} > /etc/marker\n")
    classic = attrs.evolve(options, env={**options.env, "DOCKER_BUILDKIT": "0"})
    logs = []
    for _ in range(2):
        session = open_session(sessions, site, classic, marks)
        assert session.build([name])[name].build is BuildOutcome.BUILT
        session.close()
        logs.append(Path(session.run_dir, f"{name}.log").read_text(encoding="utf-8"))
    assert "Using cache" not in logs[0]
    assert "Using cache" in logs[1]  # the tag went, the layer beneath stayed


_WAITING = """
import os, signal, sys, time
import docker
from dockerpkg.api.testsession import SessionOptions, TestSession
tree, config, marks, name = sys.argv[1:]
try:
    with TestSession(tree, SessionOptions(config, dict(os.environ)), marks=marks) as session:
        label = session.build([name])[name].label
        # As a check's setup commands leave it: an untagged image with the session's label.
        client = docker.from_env()
        made = client.containers.create(label, ["true"], labels=dict(session.container_labels))
        committed = made.commit().id
        print(session.suffix, committed, flush=True)
        time.sleep(120)  # outside any run: a test, a check
except KeyboardInterrupt:
    print("interrupted", flush=True)
print("closed", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""


def _image_exists(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _waiting_session(
    site: Site, options: SessionOptions, marks: str, name: str
) -> subprocess.Popen[str]:
    script = [_WAITING, str(site.tree), options.config_path or "", marks, name]
    return subprocess.Popen([sys.executable, "-c", *script], stdout=subprocess.PIPE, text=True)


def test_sigterm_outside_a_run_closes_the_session(
    site: Site, options: SessionOptions, marks: str, docker_client: docker.DockerClient
) -> None:
    parent, _, _ = write_family(site)
    session = _waiting_session(site, options, marks, parent)
    try:
        assert session.stdout is not None
        suffix, committed = session.stdout.readline().split()
        assert _image_exists(docker_client, committed)
        session.send_signal(signal.SIGTERM)
        out, _ = session.communicate(timeout=120)
    finally:
        session.kill()
        session.wait()
    assert out.split() == ["interrupted", "closed", "True"]
    assert session.returncode == 0
    assert [t for t in cleanup.tags_under(docker_client, "") if t.endswith(suffix)] == []
    assert not _image_exists(docker_client, committed)
    assert os.listdir(marks) == []


def test_the_next_session_removes_a_killed_ones_committed_images(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
    docker_client: docker.DockerClient,
) -> None:
    parent, _, _ = write_family(site)
    killed = _waiting_session(site, options, marks, parent)
    try:
        assert killed.stdout is not None
        suffix, committed = killed.stdout.readline().split()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert _image_exists(docker_client, committed)
    session = open_session(sessions, site, options, marks)
    session.build([parent])
    assert len(session.warnings) == 1
    assert session.warnings[0].endswith(", 1 committed image(s)")
    assert not _image_exists(docker_client, committed)
    assert [t for t in cleanup.tags_under(docker_client, "") if t.endswith(suffix)] == []


def test_a_registry_that_does_not_answer_does_not_stop_a_session(
    site: Site,
    options: SessionOptions,
    marks: str,
    sessions: list[TestSession],
) -> None:
    # A laptop away from the production registry: the session asks it nothing (no registry
    # holds a session's tags), and the base's pull falls back to the daemon's copy.
    parent, good, _ = write_family(site)
    first = open_session(sessions, site, options, marks)
    assert first.build([parent])[parent].build is BuildOutcome.BUILT  # pulls the base
    site.registry.stop()
    try:
        second = open_session(sessions, site, options, marks)
        results = second.build([good])
    finally:
        site.registry.start()
    assert results[parent].build is BuildOutcome.BUILT, results[parent].message
    assert results[good].build is BuildOutcome.BUILT, results[good].message
    assert results[good].verify is VerifyOutcome.PASSED, results[good].message
    assert results[good].label.endswith(second.suffix)
