"""Build secrets, pure: their sources from the config and --secret, which ids a Dockerfile
mounts, what is refused, and the two protobuf messages of the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.core.config import BuildEngine
from dockerpkg.core.secrets import (
    SecretKind,
    SecretSource,
    config_sources,
    merged,
    parse_secret_flag,
    secret_problems,
    secret_uses,
)
from dockerpkg.effects.session import secret_id_of, secret_response
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
