"""Run reports: what happened to every step of a plan. Data and its two views only."""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from dockerpkg.core.applyoptions import ApplyOptions, options_to_data
from dockerpkg.core.ops import reported_as
from dockerpkg.core.plan import Op, Plan, Step
from dockerpkg.core.registrylimits import RegistryUsage
from dockerpkg.core.runrules import log_name


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # something it needed failed or was skipped
    CANCELLED = "cancelled"  # the run was interrupted before it started


@attrs.frozen
class StepOutcome:
    step: Step
    outcome: Outcome
    started: float | None = None  # seconds since the run began
    duration: float | None = None
    detail: str | None = None  # image ID, pushed digest, ...
    error: str | None = None
    builder: str | None = None  # with several builders: the one it ran on
    waited: float | None = None  # with several builders: seconds a build waited for parents


@attrs.frozen
class Move:
    """An image taken off a builder that was lost, to be built again on another."""

    image: str
    lost: str  # the builder that went away
    to: str | None  # where it was built again; None: nowhere (no builder or no moves left)
    reason: str


@attrs.frozen
class Report:
    """Every step of the plan with its outcome, in plan order."""

    outcomes: tuple[StepOutcome, ...]
    run_dir: str | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    moves: tuple[Move, ...] = ()
    lost_builders: tuple[str, ...] = ()
    # Labels a saved plan would have published that another run published meanwhile.
    published_since: tuple[str, ...] = ()
    # What the run took from itself rather than the plan (None: not told).
    options: ApplyOptions | None = None
    # What the run asked of each registry host (its requests, daemon pulls and pushes), and
    # how long it waited for their limits; by host.
    registries: tuple[RegistryUsage, ...] = ()

    def of(self, op: Op, image: str) -> StepOutcome | None:
        for item in self.outcomes:
            if item.step.op is op and item.step.image == image:
                return item
        return None

    @property
    def failed(self) -> bool:
        return any(o.outcome is Outcome.FAILED for o in self.outcomes)

    def count(self, op: Op, outcome: Outcome = Outcome.SUCCEEDED) -> int:
        return sum(1 for o in self.outcomes if o.step.op is op and o.outcome is outcome)

    def images(self) -> list[str]:
        return list(dict.fromkeys(o.step.image for o in self.outcomes if o.step.op is not Op.PULL))


def summary_line(report: Report) -> str:
    failed = sum(1 for o in report.outcomes if o.outcome is Outcome.FAILED)
    skipped = sum(1 for o in report.outcomes if o.outcome is Outcome.SKIPPED)
    cancelled = sum(1 for o in report.outcomes if o.outcome is Outcome.CANCELLED)
    parts = [
        f"{report.count(Op.BUILD)} built",
        f"{report.count(Op.VERIFY)} verified",
        f"{_reported(report, Op.PUBLISH)} published",
        f"{failed} failed",
        f"{skipped} skipped",
    ]
    if indexed := _reported(report, Op.INDEX):  # several platforms: the indexes put
        parts.insert(3, f"{indexed} indexed")
    if report.count(Op.REMOVE):
        parts.insert(0, f"{report.count(Op.REMOVE)} removed")
    if report.count(Op.TAG_LATEST):
        parts.insert(-2, f"{report.count(Op.TAG_LATEST)} latest set")
    if report.count(Op.UNSTAGE):
        parts.insert(-2, f"{report.count(Op.UNSTAGE)} staging removed")
    if cancelled:
        parts.append(f"{cancelled} not started (interrupted)")
    return "Done: " + ", ".join(parts) + f" in {report.elapsed:.1f}s."


def registry_lines(report: Report) -> list[str]:
    """One line per registry host that limited the run (a 429, GHCR's 403): how much it was
    asked and how long the run waited for it; none when no host did."""
    return [
        f"registry {u.host}: {u.requests:,} requests, {u.limited:,} limited, "
        f"waited {u.waited:.1f} s for its limits"
        for u in report.registries
        if u.limited
    ]


def _reported(report: Report, op: Op) -> int:
    """The steps that succeeded counted under OP (a staging push under publish)."""
    return sum(
        1
        for o in report.outcomes
        if reported_as(o.step.op) is op and o.outcome is Outcome.SUCCEEDED
    )


