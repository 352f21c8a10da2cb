"""Config: YAML text -> a typed, immutable Config, with docker-pkg's keys and defaults.

Pure: callers read the files and pass their text in. Every key, known or not, is also a
template variable; unknown keys keep whatever YAML shape they have.

One file's text is validated by `core.configyaml`; the Config value is `core.configvalue`'s;
what a proxy means for a run is `core.proxies`'. Their public names are importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from dockerpkg.core.configvalue import (
    DEFAULT_JOBS,
    DEFAULT_UID_MAPPINGS,
    DEFAULT_VERIFY_ARGS,
    RUN_KEYS,
    SECRET_KEYS,
    Config,
    LintSettings,
    RefsSettings,
    engine_for,
    public_values,
)
from dockerpkg.core.configyaml import (
    DOCUMENTED_VARIABLES,
    KNOWN_KEYS,
    key_location,
    parse_config_data,
)
from dockerpkg.core.plan import BuildEngine, CacheMode, PublishMode
from dockerpkg.core.proxies import proxy_args, proxy_password_warnings
from dockerpkg.errors import DockerPkgError, Problem

__all__ = [
    "DEFAULT_JOBS",
    "DEFAULT_UID_MAPPINGS",
    "DEFAULT_VERIFY_ARGS",
    "DOCUMENTED_VARIABLES",
    "KNOWN_KEYS",
    "RUN_KEYS",
    "SECRET_KEYS",
    "Config",
    "LintSettings",
    "RefsSettings",
    "build_config",
    "engine_for",
    "key_location",
    "load_config",
    "parse_config_data",
    "proxy_args",
    "proxy_password_warnings",
    "public_values",
]


def _freeze(value: Any) -> Any:
    """Make nested YAML data immutable so a frozen Config really is frozen."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def build_config(*layers: Mapping[str, Any]) -> Config:
    """Merge validated layers key by key (later wins) and apply docker-pkg's derived defaults."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    kwargs: dict[str, Any] = {k: _freeze(v) for k, v in merged.items() if k in KNOWN_KEYS}
    extra = {k: _freeze(v) for k, v in merged.items() if k not in KNOWN_KEYS}
    if "build_engine" in kwargs:
        kwargs["build_engine"] = BuildEngine(kwargs["build_engine"])
    if "publish" in kwargs:
        kwargs["publish"] = PublishMode(kwargs["publish"])
    if "cache" in kwargs:
        kwargs["cache"] = CacheMode(kwargs["cache"])
    if "lint" in kwargs:
        kwargs["lint"] = LintSettings(**dict(kwargs["lint"]))
    if "refs" in kwargs:
        kwargs["refs"] = RefsSettings(**dict(kwargs["refs"]))
    if kwargs.get("apt_only_proxy") is None and kwargs.get("http_proxy"):
        kwargs["apt_only_proxy"] = kwargs["http_proxy"]
    for key in ("apt_options",):
        if kwargs.get(key) is None:
            kwargs.pop(key, None)
    return Config(**kwargs, extra=MappingProxyType(extra))


def load_config(files: list[tuple[str, str]]) -> Config:
    """Parse (path, text) pairs, user file first, and merge them; all problems reported together."""
    layers = []
    problems: list[Problem] = []
    for path, text in files:
        try:
            layers.append(parse_config_data(text, path))
        except DockerPkgError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DockerPkgError(problems)
    return build_config(*layers)
