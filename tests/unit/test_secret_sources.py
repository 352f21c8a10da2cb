"""Build secrets' sources: regular files (or variables) of at most 500 KiB, checked when
planning, where each was given, and again when a build is served; a FIFO is never waited on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.plan import PlannedSecret
from dockerpkg.core.secrets import (
    SECRET_SIZE_LIMIT,
    SecretKind,
    SecretSource,
    SourceFact,
    SourceState,
    source_problem,
    source_problems,
)
from dockerpkg.effects.secretvalues import SecretReadError, read_value, source_facts
from dockerpkg.effects.session import read_secrets
from dockerpkg.errors import Location
from tests.support.badinput import fingerprint, write, write_work

ORIGIN = Location("conf/config.yaml", 7)


def file_source(path: Path | str, secret_id: str = "tok") -> SecretSource:
    return SecretSource(secret_id, SecretKind.FILE, str(path), ORIGIN)


class TestJudged:
    """The rule, on facts: pure."""

    def test_what_is_refused(self) -> None:
        source = file_source("/run/tok")
        refused = {
            SourceFact(SourceState.MISSING): "secret 'tok' (file:/run/tok): no such file",
            SourceFact(SourceState.OTHER, what="a FIFO"): (
                "secret 'tok' (file:/run/tok): is a FIFO, not a regular file: a build secret is "
                "read from a regular file (reading a FIFO or a device could wait for ever)"
            ),
            SourceFact(SourceState.REGULAR, SECRET_SIZE_LIMIT + 1): (
                "secret 'tok' (file:/run/tok): holds 512001 bytes; a build secret holds at "
                "most 500 KiB (512000 bytes), as with buildx"
            ),
            SourceFact(SourceState.UNREADABLE, what="Permission denied"): (
                "secret 'tok' (file:/run/tok): cannot read it: Permission denied"
            ),
        }
        for fact, message in refused.items():
            assert source_problem(source, fact, planning=True) == message
            assert source_problem(source, fact, planning=False) == message
        fine = SourceFact(SourceState.REGULAR, SECRET_SIZE_LIMIT)
        assert source_problem(source, fine, planning=True) is None

    def test_an_unset_variable_is_the_run_s_to_set(self) -> None:
        source = SecretSource("tok", SecretKind.ENV, "TOKEN")
        unset = SourceFact(SourceState.UNSET)
        assert source_problem(source, unset, planning=True) is None
        assert source_problem(source, unset, planning=False) == (
            "secret 'tok' (env:TOKEN): TOKEN is not set"
        )
        large = SourceFact(SourceState.SET, SECRET_SIZE_LIMIT + 1)
        assert "holds 512001 bytes" in (source_problem(source, large, planning=True) or "")

    def test_problems_are_located_where_the_source_was_given(self) -> None:
        given = SecretSource("tok", SecretKind.FILE, "x", Location("--secret"))
        fifo = SourceFact(SourceState.OTHER, what="a FIFO")
        config = file_source("y", "other")
        [flag, conf] = source_problems([given, config], {given: fifo, config: fifo})
        assert (str(flag.location), str(conf.location)) == ("--secret", "conf/config.yaml:7")


class TestFound:
    """What the files are, looked at without opening them."""

    def test_facts(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "small").write_bytes(b"x" * 10)
        os.symlink("small", tmp_path / "link")
        sources = [file_source(tmp_path / n, n) for n in ("fifo", "small", "link", "none")]
        variable = SecretSource("v", SecretKind.ENV, "TOKEN")
        found = source_facts([*sources, variable], {"TOKEN": "é"})
        assert [found[s] for s in sources] == [
            SourceFact(SourceState.OTHER, what="a FIFO"),
            SourceFact(SourceState.REGULAR, 10),
            SourceFact(SourceState.REGULAR, 10),
            SourceFact(SourceState.MISSING),
        ]
        assert found[variable] == SourceFact(SourceState.SET, 2)  # bytes, not characters


class TestServed:
    """Read when the build starts: checked again, never waiting."""

    def test_a_regular_file(self, tmp_path: Path) -> None:
        (tmp_path / "tok").write_bytes(b"v" * SECRET_SIZE_LIMIT)
        assert read_value(file_source(tmp_path / "tok"), {}) == b"v" * SECRET_SIZE_LIMIT

    def test_a_file_made_a_fifo_after_planning_is_refused_at_once(self, tmp_path: Path) -> None:
        path = tmp_path / "tok"
        os.mkfifo(path)
        result: list[BaseException | bytes] = []

        def read() -> None:
            try:
                result.append(read_value(file_source(path), {}))
            except SecretReadError as exc:
                result.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(5)
        if reader.is_alive():  # the reader waits on the FIFO: let it go before failing
            with open(path, "wb"):
                pass
            pytest.fail("reading a FIFO secret waited for a writer")
        [error] = result
        assert "is a FIFO, not a regular file" in str(error)

    def test_a_file_grown_over_the_cap_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "tok"
        path.write_bytes(b"v" * (SECRET_SIZE_LIMIT + 1))
        with pytest.raises(SecretReadError, match="holds 512001 bytes"):
            read_value(file_source(path), {})

    def test_read_secrets_from_the_plan_s_sources(self, tmp_path: Path) -> None:
        (tmp_path / "tok").write_text("file-value")
        sources = {
            "f": PlannedSecret("f", SecretKind.FILE, str(tmp_path / "tok")),
            "e": PlannedSecret("e", SecretKind.ENV, "TOKEN"),
            "big": PlannedSecret("big", SecretKind.ENV, "BIG"),
        }
        env = {"TOKEN": "env-value", "BIG": "b" * (SECRET_SIZE_LIMIT + 1)}
        assert read_secrets(["f", "e"], sources, env) == {"f": b"file-value", "e": b"env-value"}
        with pytest.raises(SecretReadError, match="'big' \\(env:BIG\\): holds 512001 bytes"):
            read_secrets(["big"], sources, env)
        with pytest.raises(SecretReadError, match="MISSING is not set"):
            read_secrets(["m"], {"m": PlannedSecret("m", SecretKind.ENV, "MISSING")}, env)


class TestWhenPlanning:
    """`plan` refuses a source that is no regular file or is too large, naming where it was
    given, and changes nothing."""

    @staticmethod
    def work(tmp_path: Path, source: str) -> Path:
        tree = write_work(tmp_path)
        write(
            tree / "app" / "Dockerfile.template",
            "FROM {{ 'base' | image_tag }}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n",
        )
        config = tmp_path / "config.yaml"
        config.write_text(config.read_text() + f"secrets:\n  tok: {{file: {source}}}\n")
        return tree

    def plan(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str
    ) -> tuple[int, str]:
        before = fingerprint(tmp_path)
        status = main(["-c", str(tmp_path / "config.yaml"), "plan", "--offline", *flags, "images"])
        assert fingerprint(tmp_path) == before
        return status, capsys.readouterr().err

    def test_a_fifo_in_the_config(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        self.work(tmp_path, "tok.fifo")
        os.mkfifo(tmp_path / "tok.fifo")
        status, err = self.plan(tmp_path, capsys)
        assert status == 1
        assert f"config.yaml:3: error: secret 'tok' (file:{tmp_path}/tok.fifo): is a FIFO" in err
        assert "Traceback" not in err

    def test_a_large_file_given_by_flag(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        self.work(tmp_path, "tok.txt")
        (tmp_path / "tok.txt").write_text("fine")
        (tmp_path / "big").write_bytes(b"x" * (SECRET_SIZE_LIMIT + 1))
        assert self.plan(tmp_path, capsys)[0] == 0
        status, err = self.plan(tmp_path, capsys, "--secret", "id=tok,src=big")
        assert status == 1
        assert "--secret: error: secret 'tok' (file:big): holds 512001 bytes" in err

    def test_a_variable_over_the_cap(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        self.work(tmp_path, "unused")
        monkeypatch.setenv("BIG", "b" * (SECRET_SIZE_LIMIT + 1))
        status, err = self.plan(tmp_path, capsys, "--secret", "id=tok,env=BIG")
        assert status == 1
        assert "--secret: error: secret 'tok' (env:BIG): holds 512001 bytes" in err
        # Unset when planning: the run sets it (it is read when the build starts).
        assert self.plan(tmp_path, capsys, "--secret", "id=tok,env=UNSET_HERE")[0] == 0
