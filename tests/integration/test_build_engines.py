"""BuildKit (the default) and the classic builder, with the real daemon and registry: both
build the same tree into the same images; their logs and their few differences as docs/config.md
states them.

The world (a registry holding the busybox base image, unique names, cleanup) is test_build's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import docker
import pytest

from dockerpkg.effects import daemon
from tests.integration.test_build import (
    FROM_BASE,
    NAMESPACE,
    Outcome,
    SiteFactory,
    assert_no_traceback,
    container_output,
    read_json,
    steps_by_key,
)
from tests.support.trees import write_config, write_image

pytestmark = pytest.mark.usefixtures("isolated_home")


@pytest.mark.parametrize(
    ("engine", "environment"),
    [("buildkit", None), ("classic", None), ("classic", "1"), ("buildkit", "0")],
)
def test_same_images_from_either_builder(
    engine: str,
    environment: str | None,
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The config picks the builder; DOCKER_BUILDKIT overrides it for the run."""
    if environment is not None:
        monkeypatch.setenv("DOCKER_BUILDKIT", environment)
    else:
        monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    used = {None: engine, "1": "buildkit", "0": "classic"}[environment]
    site = make_site()
    top, child = site.name("top"), site.name("child")
    write_image(
        site.tree,
        top,
        "1.0",
        FROM_BASE + "COPY hello.txt /hello.txt\nRUN echo marker-$(cat /hello.txt) > /made\n",
        files={"hello.txt": "hi\n", ".dockerignore": "secret.txt\n", "secret.txt": "no\n"},
    )
    write_image(
        site.tree,
        child,
        "1.0",
        f'FROM {{{{ "{top}" | image_tag }}}}\nUSER {{{{ "nobody" | uid }}}}\n'
        'RUN test "$(id -u)" = 65534\n',
        depends=[top],
    )
    creds = site.credentials
    config = write_config(
        site.work / "config.yaml",
        site.registry,
        namespace=NAMESPACE,
        username=creds.username,
        password=creds.password,
        extra={"build_engine": engine},
    )
    run_dir = site.work / "run"
    report = site.work / "report.json"
    outcome = dockerpkg("-c", config, "build", "--run-dir", run_dir, "--report", report, site.tree)
    assert outcome.status == 0, outcome.text
    assert_no_traceback(outcome)
    steps = steps_by_key(read_json(report))
    assert all(steps[op, top]["outcome"] == "succeeded" for op in ("build", "publish"))

    label = site.label("top", "1.0")
    assert container_output(docker_client, label, "cat", "/made") == "marker-hi\n"
    listing = container_output(docker_client, label, "ls", "/").split()
    assert "hello.txt" in listing
    assert "secret.txt" not in listing  # .dockerignore
    inspected = daemon.inspect(docker_client.api, label)
    assert "org.dockerpkg.definition" in inspected["Config"]["Labels"]
    assert container_output(docker_client, site.label("child", "1.0"), "id", "-u") == "65534\n"
    log = (run_dir / f"{top}.log").read_text(encoding="utf-8")
    if used == "buildkit":
        assert re.search(r"^#\d+ \[2/3\] COPY hello.txt /hello.txt$", log, re.MULTILINE), log
        assert re.search(r"^#\d+ DONE \d+\.\d+s$", log, re.MULTILINE), log
        assert "Step 1/" not in log
    else:
        assert "Step 1/4 : FROM" in log, log
        assert "Removing intermediate container" in log
    # `latest` points at the version's manifest in the registry.
    with site.registry_client() as client:
        path = f"{NAMESPACE}/{top}"
        assert client.manifest_digest(path, "latest") == client.manifest_digest(path, "1.0")
        assert steps["publish", top]["detail"] == client.manifest_digest(path, "1.0")


def test_numeric_user_unknown_to_the_image(
    make_site: SiteFactory,
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BuildKit of dockerd 20.10 needs /etc/passwd for a numeric USER: in an image without one
    the failure says what to do; the classic builder takes it."""
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    site = make_site()
    name = site.name("stranger")
    write_image(
        site.tree,
        name,
        "1.0",
        FROM_BASE + 'RUN rm /etc/passwd\nUSER 4242\nRUN test "$(id -u)" = 4242\n',
    )
    config = site.config()
    failed = dockerpkg("-c", config, "build", "--run-dir", site.work / "run1", site.tree)
    assert failed.status == 1, failed.text
    assert_no_traceback(failed)
    assert "unable to find user 4242" in failed.out
    assert "write USER uid:gid, give the image an /etc/passwd, or set `build_engine: classic`" in (
        failed.out
    )

    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    built = dockerpkg("-c", config, "build", "--run-dir", site.work / "run2", site.tree)
    assert built.status == 0, built.text
    assert container_output(docker_client, site.label("stranger", "1.0"), "id", "-u") == "4242\n"
