"""A plan as a compact Markdown review comment: counts, one row per image with work, drift
findings with their fix, and rendered Dockerfile diffs folded under <details> when a base
plan gives something to compare with."""

from __future__ import annotations

import html
import re

from dockerpkg.core.plan import Finding, Plan, PlannedImage, Reason
from dockerpkg.core.plandiff import dockerfile_diff
from dockerpkg.core.serialize import builder_text, summary


def cell(text: str) -> str:
    """TEXT as Markdown text of one table cell or line: no HTML, no column break."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A backtick fence no run of backticks in TEXT can close (three at least)."""
    runs = [len(run) for run in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def _version(name: str, image: PlannedImage | None, base: dict[str, PlannedImage]) -> str:
    if image is None:
        return ""
    old = base.get(name)
    if old is not None and old.tag != image.tag:
        return f"`{old.tag}` → `{image.tag}`"
    return f"`{image.tag}`" + (" (new)" if base and old is None else "")


def plan_to_markdown(plan: Plan, base: Plan | None = None) -> str:
    images = {image.name: image for image in plan.images}
    before = {image.name: image for image in base.images} if base else {}
    lines = [f"### dockerpkg {plan.action.value} plan for `{plan.directory}`", ""]
    lines += [f"**{summary(plan).removeprefix('Plan: ')}**", ""]
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for step in plan.steps:
        ops, reasons = rows.setdefault(step.image, ([], []))
        ops.append(step.op.value)
        if step.reason.value not in reasons:
            reasons.append(step.reason.value)
    for written in plan.edits:
        rows.setdefault(written.image, ([], []))
    if rows:
        lines += ["| Image | Action | Version | Reason |", "| --- | --- | --- | --- |"]
        edits = {edit.image: edit for edit in plan.edits}
        for name, (ops, reasons) in rows.items():
            edit = edits.get(name)
            version = (
                f"`{edit.old_version}` → `{edit.new_version}`"
                if edit
                else _version(name, images.get(name), before)
            )
            action = ", ".join(dict.fromkeys(ops)) or "write_changelog"
            why = ", ".join(reasons) or "requested"
            lines.append(f"| `{cell(name)}` | {action} | {version} | {why} |")
        lines.append("")
    for title, found in _findings_by_kind(plan):
        lines += [f"#### {title}", ""]
        for finding in found:
            lines.append(f"- `{finding.image}`: {cell(finding.detail)}. Fix: `{finding.fix}`")
        lines.append("")
    if plan.builders:
        names = ", ".join(f"`{builder_text(b)}`" for b in plan.builders)
        lines += [f"Builders: {names}", ""]
    indexes = [i for i in plan.images if i.platforms and i.name in rows]
    if indexes:
        each = "; ".join(f"`{cell(i.name)}`: {', '.join(i.platforms)}" for i in indexes)
        lines += [f"Platforms: {each}", ""]
    lines += [f"> note: {cell(note)}" for note in plan.notes]
    if plan.notes:
        lines.append("")
    for name in rows:
        diff = dockerfile_diff(before.get(name), images.get(name)) if base else ""
        if diff:
            fence = _fence(diff)
            lines += [
                f"<details><summary>Dockerfile of <code>{html.escape(name)}</code></summary>",
                "",
                f"{fence}diff",
                diff.rstrip("\n"),
                fence,
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _findings_by_kind(plan: Plan) -> list[tuple[str, list[Finding]]]:
    moved = [f for f in plan.findings if f.reason is Reason.BASE_CHANGED]
    drifted = [f for f in plan.findings if f.reason is not Reason.BASE_CHANGED]
    kinds = [("Changed without a version bump", drifted), ("On an outdated base image", moved)]
    return [(title, found) for title, found in kinds if found]
