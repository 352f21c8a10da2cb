"""The proxies a registry request goes through, looked up in the run's environment as requests'
`get_environ_proxies` looks them up in the process's (which it reads, and even sets, itself):
the `*_proxy` variables, lower case winning, and NO_PROXY's hosts, suffixes and networks."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

import requests.utils


def environment_proxies(env: Mapping[str, str]) -> dict[str, str]:
    """Scheme (or "no", "all") -> proxy URL from ENV's `*_proxy` variables, as urllib's
    `getproxies_environment` reads the process's: any case, then lower case over the rest; an
    empty lower-case one unsets it; HTTP_PROXY is ignored in a CGI script (httpoxy)."""
    proxies = {}
    for name, value in env.items():
        if value and name.lower().endswith("_proxy"):
            proxies[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in env:
        proxies.pop("http", None)
    for name, value in env.items():
        if name.endswith("_proxy"):
            if value:
                proxies[name.lower()[:-6]] = value
            else:
                proxies.pop(name.lower()[:-6], None)
    return proxies


def proxies_for(url: str, env: Mapping[str, str]) -> dict[str, str]:
    """The proxies for URL from ENV, the run's environment: none when NO_PROXY names its host."""
    proxies = environment_proxies(env)
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        return {}
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if _bypassed(parts.hostname, parts.port, no_proxy):
        return {}
    # urllib's rule too, over the proxies as it reads them, as requests asks both.
    if _bypassed_by_urllib(parts.hostname, proxies.get("no")):
        return {}
    return proxies


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """requests' own rule for NO_PROXY: networks and addresses for an IPv4 address, else
    suffixes of the host (with its port or without)."""
    hosts = [h for h in no_proxy.replace(" ", "").split(",") if h]
    if requests.utils.is_ipv4_address(host):
        for entry in hosts:
            if requests.utils.is_valid_cidr(entry):
                if requests.utils.address_in_network(host, entry):
                    return True
            elif host == entry:
                return True
    else:
        with_port = f"{host}:{port}" if port else host
        return any(host.endswith(entry) or with_port.endswith(entry) for entry in hosts)
    return False


def _bypassed_by_urllib(host: str, no_proxy: str | None) -> bool:
    """urllib's rule for NO_PROXY ("no" of the proxies it reads), as requests asks it (of
    the host alone): "*", or a name the host is or ends in after a dot; case does not count."""
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    host = host.lower()
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower()
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
