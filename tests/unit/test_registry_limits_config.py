"""The config's `registries` key: each host's limits read over its own defaults, and each bad
host or value refused at its file and line, in one paragraph, by the real CLI too."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.config import Config, load_config, public_values
from dockerpkg.core.registrylimits import (
    DEFAULT_LIMITS,
    DOCKER_HUB_LIMITS,
    HostLimits,
    RegistryLimits,
)
from dockerpkg.errors import DockerPkgError
from tests.support.badinput import write, write_work

BASE = "registry: 127.0.0.1:5000\n"
MAX_WAIT_WHY = "'max_wait' must be a number of seconds above 0, at most 3600"


def parse(text: str, path: str = "config.yaml") -> Config:
    return load_config([(path, text)])


def problems(text: str, path: str = "conf/c.yaml") -> list[tuple[int | None, str]]:
    with pytest.raises(DockerPkgError) as info:
        parse(text, path)
    assert all(p.location.path == path for p in info.value.problems)
    return [(p.location.line, p.message) for p in info.value.problems]


class TestAccepted:
    """Good values become each host's limits; what is not said keeps the host's own."""

    @pytest.mark.parametrize(
        ("text", "host", "expected"),
        [
            ("", "127.0.0.1:5000", DEFAULT_LIMITS),
            ("", "docker.io", DOCKER_HUB_LIMITS),
            ("registries: {}\n", "127.0.0.1:5000", DEFAULT_LIMITS),
            ("registries:\n", "127.0.0.1:5000", DEFAULT_LIMITS),
            ("registries:\n  127.0.0.1:5000:\n", "127.0.0.1:5000", DEFAULT_LIMITS),
            (
                "registries:\n  127.0.0.1:5000: {max_requests: 3}\n",
                "127.0.0.1:5000",
                HostLimits(max_requests=3),
            ),
            (
                "registries:\n  ghcr.io:\n    max_requests: 2\n    per_minute: 2000\n"
                "    attempts: 20\n    max_wait: 3600\n",
                "GHCR.io",
                HostLimits(2, 2000, 20, 3600.0),
            ),
            (
                "registries: {r.example: {max_wait: 0.5, attempts: 1}}\n",
                "r.example",
                HostLimits(attempts=1, max_wait=0.5),
            ),
            # Docker Hub keeps its own cap and rate where the entry does not say.
            (
                "registries:\n  docker.io: {attempts: 10}\n",
                "registry-1.docker.io",
                HostLimits(3, 300, 10, 60.0),
            ),
            (
                "registries:\n  index.docker.io: {max_requests: 1, per_minute: null}\n",
                "docker.io",
                HostLimits(1, None, 6, 60.0),
            ),
            ("registries:\n  docker.io: {}\n", "", DOCKER_HUB_LIMITS),
            # Another host's entry changes nothing for this one.
            ("registries:\n  a.example: {max_requests: 1}\n", "b.example", DEFAULT_LIMITS),
            ("registries:\n  '[::1]:5000': {max_requests: 2}\n", "[::1]:5000", HostLimits(2)),
        ],
    )
    def test_limits(self, text: str, host: str, expected: HostLimits) -> None:
        config = parse(BASE + text)
        assert isinstance(config.registries, RegistryLimits)
        assert config.registries.for_host(host) == expected

    def test_the_later_file_replaces_the_key(self) -> None:
        config = load_config(
            [
                ("user.yaml", "registries: {a.example: {max_requests: 1}}\n"),
                ("c.yaml", "registries: {b.example: {max_requests: 2}}\n"),
            ]
        )
        assert config.registries.for_host("a.example") == DEFAULT_LIMITS
        assert config.registries.for_host("b.example") == HostLimits(max_requests=2)

    def test_neither_a_template_variable_nor_in_a_plans_digest(self) -> None:
        plain = parse(BASE)
        limited = parse(BASE + "registries: {127.0.0.1:5000: {max_requests: 3}}\n")
        assert "registries" not in limited.template_variables()
        assert public_values(limited) == public_values(plain)
        assert limited.extra == {}


class TestRefused:
    """Each bad host or value is a problem at its own line; all are reported at once."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "registries:\n  http://r.example: {}\n",
                [(3, "'http://r.example' is a URL; give the host[:port] only (no scheme)")],
            ),
            (
                "registries:\n  r.example/team: {}\n",
                [(3, "'r.example/team' holds a path")],
            ),
            ("registries:\n  'bad host': {}\n", [(3, "'bad host' is not a registry host")]),
            (
                "registries:\n  r.example: {max_requests: 0}\n",
                [(3, "r.example: 'max_requests' must be 1 or more, not 0")],
            ),
            (
                "registries:\n  r.example:\n    per_minute: -1\n",
                [(4, "r.example: 'per_minute' must be 1 or more, not -1")],
            ),
            (
                "registries:\n  r.example:\n    attempts: 21\n",
                [(4, "r.example: 'attempts' must be from 1 to 20, not 21")],
            ),
            (
                "registries:\n  r.example:\n    attempts: 0\n",
                [(4, "r.example: 'attempts' must be from 1 to 20, not 0")],
            ),
            *(
                (
                    f"registries:\n  r.example:\n    max_wait: {value}\n",
                    [
                        (
                            4,
                            f"r.example: {MAX_WAIT_WHY}",
                        )
                    ],
                )
                for value in ("0", "-1", "3600.5", "inf", "nan")
            ),
            (
                "registries:\n  docker.io: {}\n  Index.Docker.io: {}\n",
                [(4, "Index.Docker.io is given twice (as docker.io too)")],
            ),
            (
                "registries:\n  r.example: {}\n  R.EXAMPLE: {}\n",
                [(4, "R.EXAMPLE is given twice (as r.example too)")],
            ),
            (
                "registries:\n  a.example:\n    attempts: 0\n  b.example:\n    max_wait: 0\n",
                [
                    (4, "a.example: 'attempts' must be from 1 to 20, not 0"),
                    (6, f"b.example: {MAX_WAIT_WHY}"),
                ],
            ),
            # Lines in flow style, over several lines and after blank ones.
            (
                "registries: {a.example: {attempts: 0}, b.example: {max_wait: 0}}\n",
                [
                    (2, "a.example: 'attempts' must be from 1 to 20, not 0"),
                    (2, f"b.example: {MAX_WAIT_WHY}"),
                ],
            ),
            (
                "registries:\n  a.example: {\n    max_requests: 2,\n    attempts: 0 }\n",
                [(5, "a.example: 'attempts' must be from 1 to 20, not 0")],
            ),
            (
                "registries:\n\n  a.example:\n    max_requests: 2\n\n    attempts: 30\n",
                [(7, "a.example: 'attempts' must be from 1 to 20, not 30")],
            ),
            # What the schema refuses, at the line too.
            ("registries:\n  r.example:\n    max_requests: many\n", [(4, "when expecting an")]),
            (
                "registries:\n  r.example:\n    speed: 3\n",
                [(4, "while parsing a mapping unexpected key not in schema 'speed'")],
            ),
            ("registries:\n  r.example: 3\n", [(3, "")]),
            ("registries: [r.example]\n", [(2, "")]),
        ],
    )
    def test_refused(self, text: str, expected: list[tuple[int, str]]) -> None:
        found = problems(BASE + text)
        assert [line for line, _ in found] == [line for line, _ in expected]
        for (_, message), (_, start) in zip(found, expected, strict=True):
            assert message.startswith("bad value for 'registries': " + start), message


def test_the_cli_refuses_a_bad_value_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_work(work)
    text = (work / "config.yaml").read_text()
    write(work / "config.yaml", text + "registries:\n  docker.io:\n    max_wait: 7200\n")
    monkeypatch.chdir(work)
    capsys.readouterr()
    assert main(["plan", "--offline", "images"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert (
        "config.yaml:5: error: bad value for 'registries': docker.io: 'max_wait' must be a "
        "number of seconds above 0, at most 3600"
    ) in err.splitlines()


def test_the_cli_accepts_a_good_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    write_work(work)
    text = (work / "config.yaml").read_text()
    write(work / "config.yaml", text + "registries: {registry.example.org: {max_requests: 2}}\n")
    monkeypatch.chdir(work)
    assert main(["plan", "--offline", "images"]) == 0
    _, err = capsys.readouterr()
    assert "registries" not in err
