"""One call each: plan a build run (`plan_run`), decide what the run adds to the plan
(`apply_options`), carry it out (`apply_run`, in dockerpkg.api.build).

What the flags of `plan`, `apply` and `build` ask is one value, `PlanRequest`; it is merged
with the config's defaults here, once (the publish mode among them: the observation asks
for staged images by the same mode the plan records).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

import attrs

from dockerpkg.api.build import PlannedRun, build_engine, options_for
from dockerpkg.api.workspace import Workspace, build_plan, observe_tree, publish_mode
from dockerpkg.core.applyoptions import ApplyOptions, GivenOptions
from dockerpkg.core.config import Config
from dockerpkg.core.plan import BuildEngine, BuildOptions, CacheMode, PublishMode
from dockerpkg.core.secrets import SecretSource
from dockerpkg.effects.progress import LineProgress, LiveProgress
from dockerpkg.effects.tasks import Interrupt, Listener
from dockerpkg.errors import DockerPkgError

if TYPE_CHECKING:
    from dockerpkg.effects.registry.gate import RegistryGates

# What a caller watching or stopping a run needs, with the calls (the CLI imports no effects).
__all__ = [
    "Interrupt",
    "LineProgress",
    "Listener",
    "LiveProgress",
    "PlanRequest",
    "apply_options",
    "build_options",
    "default_run_dir",
    "plan_run",
    "version_suffix",
]


@attrs.frozen(kw_only=True)
class PlanRequest:
    """What a build run is asked: the flags of plan, apply and build, and the run's
    environment (read once by the caller). Each None: the config's."""

    env: Mapping[str, str]
    config_path: str | None = None  # -c; None: the usual places
    select: str | None = None  # fnmatch glob on full labels
    # Images asked for by name (with the parents they need; None: every image --select
    # matches), as a test session asks.
    names: tuple[str, ...] | None = None
    # Publish nothing, whatever the credentials (a test session); the plan says so.
    no_publish: bool = False
    # What a caller of its own appends to every version (a test session's `-pytest-ID`);
    # excludes nightly and snapshot.
    suffix: str = ""
    nightly: bool = False  # versions get -YYYYMMDD
    snapshot: bool = False  # versions get -YYYYMMDD-HHMMSS
    now: datetime.datetime | None = None  # the clock --nightly/--snapshot read; None: now
    pull: bool = True  # False: --no-pull
    use_cache: bool = False
    builders: str | None = None  # --builders URL[=SLOTS],...
    publish: PublishMode | None = None
    cache: CacheMode | None = None
    engine: BuildEngine | None = None  # None: DOCKER_BUILDKIT in ENV, else the config's
    secrets: tuple[SecretSource, ...] = ()  # --secret and --ssh, over the config's
    offline: bool = False  # observe nothing: nothing is built or published
    # False: the tree's registry is not asked (a test session: no registry holds its tags,
    # and one that cannot be reached must not stop it); with pin_bases the bases' own
    # registries still are; bases are still pulled unless `pull` is off.
    ask_registry: bool = True
    # `plan`: render every Dockerfile, read the published definitions (drift); `build`
    # renders only what it builds.
    render_all: bool = False


def plan_run(
    directory: str,
    request: PlanRequest,
    *,
    on_read: Callable[[Workspace], None] | None = None,
    gates: RegistryGates | None = None,
) -> PlannedRun:
    """The build run of the tree in DIRECTORY that REQUEST asks for: its tree and config
    read, the daemon and the registry observed (unless offline), the plan made. ON_READ is
    called with the tree once it is read, before the plan is made (where a caller shows
    the tree's warnings). GATES: the registry gates of a caller's longer run (a test
    session's); none: the run's own, made from the config, which the observation uses and
    the PlannedRun carries to apply_run. Raises DockerPkgError with every problem found."""
    suffix = version_suffix(request, directory)

    def options(config: Config) -> BuildOptions:
        return build_options(request, suffix, config)

    workspace, observed, credentials, chosen, gates = observe_tree(
        directory,
        request.config_path,
        request.env,
        options,
        render=request.render_all,
        offline=request.offline,
        definitions=request.render_all,
        builders=request.builders,
        registry=request.ask_registry,
        gates=gates,
    )
    if on_read is not None:
        on_read(workspace)
    plan = build_plan(workspace, observed, chosen, request.secrets, request.env)
    return PlannedRun(plan, workspace, credentials, request.env, gates=gates)


def build_options(request: PlanRequest, suffix: str, config: Config) -> BuildOptions:
    """REQUEST's options, each the config's where the request leaves it open."""
    return BuildOptions(
        select=request.select,
        names=None if request.names is None else tuple(sorted(set(request.names))),
        no_publish=request.no_publish,
        pull=request.pull,
        use_cache=request.use_cache,
        suffix=suffix,
        publish=publish_mode(config, request.publish),
        cache=config.cache if request.cache is None else request.cache,
        engine=build_engine(config, request.env, request.engine),
    )


def version_suffix(request: PlanRequest, directory: str) -> str:
    """What --nightly or --snapshot append to every version (by REQUEST's clock), or the
    caller's own suffix."""
    if request.nightly and request.snapshot:
        raise DockerPkgError.single(directory, "--nightly and --snapshot exclude each other")
    if request.suffix:
        if request.nightly or request.snapshot:
            raise DockerPkgError.single(
                directory, "a run's own version suffix excludes --nightly and --snapshot"
            )
        return request.suffix
    if not (request.nightly or request.snapshot):
        return ""
    now = request.now or datetime.datetime.now()
    return now.strftime("-%Y%m%d-%H%M%S" if request.snapshot else "-%Y%m%d")


def apply_options(
    planned: PlannedRun,
    *,
    run_dir: str | None = None,
    now: datetime.datetime | None = None,
    **given: Unpack[GivenOptions],
) -> ApplyOptions:
    """What the run of PLANNED adds to its plan: each value GIVEN (jobs, build_timeout,
    verify_timeout, transfer_timeout, log_limit: the flags), else the config's, else the
    default (see dockerpkg.core.applyoptions). RUN_DIR: default, a new folder under the
    temporary folder, named by NOW (default: the clock) and the process."""
    return options_for(
        planned, run_dir or str(default_run_dir(now or datetime.datetime.now())), **given
    )


def default_run_dir(now: datetime.datetime) -> Path:
    """A run folder of its own: stamped with NOW and the process."""
    stamp = now.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.gettempdir()) / "dockerpkg-runs" / f"{stamp}-{os.getpid()}"
