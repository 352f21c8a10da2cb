"""Config: YAML text -> a typed, immutable Config, with docker-pkg's keys and defaults.

Pure: callers read the files and pass their text in. Every key, known or not, is also a
template variable; unknown keys keep whatever YAML shape they have.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import strictyaml as sy
from strictyaml.ruamel.error import MarkedYAMLError, YAMLError

from dockerpkg.core.builders import Builder, TLSFiles, url_problem
from dockerpkg.core.labels import path_problem, registry_problem
from dockerpkg.core.plan import BuildEngine, CacheMode, PublishMode
from dockerpkg.errors import DockerPkgError, Location, Problem, error, warning

# Builds at once when --jobs does not say, from the benchmark on 2-core machines
# (docs/performance.md, `--jobs` default): BuildKit's steps are cheap enough for 8 to
# overlap more of the waiting on the daemon and the registry; the classic engine's
# containers and commits thrash past 4.
DEFAULT_JOBS: Mapping[BuildEngine, int] = MappingProxyType(
    {BuildEngine.BUILDKIT: 8, BuildEngine.CLASSIC: 4}
)


DEFAULT_UID_MAPPINGS: Mapping[str, int] = MappingProxyType(
    {"root": 0, "www-data": 33, "nobody": 65534}
)
DEFAULT_VERIFY_ARGS = ("-c", "{path}/test.sh {image}")

# Keys whose value is a secret: never a template variable, never shown.
SECRET_KEYS = frozenset({"password"})

_NULLABLE_STR = sy.EmptyNone() | sy.Str()
_LIMIT_VALUE = sy.Int() | sy.Str()
_BUILDER = sy.Map(
    {
        "url": sy.Str(),
        sy.Optional("slots"): sy.Int(),
        sy.Optional("tls"): sy.Map({"ca": sy.Str(), "cert": sy.Str(), "key": sy.Str()}),
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
    }
)

# Keys that say where and how to run or check, not what to build: neither template variables
# nor part of a plan's digest (a plan records its builders itself; what links reach is in
# the tree's digest through the files they bring; time limits and whether `latest` is looked
# at change no image).
RUN_KEYS = frozenset(
    {
        "builders",
        "build_engine",
        "context_roots",
        "lint",
        "refs",
        "check_latest",
        "verify_timeout",
        "transfer_timeout",
        "publish",
        "secrets",
        "ssh",
        "cache",
    }
)


@attrs.frozen
class LintSettings:
    """The config's `lint` key: rule codes as written (the lint module checks them)."""

    select: tuple[str, ...] | None = None  # None: the default rules
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


@attrs.frozen
class RefsSettings:
    """The config's `refs` key: where `refs` looks without PATHs (relative to the config
    file naming them) and globs of files it leaves out."""

    paths: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


def _freeze(value: Any) -> Any:
    """Make nested YAML data immutable so a frozen Config really is frozen."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@attrs.frozen
class Config:
    """Everything a config file says, with docker-pkg's defaults filled in."""

    registry: str | None = None
    namespace: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    base_images: tuple[str, ...] = ()
    apt_options: str = ""
    http_proxy: str | None = None
    apt_only_proxy: str | None = None
    scan_workers: int = 8
    fallback_author: str = "Author"
    fallback_email: str = "email@domain"
    distribution: str = "wikimedia"
    update_id: str = "s"
    ca_bundle: str | None = None
    force_numeric_user: bool = False
    # Label built images with their definitions, for drift (the classic engine spends one
    # metadata commit a build on it; BuildKit sets it on export).
    definition_labels: bool = True
    # Ask where `latest` is beside each version (a second check per image): see plan_build.
    check_latest: bool = True
    # Standard OCI labels on built images (title, version, created, revision, source).
    oci_labels: bool = True
    source_url: str | None = None  # the `source` label; None: the checkout's origin remote
    # Render FROM lines of base images with the digest observed when planning.
    pin_bases: bool = False
    # When the tags users pull move: image by image, or once every image is staged.
    publish: PublishMode = PublishMode.PER_IMAGE
    cache: CacheMode = CacheMode.NONE  # registry: builds reuse layers of published images
    # Build secrets: ID -> {env: VARIABLE} or {file: PATH}, where the value comes from.
    secrets: Mapping[str, Mapping[str, str]] = attrs.field(factory=lambda: MappingProxyType({}))
    # SSH agents for RUN --mount=type=ssh: `default` (SSH_AUTH_SOCK) or ID -> socket or key path.
    ssh: str | Mapping[str, str] = attrs.field(factory=lambda: MappingProxyType({}))
    build_engine: BuildEngine | None = None  # None: see `engine`
    known_uid_mappings: Mapping[str, int] = DEFAULT_UID_MAPPINGS
    verify_command: str = "/bin/bash"
    verify_args: tuple[str, ...] = DEFAULT_VERIFY_ARGS
    container_limits: Mapping[str, str | int] = attrs.field(factory=lambda: MappingProxyType({}))
    build_timeout: float | None = None  # seconds one image's build may take; None: no limit
    verify_timeout: float | None = None  # seconds one image's verification may take
    # Seconds a pull or a push may wait for a word from the daemon.
    transfer_timeout: float = 300.0
    # The builders (Docker hosts) to build on; empty: the environment's daemon (DOCKER_HOST).
    builders: tuple[Builder, ...] = ()
    # Folders outside the repository that links in image folders may lead into, as written
    # (relative to the config file naming them).
    context_roots: tuple[str, ...] = ()
    lint: LintSettings = LintSettings()
    refs: RefsSettings = RefsSettings()
    # Keys the schema does not know, as YAML gave them: template variables only.
    extra: Mapping[str, Any] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    def engine(self) -> BuildEngine:
        """The engine the config asks for: BuildKit, unless `container_limits` are set (the
        daemon's BuildKit ignores them; the classic engine applies them to every RUN) and
        `build_engine` does not say."""
        if self.build_engine is not None:
            return self.build_engine
        return BuildEngine.CLASSIC if self.container_limits else BuildEngine.BUILDKIT

    @property
    def has_credentials(self) -> bool:
        """docker-pkg publishes only when both username and password are set."""
        return bool(self.username) and bool(self.password)

    def template_variables(self) -> dict[str, Any]:
        """Every config key (defaults included) as Jinja sees it; secrets left out."""
        known = {
            f.name: getattr(self, f.name)
            for f in attrs.fields(Config)
            if f.name != "extra" and f.name not in SECRET_KEYS | RUN_KEYS
        }
        # docker-pkg shows absent strings as "" to templates ({{ namespace }} renders empty).
        for key in ("registry", "namespace", "username"):
            if known[key] is None:
                known[key] = ""
        known["base_images"] = list(self.base_images)
        known["verify_args"] = list(self.verify_args)
        known["known_uid_mappings"] = dict(self.known_uid_mappings)
        known["container_limits"] = dict(self.container_limits)
        variables = {k: v for k, v in self.extra.items() if k not in SECRET_KEYS}
        variables.update(known)
        return variables


