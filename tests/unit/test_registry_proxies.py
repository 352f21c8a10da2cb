"""The proxies of a registry request, looked up in the run's environment (effects/registry/
proxies.py), as requests looks them up in the process's."""

from __future__ import annotations

import os

import pytest
import requests.utils

from dockerpkg.effects.registry.proxies import proxies_for

PROXY = "http://proxy:3128"


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("https://r.example.org/v2/", {}, {}),
        ("https://r.example.org/v2/", {"https_proxy": PROXY}, {"https": PROXY}),
        ("https://r.example.org/v2/", {"HTTPS_PROXY": PROXY, "https_proxy": "http://l"}, None),
        ("https://r.example.org/v2/", {"HTTPS_PROXY": PROXY, "https_proxy": ""}, {}),
        ("https://r.example.org/", {"https_proxy": PROXY, "no_proxy": "example.org"}, {}),
        ("https://r.example.org/", {"https_proxy": PROXY, "NO_PROXY": ".other.org"}, None),
        ("https://r.example.org:5000/", {"https_proxy": PROXY, "no_proxy": "org:5000"}, {}),
        ("https://10.1.2.3/", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, {}),
        ("https://10.1.2.3/", {"https_proxy": PROXY, "no_proxy": "10.1.2.3"}, {}),
        ("https://11.1.2.3/", {"https_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, None),
        ("https://r.example.org/", {"https_proxy": PROXY, "no_proxy": "*"}, {}),
        ("https://example.org/", {"https_proxy": PROXY, "no_proxy": " .EXAMPLE.org"}, {}),
        ("https://xexample.org/", {"https_proxy": PROXY, "no_proxy": ".example.org"}, None),
        ("https://r.example.org/", {"https_proxy": PROXY, "no_proxy": "", "NO_PROXY": "org"}, {}),
        ("http://r.example.org/", {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}, {}),
        ("http://r.example.org/", {"all_proxy": PROXY}, {"all": PROXY}),
    ],
)
def test_as_requests_reads_the_process_environment(
    url: str, env: dict[str, str], expected: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = proxies_for(url, env)
    if expected is not None:
        assert {k: v for k, v in found.items() if k != "no"} == expected
    # requests' own answer, with the same variables as the process's whole environment.
    monkeypatch.setattr(os, "environ", dict(env))
    assert found == requests.utils.get_environ_proxies(url)


def test_the_process_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", PROXY)
    assert proxies_for("https://r.example.org/", {}) == {}
    assert proxies_for("https://r.example.org/", {"https_proxy": "http://p"}) == {
        "https": "http://p"
    }
