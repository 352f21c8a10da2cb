"""SSH agent forwarding through the BuildKit session, against the real daemon: a build's
`RUN --mount=type=ssh` step lists the keys of an agent the test started (`ssh-add -l` in the
build), from the run's SSH_AUTH_SOCK or from a key file dockerpkg starts an agent for; the
private key is found nowhere; without an agent configured, planning fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import docker
import pytest

from tests.integration.test_build import Outcome, Site
from tests.integration.test_build_secrets import everything_of
from tests.support import services
from tests.support.services import BUSYBOX_TAG, ServiceUnavailableError
from tests.support.trees import write_image

pytestmark = pytest.mark.usefixtures("isolated_home")
TOOLS_TAG = "dockerpkg-test/ssh-tools:1.0"
TOOLS_BASE = "base/ssh-tools:1.0"
LIST_KEYS = "ssh-add -l > /keys"


@attrs.frozen
class Agent:
    socket: Path
    key: Path  # its private key; KEY.pub beside it
    fingerprint: str  # SHA256:..., as ssh-add -l shows it


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        message = f"`{name}` is missing; SSH tests need openssh-client"
        if os.environ.get("DOCKERPKG_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{message} (DOCKERPKG_REQUIRE_DOCKER=1: these tests must run)")
        pytest.skip(message)
    return found


def _libraries(program: str) -> list[str]:
    """The shared libraries PROGRAM loads (its interpreter too), as ldd lists them."""
    listed = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    return sorted({word for word in listed.split() if word.startswith("/")})


@pytest.fixture(scope="session")
def ssh_tools(docker_client: docker.DockerClient, busybox_base: str) -> str:
    """The busybox base with this machine's ssh-add and the libraries it loads."""
    add = _tool("ssh-add")
    with tempfile.TemporaryDirectory(prefix="dockerpkg-sshtools-") as context:
        lines = [f"FROM {BUSYBOX_TAG}"]
        for number, path in enumerate([add, *_libraries(add)]):
            shutil.copy2(path, Path(context, f"f{number}"))
            lines.append(f"COPY f{number} {path}")
        Path(context, "Dockerfile").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for chunk in docker_client.api.build(path=context, tag=TOOLS_TAG, rm=True, decode=True):
            if "error" in chunk:
                raise ServiceUnavailableError(f"building {TOOLS_TAG}: {chunk['error']}")
    return TOOLS_TAG


@contextlib.contextmanager
def running_agent(folder: Path) -> Iterator[Agent]:
    """An ssh-agent of the test's own holding one key made for it."""
    folder.mkdir(parents=True, exist_ok=True)
    key, socket = folder / "id_ed25519", folder / "agent.sock"
    subprocess.run(
        [_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "dockerpkg-test-key",
         "-f", str(key)],
        check=True,
    )  # fmt: skip
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True
    )
    agent = subprocess.Popen(
        [_tool("ssh-agent"), "-D", "-a", str(socket)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline(), "ssh-agent did not start"  # printed once it listens
        env = {"SSH_AUTH_SOCK": str(socket), "PATH": os.defpath}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        yield Agent(socket, key, listed.stdout.split()[1])
    finally:
        agent.kill()
        agent.wait()
        agent.stdout.close()  # type: ignore[union-attr]


def tools_site(make_site: Callable[..., Site], client: docker.DockerClient, tools: str) -> Site:
    """A site whose registry also holds the ssh-tools base, listed in its config."""
    site = make_site()
    ref = services.tag_image(client, tools, site.registry.ref(TOOLS_BASE))
    services.push_image(client, ref, site.registry)
    return site


def config_with(site: Site, extra: str = "") -> Path:
    config = site.config()
    text = config.read_text(encoding="utf-8").replace(
        "base_images:\n", f"base_images:\n  - {site.registry.ref(TOOLS_BASE)}\n", 1
    )
    config.write_text(text + extra, encoding="utf-8")
    return config


def write_lister(site: Site, short: str, mount: str) -> None:
    template = f'FROM {{{{ "ssh-tools" | image_tag }}}}\nRUN --mount={mount} {LIST_KEYS}\n'
    write_image(site.tree, site.name(short), "1.0", template)


def keys_in(client: docker.DockerClient, label: str) -> str:
    return client.containers.run(label, ["cat", "/keys"], remove=True).decode()


def test_the_run_agent_reaches_the_build_and_its_key_nothing(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    ssh_tools: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tools_site(make_site, docker_client, ssh_tools)
    write_lister(site, "agent", "type=ssh")
    with running_agent(site.work / "agent") as agent:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.socket))
        unconfigured = dockerpkg("-c", config_with(site), "plan", "--offline", site.tree)
        assert unconfigured.status == 1
        assert (
            f"{site.name('agent')}/Dockerfile.template:2: error: SSH agent 'default' is not "
            "configured"
        ) in unconfigured.err
        config = config_with(site, "ssh: default\n")
        plan = dockerpkg("-c", config, "plan", "--json", site.tree)
        assert plan.status == 0, plan.text
        assert '"ssh": [\n    {\n      "id": "default",\n      "source": "ssh:$SSH_AUTH_SOCK"' in (
            plan.out
        )
        report, run_dir = site.work / "report.json", site.work / "run"
        built = dockerpkg(
            "-c", config, "build", "--report", report, "--run-dir", run_dir, site.tree
        )
        assert built.status == 0, built.text
        listed = keys_in(docker_client, site.label("agent", "1.0"))
        assert agent.fingerprint in listed, listed
        assert "dockerpkg-test-key" in listed, listed
        private = agent.key.read_text(encoding="utf-8").splitlines()[1]
        places = [plan.text, built.text, report.read_text(encoding="utf-8")]
        places += [log.read_text(errors="replace") for log in run_dir.rglob("*") if log.is_file()]
        assert not any(private in place for place in places)
        assert private.encode() not in everything_of(docker_client, site.label("agent", "1.0"))


def test_a_key_file_for_one_run_gets_an_agent_of_its_own(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    ssh_tools: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    site = tools_site(make_site, docker_client, ssh_tools)
    write_lister(site, "deploy", "type=ssh,id=deploy")
    with running_agent(site.work / "keys") as agent:
        key = agent.key
        fingerprint = agent.fingerprint
    config = config_with(site)
    built = dockerpkg("-c", config, "build", "--ssh", f"deploy={key}", site.tree)
    assert built.status == 0, built.text
    listed = keys_in(docker_client, site.label("deploy", "1.0"))
    assert fingerprint in listed, listed
    # The agent started for the build ended with it.
    left = subprocess.run(
        ["pgrep", "-f", r"dockerpkg\.[0-9]+\.[0-9]+\.agent\."],
        capture_output=True,
        text=True,
        check=False,
    )
    assert left.stdout == "", left.stdout


def test_no_agent_to_forward_fails_that_build_only(
    make_site: Callable[..., Site],
    dockerpkg: Callable[..., Outcome],
    docker_client: docker.DockerClient,
    ssh_tools: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    site = tools_site(make_site, docker_client, ssh_tools)
    write_lister(site, "agent", "type=ssh")
    write_image(site.tree, site.name("plain"), "1.0", 'FROM {{ "busybox" | image_tag }}\n')
    built = dockerpkg("-c", config_with(site, "ssh: default\n"), "build", site.tree)
    assert built.status == 1
    assert "ssh default: SSH_AUTH_SOCK is not set (no agent to forward)" in built.text
    assert site.tags("plain") == ["1.0", "latest"]
