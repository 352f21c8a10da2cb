"""One tree over two Docker engines, the registry between them.

The engines are the shared daemon (never stopped) and a second dockerd of the test's own
(tests/support/second_daemon.py), which the failover test kills. Both reach the test registry
on 127.0.0.1, which dockerd treats as an insecure (plain HTTP) registry by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from tests.support import cleanup, services
from tests.support.second_daemon import SecondDaemon, second_daemon_or_skip
from tests.support.services import Registry
from tests.support.trees import BASE_IMAGE, unique_prefix, write_image

MAIN = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))


@pytest.fixture
def second_daemon(busybox_base: str) -> Iterator[SecondDaemon]:
    with second_daemon_or_skip() as daemon:
        yield daemon


@pytest.fixture
def base_in_registry(
    docker_client: docker.DockerClient, registry: Registry, busybox_base: str
) -> Iterator[str]:
    """The busybox base, published in the test registry (each builder pulls it from there);
    every image of the registry is removed from the shared daemon afterwards."""
    ref = services.tag_image(docker_client, busybox_base, registry.ref(BASE_IMAGE))
    services.push_image(docker_client, ref)
    yield ref
    cleanup.remove_tags_under(docker_client, registry.host + "/")


def write_config(path: Path, registry: Registry, base: str) -> Path:
    # An anonymous registry takes any login: publishing is on.
    path.write_text(
        f"registry: {registry.host}\nusername: user\npassword: secret\nbase_images:\n  - {base}\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def dockerpkg(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dockerpkg", *(str(a) for a in args)]


def labels_on(client: docker.DockerClient) -> set[str]:
    return {tag for image in client.api.images() for tag in image.get("RepoTags") or ()}


def steps(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(step["op"], step["image"]): step for step in report["steps"]}


def test_two_builders_build_one_tree(
    tmp_path: Path,
    second_daemon: SecondDaemon,
    registry: Registry,
    base_in_registry: str,
    docker_client: docker.DockerClient,
) -> None:
    """Two branches build at once on the two engines; the join pulls its parents from the
    registry; verification runs on the engine that built the image; a second run plans
    nothing."""
    prefix = unique_prefix()
    a1, a2, b1, join = (f"{prefix}-{n}" for n in ("a1", "a2", "b1", "join"))
    tree = tmp_path / "tree"
    write_image(tree, a1, "1.0", 'FROM {{ "busybox" | image_tag }}\nRUN sleep 2 && echo a1 >/a1\n')
    write_image(
        tree, a2, "1.0", f'FROM {{{{ "{a1}" | image_tag }}}}\nRUN echo a2 >/a2\n', depends=[a1]
    )
    write_image(
        tree,
        b1,
        "1.0",
        'FROM {{ "busybox" | image_tag }}\nRUN sleep 2 && echo b1 >/b1\n',
        # Runs `docker` against the builder that built the image: elsewhere it does not exist
        # yet (it is published only after its verification).
        files={"test.sh": '#!/bin/sh\nexec docker run --rm "$1" cat /b1\n'},
    )
    write_image(
        tree,
        join,
        "1.0",
        f'FROM {{{{ "{a2}" | image_tag }}}}\nCOPY --from={{{{ "{b1}" | image_tag }}}} /b1 /b1\n',
        depends=[a2, b1],
    )
    config = write_config(tmp_path / "config.yaml", registry, base_in_registry)
    builders = f"{MAIN}=1,{second_daemon.host}=1"
    plan = subprocess.run(
        dockerpkg("-c", config, "plan", "--json", "--builders", builders, tree),
        capture_output=True,
        text=True,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["builders"] == [
        {"url": MAIN, "slots": 1, "tls": False},
        {"url": second_daemon.host, "slots": 1, "tls": False},
    ]
    report_file, run_dir = tmp_path / "report.json", tmp_path / "run"
    run = subprocess.run(
        dockerpkg(
            "-c",
            config,
            "build",
            "--builders",
            builders,
            "--report",
            report_file,
            "--run-dir",
            run_dir,
            tree,
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"builders: {MAIN} (1 slot), {second_daemon.host} (1 slot)" in run.stdout
    report = json.loads(report_file.read_text(encoding="utf-8"))
    outcome = steps(report)
    assert all(s["outcome"] == "succeeded" for s in report["steps"]), report["steps"]
    built_on = {name: outcome[("build", name)]["builder"] for name in (a1, a2, b1, join)}
    assert set(built_on.values()) == {MAIN, second_daemon.host}, built_on
    # A child goes where its parent is; verification and publication follow the build.
    assert built_on[a2] == built_on[a1]
    for name in (a1, a2, b1, join):
        assert outcome[("verify", name)]["builder"] == built_on[name]
        assert outcome[("publish", name)]["builder"] == built_on[name]
    assert outcome[("verify", b1)]["detail"] is None  # its test.sh ran, and passed
    # The join waited for the parent built elsewhere to be published, then pulled it.
    assert outcome[("build", join)]["waited"] >= 0
    other = b1 if built_on[join] == built_on[a2] else a2
    assert f"== pull {registry.ref(other)}:1.0" in (run_dir / f"{join}.log").read_text()
    header = next(line for line in run.stdout.splitlines() if line.startswith("image "))
    assert header.split()[-2:] == ["builder", "wait"]
    # Each engine holds what it built.
    with contextlib.closing(second_daemon.client()) as second:
        engines = {MAIN: labels_on(docker_client), second_daemon.host: labels_on(second)}
    for name, where in built_on.items():
        assert f"{registry.ref(name)}:1.0" in engines[where], (name, where)
    again = subprocess.run(
        dockerpkg("-c", config, "plan", "--builders", builders, "--detailed-exitcode", tree),
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Plan: nothing to do." in again.stdout


def test_lost_builder_moves_its_images(
    tmp_path: Path,
    second_daemon: SecondDaemon,
    registry: Registry,
    base_in_registry: str,
    docker_client: docker.DockerClient,
) -> None:
    """The second engine dies while it builds: its image is built again on the shared one,
    the rest finishes there, and the report says what moved where."""
    prefix = unique_prefix()
    slow, fast, child = f"{prefix}-a-slow", f"{prefix}-b-fast", f"{prefix}-c-child"
    tree = tmp_path / "tree"
    write_image(
        tree,
        slow,
        "1.0",
        'FROM {{ "busybox" | image_tag }}\n'
        f"RUN trap 'exit 143' TERM; echo {prefix}-running; sleep 4 & wait\n",
    )
    write_image(tree, fast, "1.0", 'FROM {{ "busybox" | image_tag }}\nRUN true\n')
    write_image(
        tree, child, "1.0", f'FROM {{{{ "{slow}" | image_tag }}}}\nRUN true\n', depends=[slow]
    )
    config = write_config(tmp_path / "config.yaml", registry, base_in_registry)
    report_file = tmp_path / "report.json"
    # The second engine first: the first ready image (the slow one) goes there.
    builders = f"{second_daemon.host}=1,{MAIN}=1"
    process = subprocess.Popen(
        dockerpkg(
            "-c",
            config,
            "--info",
            "apply",
            "--builders",
            builders,
            "--report",
            report_file,
            tree,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith(f"{slow} | ") and f"{prefix}-running" in line:
            break
    else:
        raise AssertionError("the slow build never ran")
    second_daemon.kill()
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, out + err
    report = json.loads(report_file.read_text(encoding="utf-8"))
    outcome = steps(report)
    assert all(s["outcome"] == "succeeded" for s in report["steps"]), report["steps"]
    assert [(m["image"], m["lost"], m["to"]) for m in report["moves"]] == [
        (slow, second_daemon.host, MAIN)
    ]
    assert [lost.split(" ")[0] for lost in report["lost_builders"]] == [second_daemon.host]
    for name in (slow, child):
        assert outcome[("build", name)]["builder"] == MAIN
    assert "Moved:" in out
    assert f"  {slow}: from {second_daemon.host} to {MAIN}" in out
    assert f"moved   {slow}: builder {second_daemon.host} lost" in err
    assert f"{registry.ref(child)}:1.0" in labels_on(docker_client)


def test_every_builder_lost(
    tmp_path: Path, second_daemon: SecondDaemon, registry: Registry, base_in_registry: str
) -> None:
    """One builder never answers, the other dies mid-run: the run fails cleanly, with the
    report, and what was published stays published."""
    prefix = unique_prefix()
    fast, slow = f"{prefix}-a-fast", f"{prefix}-b-slow"
    tree = tmp_path / "tree"
    write_image(tree, fast, "1.0", 'FROM {{ "busybox" | image_tag }}\nRUN true\n')
    write_image(
        tree,
        slow,
        "1.0",
        'FROM {{ "busybox" | image_tag }}\n'
        f"RUN trap 'exit 143' TERM; echo {prefix}-running; sleep 30 & wait\n",
    )
    config = write_config(tmp_path / "config.yaml", registry, base_in_registry)
    report_file = tmp_path / "report.json"
    nowhere = f"unix://{tmp_path}/nothing-listens-here.sock"
    process = subprocess.Popen(
        dockerpkg(
            "-c",
            config,
            "--info",
            "apply",
            "--builders",
            f"{second_daemon.host}=1,{nowhere}",
            "--report",
            report_file,
            tree,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # Killed once the fast image is published and the slow one builds.
    published = running = False
    for line in process.stderr:
        published = published or f"done    publish {fast}" in line
        running = running or (line.startswith(f"{slow} | ") and f"{prefix}-running" in line)
        if published and running:
            break
    else:
        raise AssertionError(f"never saw both (published: {published}, running: {running})")
    second_daemon.kill()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1, out + err
    assert "Traceback" not in out + err
    outcome = steps(json.loads(report_file.read_text(encoding="utf-8")))
    assert outcome[("publish", fast)]["outcome"] == "succeeded"
    assert outcome[("build", slow)]["outcome"] == "failed"
    assert outcome[("build", slow)]["error"].startswith("no builder left: ")
    assert outcome[("publish", slow)]["outcome"] == "skipped"
    assert f"Lost builders: {nowhere} (cannot reach the builder" in out
    found = requests.head(
        f"{registry.url}/v2/{fast}/manifests/1.0",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert found.status_code == 200


def test_two_builders_all_or_nothing(
    tmp_path: Path,
    second_daemon: SecondDaemon,
    registry: Registry,
    base_in_registry: str,
) -> None:
    """Under all_or_nothing a child built on the other engine pulls its parent from the
    staging repository (nothing is at the parent's label yet); then everything moves."""
    prefix = unique_prefix()
    a1, b1, join = (f"{prefix}-{n}" for n in ("a1", "b1", "join"))
    tree = tmp_path / "tree"
    for name in (a1, b1):
        write_image(
            tree,
            name,
            "1.0",
            f'FROM {{{{ "busybox" | image_tag }}}}\nRUN sleep 2 && echo {name} >/x\n',
        )
    write_image(
        tree,
        join,
        "1.0",
        f'FROM {{{{ "{a1}" | image_tag }}}}\nCOPY --from={{{{ "{b1}" | image_tag }}}} /x /b1\n',
        depends=[a1, b1],
    )
    config = write_config(tmp_path / "config.yaml", registry, base_in_registry)
    builders = f"{MAIN}=1,{second_daemon.host}=1"
    report_file, run_dir = tmp_path / "report.json", tmp_path / "run"
    run = subprocess.run(
        dockerpkg(
            "-c",
            config,
            "build",
            "--builders",
            builders,
            "--publish",
            "all_or_nothing",
            "--report",
            report_file,
            "--run-dir",
            run_dir,
            tree,
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = steps(json.loads(report_file.read_text(encoding="utf-8")))
    built_on = {name: outcome[("build", name)]["builder"] for name in (a1, b1, join)}
    assert set(built_on.values()) == {MAIN, second_daemon.host}, built_on
    other = b1 if built_on[join] == built_on[a1] else a1
    log = (run_dir / f"{join}.log").read_text()
    assert f"== pull {registry.ref('dockerpkg-staging/' + other)}:1.0" in log
    for name in (a1, b1, join):
        tags = requests.get(f"{registry.url}/v2/{name}/tags/list", timeout=10).json()["tags"]
        assert sorted(tags) == ["1.0", "latest"], name
        staged = requests.get(
            f"{registry.url}/v2/dockerpkg-staging/{name}/tags/list", timeout=10
        ).json()
        assert not staged.get("tags"), (name, staged)
