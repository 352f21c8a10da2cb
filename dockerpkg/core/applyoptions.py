"""What `apply` takes from its own run, not from the plan: the short, named list.

The plan decides what is done: which steps, the build engine, the cache mode, the publish
mode, the builders, the secrets' sources. A run adds only how much runs at once, how long a
step may take, how much of its output is kept, and where its logs go: `ApplyOptions`, made
once before the run starts (from the flags, else the config, else the defaults below) and
shown in the report. Nothing else is read while applying (see docs/design.md, "What apply
takes from its run").
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

import attrs

from dockerpkg.core.config import DEFAULT_JOBS, Config
from dockerpkg.core.plan import BuildEngine

#: Characters one step (a pull, a build, a verification, a publish) may write to its log.
DEFAULT_LOG_LIMIT = 10 * 1024 * 1024
#: Pushes at once on each builder, beside its builds.
DEFAULT_PUSH_JOBS = 4
#: Pulls of base and published images at once, over the whole run.
DEFAULT_PULL_JOBS = 4


@attrs.frozen(kw_only=True)
class ApplyOptions:
    """How one run carries a plan out; never what it does (that is the plan's)."""

    run_dir: str  # the run folder: one log per image
    jobs: int  # builds at once on a builder whose slots are not given
    push_jobs: int = DEFAULT_PUSH_JOBS
    pull_jobs: int = DEFAULT_PULL_JOBS
    build_timeout: float | None = None  # seconds one image's build may take; None: no limit
    verify_timeout: float | None = None  # seconds one image's verification may take
    # Seconds a pull or a push may wait for a word from the daemon.
    transfer_timeout: float = 300.0
    log_limit: int = DEFAULT_LOG_LIMIT  # characters each step may write to its log


class GivenOptions(TypedDict, total=False):
    """What a run may give of its options (its flags): each left out or None is the config's
    (the timeouts), else the default (JOBS: the engine's, `DEFAULT_JOBS`)."""

    jobs: int | None
    build_timeout: float | None
    verify_timeout: float | None
    transfer_timeout: float | None
    log_limit: int | None


def resolved_options(
    config: Config, engine: BuildEngine, run_dir: str, **given: Unpack[GivenOptions]
) -> ApplyOptions:
    """The options of a run of a plan made for ENGINE: each GIVEN value, else the CONFIG's,
    else the default (see GivenOptions)."""
    jobs = given.get("jobs")
    build_timeout = given.get("build_timeout")
    verify_timeout = given.get("verify_timeout")
    transfer_timeout = given.get("transfer_timeout")
    log_limit = given.get("log_limit")
    return ApplyOptions(
        run_dir=run_dir,
        jobs=DEFAULT_JOBS[engine] if jobs is None else jobs,
        build_timeout=config.build_timeout if build_timeout is None else build_timeout,
        verify_timeout=config.verify_timeout if verify_timeout is None else verify_timeout,
        transfer_timeout=config.transfer_timeout if transfer_timeout is None else transfer_timeout,
        log_limit=DEFAULT_LOG_LIMIT if log_limit is None else log_limit,
    )


def options_to_data(options: ApplyOptions) -> dict[str, Any]:
    """OPTIONS as the report's JSON shows them."""
    return attrs.asdict(options)
