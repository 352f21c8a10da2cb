"""Choices about a run made in the core, not by the executor: build args from the proxy, the
build engine, whether a plan may run on several builders, how an image is verified (or
skipped), when a local copy stands in for a failed pull."""

from __future__ import annotations

import pytest

from dockerpkg.core.builders import several_builders_problem
from dockerpkg.core.config import engine_for, load_config, proxy_args
from dockerpkg.core.plan import BuildEngine
from dockerpkg.core.runrules import (
    PLATFORM_VARIABLE,
    local_copy_serves,
    log_name,
    verification_call,
)


def test_proxy_args_in_both_spellings() -> None:
    with_proxy = load_config([("c.yaml", "http_proxy: http://proxy:3128\n")])
    assert proxy_args(with_proxy) == {
        "http_proxy": "http://proxy:3128",
        "https_proxy": "http://proxy:3128",
        "HTTP_PROXY": "http://proxy:3128",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    assert proxy_args(load_config([("c.yaml", "namespace: ns\n")])) == {}


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        (None, BuildEngine.BUILDKIT),
        ("", BuildEngine.BUILDKIT),
        ("0", BuildEngine.CLASSIC),
        (" False ", BuildEngine.CLASSIC),
        ("1", BuildEngine.BUILDKIT),
        ("maybe", BuildEngine.BUILDKIT),
    ],
)
def test_engine_switch(switch: str | None, expected: BuildEngine) -> None:
    assert engine_for(load_config([("c.yaml", "namespace: ns\n")]), switch) is expected


def test_switch_beats_the_config_only_when_it_says() -> None:
    classic = load_config([("c.yaml", "build_engine: classic\n")])
    assert engine_for(classic, None) is BuildEngine.CLASSIC
    assert engine_for(classic, "1") is BuildEngine.BUILDKIT


def test_several_builders_need_a_publishing_plan() -> None:
    assert several_builders_problem(2, publish=False) is not None
    assert several_builders_problem(2, publish=True) is None
    assert several_builders_problem(1, publish=False) is None


_CUSTOM = "verify_command: /bin/sh\nverify_args: ['-c', '{path}/t/run {image} {path}/data']\n"
_RUN_ENV = {"PATH": "/opt/bin", "HOME": "/home/u", "SECRET": "x", "DOCKER_HOST": "unix:///a"}


def test_the_default_verification_runs_test_sh() -> None:
    config = load_config([("c.yaml", "http_proxy: http://p:3128\n")])
    call = verification_call(config, "r/ns/img:1", "/t/img", (_RUN_ENV, {}))
    assert call.argv == ("/bin/bash", "-c", "/t/img/test.sh r/ns/img:1")
    # PATH, the proxy and what reaches the daemon; nothing else of the run's environment.
    assert call.env == {
        "PATH": "/opt/bin",
        "HOME": "/home/u",
        "DOCKER_HOST": "unix:///a",
        **proxy_args(config),
    }


def test_a_custom_verification_names_the_image_and_its_folder() -> None:
    config = load_config([("c.yaml", _CUSTOM)])
    ran = verification_call(config, "l", "/t/img", ({}, {}))
    assert ran.argv == ("/bin/sh", "-c", "/t/img/t/run l /t/img/data")
    assert ran.env == {"PATH": "/usr/bin:/bin"}


def test_the_builders_daemon_variables_win_over_the_runs() -> None:
    config = load_config([("c.yaml", "namespace: ns\n")])
    builder = {"DOCKER_HOST": "tcp://b:2376", "DOCKER_TLS_VERIFY": "1"}
    call = verification_call(config, "l", "/f", (_RUN_ENV, builder))
    assert call.env["DOCKER_HOST"] == "tcp://b:2376"
    assert call.env["DOCKER_TLS_VERIFY"] == "1"


def test_a_local_copy_serves_only_the_label_it_has() -> None:
    assert local_copy_serves("base:1", {"base:1", "other:2"})
    assert not local_copy_serves("base:2", {"base:1"})


def test_a_platform_images_verification_is_told_its_platform() -> None:
    config = load_config([("c.yaml", "namespace: ns\n")])
    call = verification_call(config, "r/ns/img:1-arm64", "/t/img", (_RUN_ENV, {}), "linux/arm64")
    assert call.argv == ("/bin/bash", "-c", "/t/img/test.sh r/ns/img:1-arm64")
    assert call.env[PLATFORM_VARIABLE] == "linux/arm64"
    assert PLATFORM_VARIABLE == "DOCKERPKG_PLATFORM"
    # Not set for an image of no platform, whatever the run's environment holds.
    plain = verification_call(config, "l", "/f", ({**_RUN_ENV, PLATFORM_VARIABLE: "x"}, {}))
    assert PLATFORM_VARIABLE not in plain.env


def test_log_names_hold_no_colon() -> None:
    assert log_name("php") == "php.log"
    assert log_name("php:arm64") == "php@arm64.log"
    assert log_name("php:armv7") != log_name("php-armv7")
