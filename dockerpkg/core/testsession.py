"""A test session's builds, as values: the suffix that makes its tags its own, the label its
containers carry, and what became of each image of a run (from the plan and its report).

A session (dockerpkg.api.testsession) builds through the same planner and scheduler as
`build`; only its selection (image names), its suffix and publishing (off) differ. Pure.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Mapping

import attrs

from dockerpkg.core.plan import Op, Plan, Step
from dockerpkg.core.report import Outcome, Report, StepOutcome

__all__ = [
    "SESSION_LABEL",
    "BuildOutcome",
    "ImageResult",
    "VerifyOutcome",
    "image_results",
    "is_session_id",
    "session_suffix",
]

# The label on every container a session makes (its value: the session's id), so that the
# session, or the next one after a kill, finds and removes them.
SESSION_LABEL = "org.dockerpkg.session"
# A session's id: 12 lowercase hex digits (48 random bits: no two sessions share one).
_SESSION_ID = re.compile(r"[0-9a-f]{12}")
_SUFFIX_WORD = "-pytest-"


def is_session_id(text: str) -> bool:
    return _SESSION_ID.fullmatch(text) is not None


def session_suffix(session_id: str) -> str:
    """What the session SESSION_ID appends to every version: `-pytest-ID`, 20 characters, so
    versions of up to 108 characters still make Docker tags (at most 128: `[A-Za-z0-9_]`
    then `[A-Za-z0-9_.-]`)."""
    if not is_session_id(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return _SUFFIX_WORD + session_id


class BuildOutcome(enum.Enum):
    BUILT = "built"
    FAILED = "failed"
    PARENT_FAILED = "parent_failed"  # not built: a parent image failed (or was not built)
    NOT_RUN = "not_run"  # the run was interrupted before it was built


class VerifyOutcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NO_TEST = "no_test"  # the image has no test.sh (or the file its command names)
    NOT_RUN = "not_run"  # not built, or the run was interrupted


@attrs.frozen
class ImageResult:
    """What a session's run did with one image: LABEL is the session's tag of it; MESSAGE
    says why it failed (the log's tail added by the session), empty when all went well;
    LOG is the image's log in the run folder (None: nothing was logged)."""

    name: str
    label: str
    build: BuildOutcome
    verify: VerifyOutcome
    message: str = ""
    log: str | None = None


def image_results(
    plan: Plan, report: Report, names: tuple[str, ...], run_dir: str
) -> dict[str, ImageResult]:
    """The results of NAMES (asked for) and of every image PLAN builds, in build order, from
    REPORT (the run of PLAN in RUN_DIR). A build skipped because a parent did not build is
    PARENT_FAILED; one skipped because another step it needs failed (a pull, its build
    stage) is FAILED, naming that step."""
    outcomes = {(o.step.op, o.step.image): o for o in report.outcomes}
    built = [s.image for s in plan.steps if s.op is Op.BUILD]
    wanted = list(dict.fromkeys([*built, *names]))
    results: dict[str, ImageResult] = {}
    for name in wanted:
        image = plan.image(name)
        log = posixpath.join(run_dir, f"{name}.log")
        build = outcomes.get((Op.BUILD, name))
        if build is None:
            # Not built by this run: the daemon holds the session's tag already.
            results[name] = ImageResult(
                name, image.label, BuildOutcome.BUILT, VerifyOutcome.NOT_RUN
            )
            continue
        outcome, message = _build_outcome(build, image.parents, results, outcomes)
        verify, why = _verify_outcome(outcomes.get((Op.VERIFY, name)), outcome)
        # A build skipped for its parent never started: it has no log of its own.
        logged = None if outcome is BuildOutcome.PARENT_FAILED else log
        results[name] = ImageResult(name, image.label, outcome, verify, message or why, logged)
    return results


_Outcomes = Mapping[tuple[Op, str], StepOutcome]


def _build_outcome(
    build: StepOutcome,
    parents: tuple[str, ...],
    earlier: Mapping[str, ImageResult],
    outcomes: _Outcomes,
) -> tuple[BuildOutcome, str]:
    if build.outcome is Outcome.SUCCEEDED:
        return BuildOutcome.BUILT, ""
    if build.outcome is Outcome.FAILED:
        return BuildOutcome.FAILED, f"build failed: {build.error}"
    if build.outcome is Outcome.CANCELLED:
        return BuildOutcome.NOT_RUN, "not built: the run was interrupted"
    failed = [p for p in parents if p in earlier and earlier[p].build is not BuildOutcome.BUILT]
    if failed:
        return BuildOutcome.PARENT_FAILED, f"not built: parent image {failed[0]} was not built"
    cause = _failed_need(build.step, outcomes)
    if cause is None:
        return BuildOutcome.NOT_RUN, "not built: a step it needs did not run"
    return BuildOutcome.FAILED, f"not built: {cause.step.key.words} failed: {cause.error}"


def _failed_need(step: Step, outcomes: _Outcomes) -> StepOutcome | None:
    for key in step.needs:
        found = outcomes.get((key.op, key.image))
        if found is not None and found.outcome is Outcome.FAILED:
            return found
    return None


def _verify_outcome(verify: StepOutcome | None, build: BuildOutcome) -> tuple[VerifyOutcome, str]:
    if verify is None or build is not BuildOutcome.BUILT:
        return VerifyOutcome.NOT_RUN, ""
    if verify.outcome is Outcome.SUCCEEDED:
        missing = verify.step.missing_test is not None
        return (VerifyOutcome.NO_TEST if missing else VerifyOutcome.PASSED), ""
    if verify.outcome is Outcome.FAILED:
        return VerifyOutcome.FAILED, f"verification failed: {verify.error}"
    return VerifyOutcome.NOT_RUN, "not verified: the run was interrupted"
