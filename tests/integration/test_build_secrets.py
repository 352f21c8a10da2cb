"""Build secrets through the BuildKit session, against the real daemon and registry: the
build gets them; the plan, the output, the report, the logs and the image never hold them."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from tests.integration.test_build import FROM_BASE, Outcome, Site
from tests.support.second_daemon import second_daemon_or_skip
from tests.support.services import running_or_skip
from tests.support.sshd import ssh_engine
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")
TOKEN = "tok-8f2a91c4e7b3-value"  # what the test looks for everywhere
NETRC = "machine pypi.example.org login bot password n3trc-9d1e44b0\n"


def secret_config(site: Site, *, engine: str = "buildkit") -> Path:
    config = site.config()
    (site.work / "netrc.txt").write_text(NETRC, encoding="utf-8")
    config.write_text(
        config.read_text(encoding="utf-8")
        + f"build_engine: {engine}\nsecrets:\n  tok: {{env: BUILD_TOKEN}}\n"
        "  netrc: {file: netrc.txt}\n",
        encoding="utf-8",
    )
    return config


def write_token_image(site: Site, files: dict[str, str] | None = None) -> None:
    """The `tok` image: its build writes the digest of secret `tok` to /h."""
    write_image(
        site.tree,
        site.name("tok"),
        "1.0",
        FROM_BASE + "RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /h\n",
        files=files or {},
    )


def write_tree(site: Site) -> None:
    write_token_image(site)
    write_image(
        site.tree,
        site.name("netrc"),
        "1.0",
        FROM_BASE
        + "RUN --mount=type=secret,id=netrc,target=/root/.netrc wc -c < /root/.netrc > /n\n",
    )


def everything_of(client: docker.DockerClient, label: str) -> bytes:
    """The image as `docker save` writes it (layers, config, history) and its inspect."""
    image = client.images.get(label)
    archive = b"".join(image.save())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = b"".join(
            tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".tar")
        )
    return archive + members + json.dumps(image.attrs).encode()


def test_secrets_reach_the_build_and_nothing_else(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUILD_TOKEN", TOKEN)
    site = make_site()
    write_tree(site)
    config = secret_config(site)
    plan = dockerpkg("-c", config, "plan", "--json", site.tree)
    assert plan.status == 0, plan.text
    data = json.loads(plan.out)
    assert {s["id"]: s["source"] for s in data["secrets"]} == {
        "tok": "env:BUILD_TOKEN",
        "netrc": f"file:{site.work / 'netrc.txt'}",
    }
    report, run_dir = site.work / "report.json", site.work / "run"
    built = dockerpkg("-c", config, "build", "--report", report, "--run-dir", run_dir, site.tree)
    assert built.status == 0, built.text
    run = docker_client.containers.run
    assert run(site.label("tok", "1.0"), ["cat", "/h"], remove=True).decode().strip() == (
        hashlib.sha256(TOKEN.encode()).hexdigest()
    )
    assert run(site.label("netrc", "1.0"), ["cat", "/n"], remove=True).decode().strip() == str(
        len(NETRC)
    )
    places = [plan.text.encode(), built.text.encode(), report.read_bytes()]
    places += [log.read_bytes() for log in run_dir.rglob("*") if log.is_file()]
    places += [everything_of(docker_client, site.label(n, "1.0")) for n in ("tok", "netrc")]
    for secret in (TOKEN, "n3trc-9d1e44b0"):
        assert not any(secret.encode() in place for place in places), secret


def test_a_secret_given_for_one_run(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTHER_TOKEN", "another-value")
    site = make_site()
    write_token_image(site)
    config = site.config()
    missing = dockerpkg("-c", config, "plan", "--offline", site.tree)
    assert missing.status == 1
    assert f"{site.name('tok')}/Dockerfile.template:2: error: secret 'tok' is not configured" in (
        missing.err
    )
    built = dockerpkg("-c", config, "build", "--secret", "id=tok,env=OTHER_TOKEN", site.tree)
    assert built.status == 0, built.text
    digest = docker_client.containers.run(site.label("tok", "1.0"), ["cat", "/h"], remove=True)
    assert digest.decode().strip() == hashlib.sha256(b"another-value").hexdigest()


def test_the_classic_builder_is_refused_when_planning(
    make_site: Callable[..., Site], dockerpkg: Callable[..., Outcome]
) -> None:
    site = make_site()
    write_tree(site)
    refused = dockerpkg("-c", secret_config(site, engine="classic"), "plan", "--offline", site.tree)
    assert refused.status == 1
    assert "needs BuildKit; the classic builder has no build secrets" in refused.err


def test_docker_buildkit_0_never_fails_a_secret_build_half_way(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine is decided when planning: with DOCKER_BUILDKIT=0 a secret mount is refused
    before anything runs; a plan made for BuildKit (saved, or forced by --engine) builds with
    BuildKit whatever DOCKER_BUILDKIT says, and its build sees the secret."""
    monkeypatch.setenv("BUILD_TOKEN", TOKEN)
    site = make_site()
    write_token_image(site)
    template = site.tree / site.name("tok") / "Dockerfile.template"
    other = site.tree / site.name("tok2")
    other.mkdir()
    (other / "Dockerfile.template").write_text(template.read_text(encoding="utf-8"))
    changelog = (template.parent / "changelog").read_text(encoding="utf-8")
    (other / "changelog").write_text(changelog.replace(site.name("tok"), site.name("tok2"), 1))
    config = secret_config(site)
    expected = hashlib.sha256(TOKEN.encode()).hexdigest()

    def secret_seen(short: str) -> str:
        done = docker_client.containers.run(site.label(short, "1.0"), ["cat", "/h"], remove=True)
        return str(done.decode().strip())

    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    refused = dockerpkg("-c", config, "build", site.tree)
    assert refused.status == 1, refused.text
    assert f"{site.name('tok')}/Dockerfile.template:2: error: RUN --mount=type=secret" in (
        refused.err
    )
    assert "needs BuildKit; the classic builder has no build secrets" in refused.err
    assert "Logs:" not in refused.err  # no run started
    assert not docker_client.images.list(name=site.label("tok", "1.0").rsplit(":", 1)[0])

    monkeypatch.delenv("DOCKER_BUILDKIT")
    saved = site.work / "plan.json"
    select = ["--select", f"*/{site.name('tok')}:*"]
    made = dockerpkg("-c", config, "plan", *select, "--out", saved, site.tree)
    assert made.status == 0, made.text
    assert json.loads(saved.read_text(encoding="utf-8"))["options"]["engine"] == "buildkit"
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    applied = dockerpkg("-c", config, "apply", saved)
    assert applied.status == 0, applied.text
    assert secret_seen("tok") == expected

    forced = dockerpkg("-c", config, "build", "--engine", "buildkit", site.tree)
    assert forced.status == 0, forced.text
    assert "engine: buildkit" in forced.out
    assert secret_seen("tok2") == expected