def report_table(report: Report) -> str:
    """Per image: result, and the duration of each phase."""
    ops = [
        Op.PULL,
        Op.BUILD_STAGE,
        Op.BUILD,
        Op.VERIFY,
        Op.PUBLISH,
        Op.INDEX,
        Op.TAG_LATEST,
        Op.REMOVE,
    ]
    present = {reported_as(o.step.op) for o in report.outcomes}
    shown = [op for op in ops if op in present]
    rows = [["image", "result", *[op.value for op in shown]]]
    placed = any(o.builder for o in report.outcomes)
    if placed:
        rows[0] += ["builder", "wait"]
    for image in dict.fromkeys(o.step.image for o in report.outcomes):
        mine = [o for o in report.outcomes if o.step.image == image]
        result = next((o.outcome.value for o in mine if o.outcome is not Outcome.SUCCEEDED), "ok")
        cells = []
        for op in shown:
            item = next((o for o in mine if reported_as(o.step.op) is op), None)
            if item is None:
                cells.append("")
            elif item.duration is not None and item.outcome is Outcome.SUCCEEDED:
                cells.append(f"{item.duration:.1f}s")
            else:
                cells.append(item.outcome.value)
        if placed:
            cells += _placement(mine)
        rows.append([image, result, *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    errors = [
        f"  {reported_as(o.step.op).value} {o.step.image}: {o.error}"
        for o in report.outcomes
        if o.outcome is Outcome.FAILED
    ]
    if errors:
        lines += ["Failures:", *errors]
    if report.published_since:
        lines.append("Published since the plan was made (not built or pushed):")
        lines += [f"  {label}" for label in report.published_since]
    if report.lost_builders:
        lines.append("Lost builders: " + ", ".join(report.lost_builders))
    if report.moves:
        lines.append("Moved:")
        lines += [
            f"  {m.image}: from {m.lost} to {m.to or 'no other builder'}" for m in report.moves
        ]
    return "\n".join(lines) + "\n"


def _placement(mine: list[StepOutcome]) -> list[str]:
    """The builder and parent wait cells of one image's row."""
    build = next((o for o in mine if o.step.op is Op.BUILD), None)
    where = next((o.builder for o in mine if o.builder), None)
    wait = "" if build is None or build.waited is None else f"{build.waited:.1f}s"
    return [where or "", wait]


# The `--report` JSON's format history (bumped on any change a consumer must follow):
# 2: an all_or_nothing run's pushes to the staging reference are `stage` steps (`publish`
#    before, as in plan format 9); `apply_options`, what the run took from itself.
# 3: several platforms: `index` steps, and steps of platform images (`NAME:SUFFIX`), whose
#    `log` is `NAME@SUFFIX.log` (a file name without `:`).
# 4: `registries`: per registry host the run asked anything of, its requests (daemon pulls
#    and pushes count one each), retries, answers that limited the rate and the seconds
#    waited for its limits (`waited_s`).
REPORT_FORMAT_VERSION = 4


def report_to_data(report: Report, plan: Plan) -> dict[str, Any]:
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "action": plan.action.value,
        "digest": plan.digest,
        "run_dir": report.run_dir,
        "interrupted": report.interrupted,
        "elapsed": round(report.elapsed, 3),
        "lost_builders": list(report.lost_builders),
        "published_since": list(report.published_since),
        "apply_options": None if report.options is None else options_to_data(report.options),
        "moves": [
            {"image": m.image, "lost": m.lost, "to": m.to, "reason": m.reason} for m in report.moves
        ],
        "registries": [
            {
                "host": u.host,
                "requests": u.requests,
                "retries": u.retries,
                "limited": u.limited,
                "waited_s": round(u.waited, 3),
            }
            for u in report.registries
            if u.requests
        ],
        "steps": [
            {
                "op": o.step.op.value,
                "image": o.step.image,
                "label": o.step.label,
                "reason": o.step.reason.value,
                "outcome": o.outcome.value,
                "started": None if o.started is None else round(o.started, 3),
                "duration": None if o.duration is None else round(o.duration, 3),
                "detail": o.detail,
                "error": o.error,
                "builder": o.builder,
                "waited": None if o.waited is None else round(o.waited, 3),
                "log": f"{report.run_dir}/{log_name(o.step.image)}"
                if report.run_dir and o.step.op is not Op.PULL
                else None,
            }
            for o in report.outcomes
        ],
    }


def report_to_json(report: Report, plan: Plan) -> str:
    return json.dumps(report_to_data(report, plan), sort_keys=True, indent=2) + "\n"


def publication_line(report: Report) -> str | None:
    """All-or-nothing runs: exactly which images had their version tag and `latest` moved,
    which only their version tag (a promotion that failed after it, whose detail is the
    digest moved), which neither, and what waits under a staging reference; None for runs
    without promotions."""
    promotions = [o for o in report.outcomes if o.step.op is Op.PROMOTE]
    if not promotions:
        return None
    moved = [o.step.image for o in promotions if o.outcome is Outcome.SUCCEEDED]
    failed = [o for o in promotions if o.outcome is not Outcome.SUCCEEDED]
    half = [o.step.image for o in failed if o.detail is not None]
    waiting = [o.step.image for o in failed if o.detail is None]
    if not failed:
        return f"Promoted all {len(moved)}: version tags and latest moved."
    staged = [
        o.step.label
        for o in report.outcomes
        if o.step.op is Op.STAGE
        and o.outcome is Outcome.SUCCEEDED
        # A platform image (`php:arm64`) waits for its index image's promotion.
        and o.step.image.partition(":")[0] in waiting
    ]
    held = f"; staged, not promoted: {', '.join(str(s) for s in staged)}" if staged else ""
    if not moved and not half:
        return (
            "Nothing moved: no version tag or latest of this run was created or changed"
            f"{held}. A rerun with the tree unchanged promotes what is staged."
        )
    parts = [f"Promoted {', '.join(moved)}"] if moved else []
    if half:
        parts.append(f"version tag moved, latest not: {', '.join(half)}")
    if waiting:
        parts.append(f"not promoted: {', '.join(waiting)}")
    line = "; ".join(parts)
    return line[0].upper() + line[1:] + f"{held}. A rerun promotes the rest without building."
