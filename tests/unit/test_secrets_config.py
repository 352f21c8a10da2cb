"""Build secrets, pure: their sources from the config and --secret, which ids a Dockerfile
mounts, what is refused, and the two protobuf messages of the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.core.plan import BuildEngine
from dockerpkg.core.secrets import (
    DEFAULT_AGENT,
    MountType,
    SecretKind,
    SecretSource,
    config_agents,
    config_sources,
    merged,
    parse_secret_flag,
    parse_ssh_flag,
    secret_problems,
    secret_uses,
)
from dockerpkg.effects.session import bytes_message, first_field, secret_id_of, secret_response
from dockerpkg.errors import DockerPkgError, Location

ORIGIN = Location("conf/config.yaml", 7)


class TestSources:
    def test_config(self) -> None:
        found = config_sources(
            {"tok": {"env": "TOKEN"}, "netrc": {"file": "netrc"}, "abs": {"file": "/etc/x"}},
            ORIGIN,
            "conf",
        )
        assert [str(s) for s in found] == ["file:/etc/x", "file:conf/netrc", "env:TOKEN"]

    @pytest.mark.parametrize("entry", [{}, {"env": "A", "file": "b"}, {"value": "plain text"}])
    def test_a_bad_entry_is_located(self, entry: dict[str, str]) -> None:
        with pytest.raises(DockerPkgError) as caught:
            config_sources({"tok": entry}, ORIGIN, "conf")
        problem = caught.value.problems[0]
        assert (problem.location.path, problem.location.line) == ("conf/config.yaml", 7)
        assert "needs exactly one of env" in problem.message

    @pytest.mark.parametrize(
        ("flag", "kind", "where"),
        [
            ("id=tok,env=TOKEN", SecretKind.ENV, "TOKEN"),
            ("id=tok,src=/run/t", SecretKind.FILE, "/run/t"),
            ("type=file,id=tok,source=t", SecretKind.FILE, "t"),
        ],
    )
    def test_flags_as_buildx_spells_them(self, flag: str, kind: SecretKind, where: str) -> None:
        assert parse_secret_flag(flag) == SecretSource("tok", kind, where)

    @pytest.mark.parametrize("flag", ["tok", "id=tok", "id=,env=X", "id=tok,env=X,extra=1"])
    def test_bad_flags(self, flag: str) -> None:
        with pytest.raises(DockerPkgError, match="expected id=ID,env=VARIABLE"):
            parse_secret_flag(flag)

    def test_flags_win(self) -> None:
        config = (SecretSource("a", SecretKind.ENV, "A"), SecretSource("b", SecretKind.ENV, "B"))
        flag = SecretSource("a", SecretKind.FILE, "f")
        assert merged(config, [flag]) == (flag, config[1])


class TestAgents:
    def test_config(self) -> None:
        origin = Location("/etc/dp/config.yaml", 7)
        [default] = config_agents("default", origin, "/etc/dp")
        assert default == SecretSource("default", SecretKind.SSH, DEFAULT_AGENT)
        given = {"git": "keys/deploy", "run": "", "agent": "/run/agent.sock"}
        assert config_agents(given, origin, "/etc/dp") == (
            SecretSource("agent", SecretKind.SSH, "/run/agent.sock"),
            SecretSource("git", SecretKind.SSH, "/etc/dp/keys/deploy"),
            SecretSource("run", SecretKind.SSH, DEFAULT_AGENT),
        )

    @pytest.mark.parametrize("given", ["yes", {"bad id": "/x"}])
    def test_a_bad_value_is_located(self, given: str | dict[str, str]) -> None:
        with pytest.raises(DockerPkgError) as caught:
            config_agents(given, Location("c.yaml", 4), "")
        [problem] = caught.value.problems
        assert (problem.location.path, problem.location.line) == ("c.yaml", 4)
        assert "'ssh'" in problem.message

    @pytest.mark.parametrize(
        ("flag", "where"),
        [
            ("default", DEFAULT_AGENT),
            ("git", DEFAULT_AGENT),
            ("git=/k/id_ed25519", "/k/id_ed25519"),
        ],
    )
    def test_flags_as_buildx_spells_them(self, flag: str, where: str) -> None:
        assert parse_ssh_flag(flag).where == where

    @pytest.mark.parametrize("flag", ["", "a b", "git=/k1,/k2"])
    def test_bad_flags(self, flag: str) -> None:
        with pytest.raises(DockerPkgError, match="--ssh"):
            parse_ssh_flag(flag)

    def test_secret_and_agent_ids_are_apart(self) -> None:
        secret = SecretSource("default", SecretKind.ENV, "TOKEN")
        agent = SecretSource("default", SecretKind.SSH, DEFAULT_AGENT)
        assert merged([secret], [agent]) == (secret, agent)
        assert merged([agent], [parse_ssh_flag("default=/a.sock")]) == (
            SecretSource("default", SecretKind.SSH, "/a.sock"),
        )

    def test_mounts_on_continued_lines(self) -> None:
        dockerfile = (
            "FROM x\n"
            "RUN --mount=type=cache,target=/c \\\n"
            "    --mount=type=ssh \\\n"
            "    --mount=type=secret,id=tok \\\n"
            "    make\n"
            "RUN echo --mount=type=ssh\n"
        )
        assert secret_uses(dockerfile, MountType.SSH) == (("default", 2),)
        assert secret_uses(dockerfile) == (("tok", 2),)

    def test_uses_and_problems(self) -> None:
        dockerfile = (
            "FROM x\n"
            "RUN --mount=type=ssh git clone git@example.org:a.git\n"
            "RUN --mount=type=ssh,id=deploy --mount=type=secret,id=tok make\n"
        )
        assert secret_uses(dockerfile, MountType.SSH) == (("default", 2), ("deploy", 3))
        assert secret_uses(dockerfile) == (("tok", 3),)
        # A secret named like the agent does not stand for it.
        known = [SecretSource("deploy", SecretKind.ENV, "D"), parse_ssh_flag("default")]
        [missing] = secret_problems(
            "t", dockerfile, known, BuildEngine.BUILDKIT, mount=MountType.SSH
        )
        assert (missing.location.line, "SSH agent 'deploy' is not configured") == (
            3,
            missing.message[: len("SSH agent 'deploy' is not configured")],
        )
        classic = secret_problems("t", dockerfile, known, BuildEngine.CLASSIC, mount=MountType.SSH)
        assert [p.location.line for p in classic] == [2, 3]
        assert all("no SSH forwarding" in p.message for p in classic)


class TestUses:
    def test_ids_and_lines(self) -> None:
        dockerfile = (
            "FROM x\n"
            "RUN --mount=type=secret,id=tok cat /run/secrets/tok\n"
            "RUN --mount=type=cache,target=/c --mount=type=secret,target=/root/.netrc make\n"
            "RUN echo --mount=type=secret,id=not-a-run-option\n"
        )
        # An id left out is the target's file name, as BuildKit takes it.
        assert secret_uses(dockerfile) == (("tok", 2), (".netrc", 3))

    def test_problems(self) -> None:
        dockerfile = "FROM x\nRUN --mount=type=secret,id=tok true\n"
        known = [SecretSource("tok", SecretKind.ENV, "T")]
        assert secret_problems("t", dockerfile, known, BuildEngine.BUILDKIT) == []
        [unknown] = secret_problems("t", dockerfile, [], BuildEngine.BUILDKIT)
        assert unknown.location.line == 2
        assert "secret 'tok' is not configured" in unknown.message
        [classic] = secret_problems("t", dockerfile, known, BuildEngine.CLASSIC, line=5)
        assert classic.location.line == 5
        assert "needs BuildKit" in classic.message


class TestMessages:
    def test_bytes_messages(self) -> None:
        # BytesMessage{data: ...}, as BuildKit's sshforward stream carries an agent's bytes.
        data = bytes(range(256)) * 2
        encoded = bytes_message(data)
        assert encoded[:3] == b"\x0a\x80\x04"
        assert first_field(encoded) == data
        assert bytes_message(b"") == b""  # proto3 leaves an empty field out
        assert first_field(b"") == b""

    def test_request_and_response(self) -> None:
        # GetSecretRequest{ID: "tok", annotations: {"a": "b"}}, as BuildKit encodes it.
        request = b"\x0a\x03tok" + b"\x12\x06\x0a\x01a\x12\x01b"
        assert secret_id_of(request) == "tok"
        assert secret_id_of(b"\x12\x06\x0a\x01a\x12\x01b\x0a\x02id") == "id"
        value = b"x" * 300
        assert secret_response(value) == b"\x0a\xac\x02" + value


def test_plans_do_not_load_grpc() -> None:
    """grpcio is loaded only by builds that mount secrets: planning stays as quick as before."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dockerpkg.cli import main\n"
        "status = main(['-c', 'examples/config.yaml', 'plan', '--offline', 'examples/tree'])\n"
        "print(status, 'grpc' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=root,
    )
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr
