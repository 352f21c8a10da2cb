"""Choices about a run made in the core, not by the executor: build args from the proxy, the
build engine, whether a plan may run on several builders."""

from __future__ import annotations

import pytest

from dockerpkg.core.builders import several_builders_problem
from dockerpkg.core.config import BuildEngine, engine_for, load_config, proxy_args


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