def test_a_secret_reaches_a_build_on_a_tls_engine(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session goes over tcp:// with TLS, with the builder's own certificate files; the
    verification's docker CLI reaches the engine too, though its files are not named as the
    CLI wants them (ca.crt, client.crt, client.key)."""
    monkeypatch.setenv("BUILD_TOKEN", TOKEN)
    site = make_site()
    write_token_image(site, files={"test.sh": '#!/bin/sh\nset -e\ndocker run --rm "$1" cat /h\n'})
    with second_daemon_or_skip(tls=True) as engine:
        config = secret_config(site)
        tls = engine.tls_files
        config.write_text(
            config.read_text(encoding="utf-8")
            + f"builders:\n  - url: {engine.tls_url}\n    tls: {{ca: {tls['ca']}, "
            f"cert: {tls['cert']}, key: {tls['key']}}}\n",
            encoding="utf-8",
        )
        report = site.work / "report.json"
        built = dockerpkg("-c", config, "build", "--report", report, site.tree)
        assert built.status == 0, built.text
        verified = [s for s in json.loads(report.read_text())["steps"] if s["op"] == "verify"]
        assert [s["outcome"] for s in verified] == ["succeeded"], verified
        with contextlib.closing(engine.client()) as client:
            done = client.containers.run(site.label("tok", "1.0"), ["cat", "/h"], remove=True)
    assert done.decode().strip() == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_a_secret_reaches_a_build_on_an_ssh_engine(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session goes through `ssh HOST docker system dial-stdio`, as the build does."""
    monkeypatch.setenv("BUILD_TOKEN", TOKEN)
    site = make_site()
    write_token_image(site)
    with running_or_skip(ssh_engine()) as url:
        config = secret_config(site)
        config.write_text(
            config.read_text(encoding="utf-8") + f"builders:\n  - url: {url}\n",
            encoding="utf-8",
        )
        built = dockerpkg("-c", config, "build", site.tree)
    assert built.status == 0, built.text
    done = docker_client.containers.run(site.label("tok", "1.0"), ["cat", "/h"], remove=True)
    assert done.decode().strip() == hashlib.sha256(TOKEN.encode()).hexdigest()


def test_a_secret_file_made_a_fifo_after_planning_fails_its_build_at_once(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A FIFO where the secret file was is refused when the build is served (it used to make
    the build wait for a writer for ever, deaf to SIGTERM and --build-timeout); the image
    using it fails, naming why, and the other one is built."""
    monkeypatch.setenv("BUILD_TOKEN", TOKEN)
    site = make_site()
    write_tree(site)
    config = secret_config(site)
    saved, report = site.work / "plan.json", site.work / "report.json"
    planned = dockerpkg("-c", config, "plan", "--out", saved, site.tree)
    assert planned.status == 0, planned.text
    netrc = site.work / "netrc.txt"
    netrc.unlink()
    os.mkfifo(netrc)
    started = time.monotonic()
    # Another process, bounded: a run that waits on the FIFO must fail this test, not hang it.
    argv = ["-c", str(config), "apply", "--report", str(report), str(saved)]
    applied = subprocess.run(
        [sys.executable, "-m", "dockerpkg", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert time.monotonic() - started < 45
    assert applied.returncode == 1, applied.stdout + applied.stderr
    steps = {(s["op"], s["image"]): s for s in json.loads(report.read_text())["steps"]}
    failed = steps["build", site.name("netrc")]
    assert failed["outcome"] == "failed"
    assert f"secret 'netrc' (file:{netrc}): is a FIFO, not a regular file" in failed["error"]
    assert steps["build", site.name("tok")]["outcome"] == "succeeded"
    tags = {tag for image in docker_client.api.images() for tag in image.get("RepoTags") or ()}
    assert site.label("netrc", "1.0") not in tags
