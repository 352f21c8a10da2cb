"""The typed, immutable Config: everything a config file says, with docker-pkg's defaults
filled in, and what follows from it alone (its template variables, the values a plan's
digest covers, the build engine of a run). `core.config` makes one from YAML text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from dockerpkg.core.builders import Builder
from dockerpkg.core.plan import BuildEngine, CacheMode, PublishMode
from dockerpkg.core.registrylimits import RegistryLimits

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
        "registries",
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
    # The platforms (`linux/amd64`) every image is built for, each published as one image
    # index (docs/platforms.md); empty: the daemon's own, as docker-pkg.
    platforms: tuple[str, ...] = ()
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
    # Registry host -> how hard it may be pressed (core/registrylimits.py); unset: defaults.
    registries: RegistryLimits = attrs.field(factory=RegistryLimits)
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
    if not config.platforms:
        # A tree without platforms keeps the digests its plans had before the key existed.
        values.pop("platforms")
    return json.dumps(values, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return repr(value)


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
