"""One config file's YAML text, validated: the schema of docker-pkg's keys (and ours), typed
values checked alone, errors located at their line without quoting it (a line may hold the
password). Unknown keys are kept, typed as YAML loaders would, for templates."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import strictyaml as sy
from strictyaml.ruamel.error import MarkedYAMLError, YAMLError

from dockerpkg.core.builders import Builder, TLSFiles, public_url, url_problem
from dockerpkg.core.configregistries import REGISTRIES_SCHEMA, parse_registries
from dockerpkg.core.labels import path_problem, registry_problem
from dockerpkg.core.plan import BuildEngine, CacheMode, PublishMode
from dockerpkg.core.platforms import Platform
from dockerpkg.errors import DockerPkgError, Location, Problem, error

_NULLABLE_STR = sy.EmptyNone() | sy.Str()
_LIMIT_VALUE = sy.Int() | sy.Str()
_BUILDER = sy.Map(
    {
        "url": sy.Str(),
        sy.Optional("slots"): sy.Int(),
        sy.Optional("tls"): sy.Map({"ca": sy.Str(), "cert": sy.Str(), "key": sy.Str()}),
        sy.Optional("platforms"): sy.EmptyList() | sy.Seq(sy.Str()),
    }
)

_RULES = sy.EmptyList() | sy.Seq(sy.Str())
_LINT = {
    sy.Optional("select"): _RULES,
    sy.Optional("extend_select"): _RULES,
    sy.Optional("ignore"): _RULES,
}

_SCHEMA = sy.MapCombined(
    {
        sy.Optional("registry"): _NULLABLE_STR,
        sy.Optional("namespace"): _NULLABLE_STR,
        sy.Optional("username"): _NULLABLE_STR,
        sy.Optional("password"): _NULLABLE_STR,
        sy.Optional("base_images"): sy.EmptyList() | sy.Seq(sy.Str()),
        sy.Optional("apt_options"): _NULLABLE_STR,
        sy.Optional("http_proxy"): _NULLABLE_STR,
        sy.Optional("apt_only_proxy"): _NULLABLE_STR,
        sy.Optional("scan_workers"): sy.Int(),
        sy.Optional("fallback_author"): sy.Str(),
        sy.Optional("fallback_email"): sy.Str(),
        sy.Optional("distribution"): sy.Str(),
        sy.Optional("update_id"): sy.Regex(r"[a-z]"),
        sy.Optional("ca_bundle"): _NULLABLE_STR,
        sy.Optional("force_numeric_user"): sy.Bool(),
        sy.Optional("definition_labels"): sy.Bool(),
        sy.Optional("check_latest"): sy.Bool(),
        sy.Optional("oci_labels"): sy.Bool(),
        sy.Optional("source_url"): _NULLABLE_STR,
        sy.Optional("pin_bases"): sy.Bool(),
        sy.Optional("platforms"): sy.EmptyList() | sy.Seq(sy.Str()),
        sy.Optional("publish"): sy.Enum([m.value for m in PublishMode]),
        sy.Optional("cache"): sy.Enum([m.value for m in CacheMode]),
        sy.Optional("secrets"): sy.EmptyDict()
        | sy.MapPattern(
            sy.Str(), sy.Map({sy.Optional("env"): sy.Str(), sy.Optional("file"): sy.Str()})
        ),
        sy.Optional("ssh"): sy.EmptyDict() | sy.MapPattern(sy.Str(), sy.Str()) | sy.Str(),
        sy.Optional("build_engine"): sy.Enum([e.value for e in BuildEngine]),
        sy.Optional("known_uid_mappings"): sy.EmptyDict() | sy.MapPattern(sy.Str(), sy.Int()),
        sy.Optional("verify_command"): sy.Str(),
        sy.Optional("verify_args"): sy.EmptyList() | sy.Seq(sy.Str()),
        sy.Optional("container_limits"): sy.EmptyNone()
        | sy.MapPattern(sy.Str(), _LIMIT_VALUE)
        | sy.Str(),
        sy.Optional("build_timeout"): sy.EmptyNone() | sy.Float(),
        sy.Optional("verify_timeout"): sy.EmptyNone() | sy.Float(),
        sy.Optional("transfer_timeout"): sy.Float(),
        sy.Optional("builders"): sy.EmptyList() | sy.Seq(_BUILDER),
        sy.Optional("context_roots"): sy.EmptyList() | sy.Seq(sy.Str()),
        sy.Optional("lint"): sy.EmptyDict() | sy.Map(_LINT),
        sy.Optional("refs"): sy.EmptyDict()
        | sy.Map(
            {
                sy.Optional("paths"): sy.EmptyList() | sy.Seq(sy.Str()),
                sy.Optional("ignore"): sy.EmptyList() | sy.Seq(sy.Str()),
            }
        ),
        sy.Optional("registries"): REGISTRIES_SCHEMA,
    },
    sy.Str(),
    sy.Any(),
)

_CONTAINER_LIMIT_KEYS = frozenset({"memory", "memswap", "cpushares", "cpusetcpus"})


# Keys docker-pkg's README lists among its built-in template variables, though docker-pkg
# gives them no default and no other use: trees set them for their templates. Known (never
# reported as unknown), they stay template variables of whatever YAML shape they have.
DOCUMENTED_VARIABLES = frozenset({"seed_image"})

KNOWN_KEYS = frozenset(
    {
        "registry",
        "namespace",
        "username",
        "password",
        "base_images",
        "apt_options",
        "http_proxy",
        "apt_only_proxy",
        "scan_workers",
        "fallback_author",
        "fallback_email",
        "distribution",
        "update_id",
        "ca_bundle",
        "force_numeric_user",
        "definition_labels",
        "check_latest",
        "oci_labels",
        "source_url",
        "pin_bases",
        "platforms",
        "publish",
        "secrets",
        "ssh",
        "cache",
        "build_engine",
        "known_uid_mappings",
        "verify_command",
        "verify_args",
        "container_limits",
        "build_timeout",
        "verify_timeout",
        "transfer_timeout",
        "builders",
        "context_roots",
        "lint",
        "refs",
        "registries",
    }
)


_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9]+([eE][-+]?[0-9]+)?")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})


def _resolve_scalar(text: str) -> Any:
    """Type a free-form scalar the way YAML loaders do, so templates see ints and booleans."""
    lowered = text.lower()
    result: Any = text
    if lowered in {"", "~", "null"}:
        result = None
    elif lowered in _TRUE:
        result = True
    elif lowered in _FALSE:
        result = False
    elif _INT.fullmatch(text):
        result = int(text.replace("_", ""))
    elif _FLOAT.fullmatch(text):
        result = float(text.replace("_", ""))
    return result


def _resolve_any(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_any(v) for v in value]
    if isinstance(value, str):
        return _resolve_scalar(value)
    return value


def _key_at_line(text: str, line: int) -> str | None:
    """The top-level key whose block holds a 1-based line, for error messages."""
    lines = text.splitlines()
    for index in range(min(line, len(lines)) - 1, -1, -1):
        match = re.match(r"([^\s#][^:]*):", lines[index])
        if match:
            return match.group(1).strip().strip("'\"")
    return None


def _mark_line(exc: MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _describe(exc: MarkedYAMLError) -> str:
    # Never str(exc): it quotes the offending line, which may hold the password.
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    return re.sub(r"\s+", " ", what).strip()


def _validation_problem(path: str, text: str, exc: sy.StrictYAMLError) -> Problem:
    line = _mark_line(exc)
    key = _key_at_line(text, line) if line is not None else None
    if key and "Duplicate key" in (exc.problem or ""):
        return error(path, f"key '{key}' is given twice", line)
    where = f"bad value for '{key}'" if key else "invalid config"
    return error(path, f"{where}: {_describe(exc)}", line)


def _line_of_key(text: str, key: str) -> int | None:
    """The first line naming KEY as a mapping key, block or flow style."""
    pattern = re.compile(rf"(^|[{{,]\s*)['\"]?{re.escape(key)}['\"]?\s*:")
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return None


# Keys whose value is a number of seconds.
_SECONDS = frozenset({"build_timeout", "verify_timeout", "transfer_timeout"})


def _value_problem(key: str, value: Any) -> str | None:
    """Why VALUE (already of its key's type) is wrong for KEY, for keys checked alone."""
    if key == "registry" and value:
        return registry_problem(value)
    if key == "namespace" and value:
        return path_problem(value, "namespace")
    if key == "scan_workers" and value < 1:
        return f"{value} is not 1 or more"
    return None


def parse_config_data(text: str, path: str) -> dict[str, Any]:
    """Validate one config file's text; returns its keys (typed) or raises with a location."""
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        return {}
    try:
        document = sy.dirty_load(text, _SCHEMA, label=path, allow_flow_style=True)
    except sy.StrictYAMLError as exc:
        raise DockerPkgError([_validation_problem(path, text, exc)]) from None
    except MarkedYAMLError as exc:
        raise DockerPkgError(
            [error(path, f"not valid YAML: {_describe(exc)}", _mark_line(exc))]
        ) from None
    except YAMLError as exc:
        # Never str(exc): it may quote the offending line, which may hold the password.
        raise DockerPkgError([error(path, f"not valid YAML ({type(exc).__name__})")]) from None
    data: dict[str, Any] = dict(document.data)
    problems = []
    for key, value in data.items():
        line = _line_of_key(text, key)
        if key not in KNOWN_KEYS:
            data[key] = _resolve_any(value)
        elif why := _value_problem(key, value):
            problems.append(error(path, f"bad value for '{key}': {why}", line))
        elif key == "container_limits":
            limits, why = _parse_limits(value)
            if why is not None:
                problems.append(error(path, f"bad value for 'container_limits': {why}", line))
            else:
                data[key] = limits
        elif key in _SECONDS and value is not None and not 0 < value < math.inf:
            problems.append(
                error(
                    path,
                    f"bad value for '{key}': expected a number of seconds above 0",
                    document[key].start_line,
                )
            )
    problems += _parse_platforms(data, document, path)
    problems += _parse_builders(data, document, path)
    problems += parse_registries(data, text, path)
    if problems:
        raise DockerPkgError(problems)
    return data


def platform_list(texts: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """TEXTS as platforms in their canonical spelling (`linux/arm64`), in the order given;
    else why not (a bad spelling, one given twice)."""
    found, why, _ = _platforms(texts)
    return (found, None) if why is None else ((), why)


def _platforms(texts: Sequence[str]) -> tuple[tuple[str, ...], str | None, int]:
    """The canonical platforms of TEXTS, or why not and the index of the bad one."""
    found: dict[str, None] = {}  # ordered, and a set
    for index, text in enumerate(texts):
        try:
            platform = str(Platform.parse(text))
        except ValueError as exc:
            return (), str(exc), index
        if platform in found:
            return (), f"platform {platform} is given twice", index
        found[platform] = None
    return tuple(found), None, len(found)


def _parse_platforms(data: dict[str, Any], document: Any, path: str) -> list[Problem]:
    """Replace DATA's `platforms` by their canonical spellings; a problem at the bad one's
    line otherwise."""
    if "platforms" not in data:
        return []
    found, why, index = _platforms(data["platforms"])
    if why is not None:
        line = document["platforms"][index].start_line
        return [error(path, f"bad value for 'platforms': {why}", line)]
    data["platforms"] = found
    return []


def _parse_builders(data: dict[str, Any], document: Any, path: str) -> list[Problem]:
    """Replace DATA's validated `builders` list by Builder values; a located problem for
    each bad entry."""
    builders: list[Builder] = []
    problems: list[Problem] = []
    for index, entry in enumerate(data.get("builders", ())):
        line = document["builders"][index].start_line
        url = entry["url"]
        why = url_problem(url)
        if why is None and entry.get("slots", 1) < 1:
            why = "'slots' must be 1 or more"
        if why is None and "tls" in entry and not url.startswith("tcp://"):
            why = "'tls' goes with tcp:// URLs only"
        if why is None and any(b.url == url for b in builders):
            why = f"{url} is given twice"
        platforms, wrong = platform_list(entry.get("platforms", ()))
        if why is None and wrong is not None:
            why = f"{public_url(url)}: {wrong}"
        if why is not None:
            problems.append(error(path, f"bad value for 'builders': {why}", line))
            continue
        tls = entry.get("tls")
        builders.append(
            Builder(
                url,
                entry.get("slots"),
                TLSFiles(**tls) if tls is not None else None,
                platforms,
            )
        )
    if "builders" in data:
        data["builders"] = tuple(builders)
    return problems


def _parse_limits(value: Any) -> tuple[dict[str, str | int], str | None]:
    """docker-py's container_limits from a mapping or docker-pkg's 'key=value,...' string;
    else why not."""
    if value is None:
        return {}, None
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            return {}, "expected a mapping or 'memory=...,memswap=...,cpushares=...,cpusetcpus=...'"
        value = {k.strip(): v.strip() for k, v in pairs}
    limits = {k: (int(v) if isinstance(v, str) and v.isdigit() else v) for k, v in value.items()}
    unknown = sorted(set(limits) - _CONTAINER_LIMIT_KEYS)
    if unknown:
        known = ", ".join(sorted(_CONTAINER_LIMIT_KEYS))
        return {}, f"unknown key {', '.join(repr(k) for k in unknown)} (known: {known})"
    return limits, None


def key_location(files: Sequence[tuple[str, str]], key: str) -> Location:
    """Where the merged config got KEY from: the last of the (path, text) FILES naming it."""
    for path, text in reversed(files):
        line = _line_of_key(text, key)
        if line is not None:
            return Location(path, line)
    return Location(files[-1][0] if files else "config")