def public_values(config: Config) -> str:
    """Every value of CONFIG but the secrets, as canonical JSON: what a digest may cover.

    Plans are shared (CI artifacts); a hash over a text holding the password would let
    anyone holding the plan test guesses of that password offline.
    """
    values = {f.name: getattr(config, f.name) for f in attrs.fields(Config)}
    values["extra"] = dict(config.extra)
    for key in SECRET_KEYS | RUN_KEYS:
        values.pop(key, None)
        values["extra"].pop(key, None)
    return json.dumps(values, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


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
    problems += _parse_builders(data, document, path)
    if problems:
        raise DockerPkgError(problems)
    return data


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
        if why is not None:
            problems.append(error(path, f"bad value for 'builders': {why}", line))
            continue
        tls = entry.get("tls")
        builders.append(
            Builder(url, entry.get("slots"), TLSFiles(**tls) if tls is not None else None)
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


def key_location(files: Sequence[tuple[str, str]], key: str) -> Location:
    """Where the merged config got KEY from: the last of the (path, text) FILES naming it."""
    for path, text in reversed(files):
        line = _line_of_key(text, key)
        if line is not None:
            return Location(path, line)
    return Location(files[-1][0] if files else "config")


def proxy_password_warnings(config: Config, files: Sequence[tuple[str, str]]) -> list[Problem]:
    """A warning for each proxy key whose URL holds a password: `apt_install` writes the
    proxy into rendered Dockerfiles, so into plans and image history (as docker-pkg does)."""
    found = []
    for key in ("http_proxy", "apt_only_proxy"):
        value = getattr(config, key)
        if key == "apt_only_proxy" and value == config.http_proxy:
            continue  # taken from http_proxy: said once, there
        try:
            password = urllib.parse.urlsplit(value).password if value else None
        except ValueError:
            password = None
        if password:
            where = key_location(files, key)
            found.append(
                warning(
                    where.path,
                    f"'{key}' holds a password: templates using apt_install write the proxy "
                    "into the rendered Dockerfile, so into plans, build logs and the image's "
                    "history, as docker-pkg does; use a proxy that needs no password (one "
                    "that admits the builders' addresses)",
                    where.line,
                )
            )
    return found


def proxy_args(config: Config) -> dict[str, str]:
    """The build args (and verification environment) a proxy gives: docker-pkg passes its
    proxy to builds and to verification, in both spellings."""
    if not config.http_proxy:
        return {}
    return dict.fromkeys(
        ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"), config.http_proxy
    )


def engine_for(config: Config, switch: str | None, given: BuildEngine | None = None) -> BuildEngine:
    """The engine of a run, first found of: GIVEN (--engine), SWITCH (the environment's
    DOCKER_BUILDKIT, the docker CLI's switch: 0/false or 1/true, anything else says
    nothing), the config's (`Config.engine`). Decided once, when planning: the plan
    records it and `apply` follows the plan."""
    if given is not None:
        return given
    value = (switch or "").strip().lower()
    if value in ("0", "false"):
        return BuildEngine.CLASSIC
    if value in ("1", "true"):
        return BuildEngine.BUILDKIT
    return config.engine
