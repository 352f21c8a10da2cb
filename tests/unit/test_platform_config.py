"""The platforms keys: the config's `platforms`, a builder's, an image's control `Platforms`."""

from __future__ import annotations

import pytest

from dockerpkg.core.builders import parse_builders_flag
from dockerpkg.core.config import load_config
from dockerpkg.core.configvalue import public_values
from dockerpkg.core.spec import ImageSource, parse_image
from dockerpkg.errors import DockerPkgError

CHANGELOG = (
    "php (8.2) wikimedia; urgency=medium\n\n  * x\n\n"
    " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
)


def problems(text: str) -> list[str]:
    with pytest.raises(DockerPkgError) as caught:
        load_config([("config.yaml", text)])
    return [str(p) for p in caught.value.problems]


def test_platforms_are_read_in_order_and_normalised() -> None:
    config = load_config([("config.yaml", "platforms:\n  - linux/x86_64\n  - linux/aarch64\n")])
    assert config.platforms == ("linux/amd64", "linux/arm64")
    flow = load_config([("config.yaml", "platforms: [linux/arm, linux/arm64/v8]\n")])
    assert flow.platforms == ("linux/arm/v7", "linux/arm64")


def test_a_bad_platform_is_an_error_at_its_line() -> None:
    assert problems("registry: r.example.org\nplatforms:\n  - linux/amd64\n  - arm64\n") == [
        "config.yaml:4: error: bad value for 'platforms': platform 'arm64' is not "
        "OS/ARCHITECTURE[/VARIANT]"
    ]


def test_a_platform_given_twice_is_an_error() -> None:
    assert problems("platforms:\n  - linux/amd64\n  - linux/x86_64\n") == [
        "config.yaml:3: error: bad value for 'platforms': platform linux/amd64 is given twice"
    ]


def test_an_overlong_platform_is_an_error_at_its_line() -> None:
    long = "b" * 33
    assert problems(f"platforms:\n  - linux/amd64\n  - linux/{long}\n") == [
        f"config.yaml:3: error: bad value for 'platforms': platform 'linux/{long}' has a part "
        "over 32 characters"
    ]
    longest = "b" * 32
    assert load_config([("config.yaml", f"platforms: [linux/{longest}]\n")]).platforms == (
        f"linux/{longest}",
    )


def test_builders_declare_their_platforms() -> None:
    text = "builders:\n  - url: ssh://ci@arm.example.org\n    platforms: [linux/aarch64]\n"
    config = load_config([("config.yaml", text)])
    assert config.builders[0].platforms == ("linux/arm64",)
    flag = parse_builders_flag("ssh://ci@arm.example.org=2,unix:///x", config.builders)
    assert [b.platforms for b in flag.builders] == [("linux/arm64",), ()]


def test_a_builders_bad_platform_is_an_error_at_its_entry() -> None:
    text = "builders:\n  - url: unix:///a\n  - url: unix:///b\n    platforms: [linux]\n"
    assert problems(text) == [
        "config.yaml:3: error: bad value for 'builders': unix:///b: platform 'linux' is not "
        "OS/ARCHITECTURE[/VARIANT]"
    ]


def test_a_tree_without_platforms_keeps_its_plans_digest() -> None:
    without = load_config([("config.yaml", "registry: r.example.org\n")])
    with_them = load_config(
        [("config.yaml", "registry: r.example.org\nplatforms: [linux/amd64]\n")]
    )
    assert "platforms" not in public_values(without)
    assert '"platforms": ["linux/amd64"]' in public_values(with_them)


def source(control: str) -> ImageSource:
    return ImageSource(path="php", template="FROM x\n", changelog=CHANGELOG, control=control)


def test_control_platforms() -> None:
    spec = parse_image(source("Package: php\nPlatforms: linux/amd64,\n linux/aarch64\n"))
    assert spec.platforms == ("linux/amd64", "linux/arm64")
    assert parse_image(source("Package: php\n")).platforms == ()


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (
            "Package: php\nPlatforms: linux/amd64, amd64\n",
            "php/control:2: error: Platforms: platform 'amd64' is not OS/ARCHITECTURE[/VARIANT]",
        ),
        (
            "Package: php\nPlatforms: linux/amd64,\n linux/x86_64\n",
            "php/control:3: error: Platforms: platform linux/amd64 is given twice",
        ),
        ("Package: php\nPlatforms: ,\n", "php/control:2: error: Platforms: no platform given"),
        (
            f"Package: php\nPlatforms: linux/{'a' * 33}\n",
            f"php/control:2: error: Platforms: platform 'linux/{'a' * 33}' has a part over 32 "
            "characters",
        ),
    ],
)
def test_bad_control_platforms(control: str, expected: str) -> None:
    with pytest.raises(DockerPkgError) as caught:
        parse_image(source(control))
    assert [str(p) for p in caught.value.problems] == [expected]
