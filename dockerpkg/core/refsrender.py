"""A refs plan (dockerpkg.core.refsplan) as text, stable JSON (which `apply refs` reads back)
and Markdown for a review comment."""

from __future__ import annotations

import json
from typing import Any

from dockerpkg.core import serialize
from dockerpkg.core.markdown import cell
from dockerpkg.core.planjson import checked, loads, with_directory
from dockerpkg.core.refsplan import (
    FORMAT_VERSION,
    FileDigest,
    ImageUse,
    SkippedFile,
    SkipReason,
    UpdateWithRefs,
    UsagePlan,
    UseState,
)
from dockerpkg.errors import DockerPkgError

# Most telling first: what needs a hand, then what the plan changes, then the rest.
_ORDER = (
    UseState.UNKNOWN,
    UseState.NOT_PUBLISHED,
    UseState.OUTDATED,
    UseState.UNCHECKED,
    UseState.PINNED,
    UseState.CURRENT,
)


def summary(plan: UsagePlan) -> str:
    counts = [f"{plan.count(s)} {s.value}" for s in _ORDER if plan.count(s)]
    files = len({use.path for use in plan.uses})
    found = ", ".join(counts) if counts else "none"
    unread = f", {len(plan.skipped)} not looked through" if plan.skipped else ""
    return f"References: {found} in {files} file(s) ({plan.scanned} read{unread})."


def skipped_lines(plan: UsagePlan) -> list[str]:
    """One warning per file not looked through, `PATH: warning: WHY ...`."""
    return [
        f"{f.path}: warning: not looked through: {f.detail}; its references are not checked "
        "(add it to the config's refs: ignore if it holds none)"
        for f in plan.skipped
    ]


def _where(use: ImageUse) -> str:
    return f"{use.path}:{use.line}:{use.column}"


def _line(use: ImageUse, width: int) -> str:
    head = f"{use.state.value:<13} {_where(use):<{width}}  "
    if use.edited is not None:
        return f"{head}{use.text} -> {use.edited}"
    if use.state is UseState.PINNED:
        return f"{head}{use.text}  (pinned{': ' + use.note if use.note else ''})"
    if use.note:
        return f"{head}{use.text}  ({use.note})"
    return f"{head}{use.text}"


def plan_to_text(plan: UsagePlan) -> str:
    """One line per reference, edits as `OLD -> NEW`, then the counts."""
    width = max((len(_where(u)) for u in plan.uses), default=0)
    lines = [_line(use, width) for use in plan.uses]
    return "".join(line + "\n" for line in [*lines, summary(plan)])


def plan_to_markdown(plan: UsagePlan) -> str:
    """The counts, and a table of every reference that is not current."""
    out = ["### Image references", "", summary(plan).removeprefix("References: "), ""]
    shown = [u for u in plan.uses if u.state is not UseState.CURRENT]
    if shown:
        out += ["| File | Reference | State | Change |", "| --- | --- | --- | --- |"]
        for use in sorted(shown, key=lambda u: (_ORDER.index(u.state), u.path, u.line)):
            change = f"`{cell(use.edited)}`" if use.edited is not None else cell(use.note)
            out.append(
                f"| `{cell(f'{use.path}:{use.line}')}` | `{cell(use.text)}` | "
                f"{use.state.value} | {change} |"
            )
        out.append("")
    if plan.skipped:
        out += ["Not looked through (their references are not checked):", ""]
        out += [f"- `{cell(f.path)}`: {cell(f.detail)}" for f in plan.skipped]
        out.append("")
    return "\n".join(out) + "\n"


def plan_to_data(plan: UsagePlan) -> dict[str, Any]:
    return {
        "format_version": plan.format_version,
        "action": "refs",
        "directory": plan.directory,
        "online": plan.online,
        "scanned": plan.scanned,
        "summary": {s.value: plan.count(s) for s in _ORDER},
        "files": [{"path": f.path, "sha256": f.sha256} for f in plan.files],
        "skipped": [
            {"path": f.path, "reason": f.reason.value, "detail": f.detail} for f in plan.skipped
        ],
        "uses": [
            {
                "path": u.path,
                "line": u.line,
                "column": u.column,
                "text": u.text,
                "image": u.image,
                "version": u.version,
                "digest": u.digest,
                "current": u.current,
                "state": u.state.value,
                "note": u.note,
                "offset": u.offset,
                "edit": None
                if u.replacement is None
                else {"start": u.start, "end": u.end, "replacement": u.replacement},
            }
            for u in plan.uses
        ],
    }


def plan_to_json(plan: UsagePlan) -> str:
    return json.dumps(plan_to_data(plan), indent=2, sort_keys=True) + "\n"


def update_to_text(plan: UpdateWithRefs) -> str:
    """`update --refs`: the update plan's text, then the references it moves."""
    return serialize.plan_to_text(plan.update) + plan_to_text(plan.refs)


def update_to_json(plan: UpdateWithRefs) -> str:
    """`update --refs --json`: the update plan's JSON with the refs plan's as its `refs`."""
    data = {**serialize.plan_to_data(plan.update), "refs": plan_to_data(plan.refs)}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def plan_from_json(text: str, path: str) -> UsagePlan:
    """A plan saved by `plan refs --out`; a bad or foreign file is an error naming PATH."""
    data = loads(text, path, "readable refs plan")
    try:
        if not isinstance(data, dict) or data.get("action") != "refs":
            raise DockerPkgError.single(path, "not a refs plan (made by `plan refs --out`)")
        if data.get("format_version") != FORMAT_VERSION:
            raise DockerPkgError.single(path, "a refs plan of another format; make it again")
        return with_directory(
            checked(
                UsagePlan(
                    directory=data["directory"],
                    online=bool(data["online"]),
                    scanned=int(data["scanned"]),
                    files=tuple(FileDigest(f["path"], f["sha256"]) for f in data["files"]),
                    uses=tuple(_use_from(u) for u in data["uses"]),
                    skipped=tuple(
                        SkippedFile(f["path"], SkipReason(f["reason"]), f["detail"])
                        for f in data.get("skipped", [])
                    ),
                )
            )
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise DockerPkgError.single(path, f"not a readable refs plan: {exc}") from None


def _use_from(data: dict[str, Any]) -> ImageUse:
    edit = data["edit"] or {}
    return ImageUse(
        path=data["path"],
        line=int(data["line"]),
        column=int(data["column"]),
        text=data["text"],
        image=data["image"],
        version=data["version"],
        digest=data["digest"],
        current=data["current"],
        state=UseState(data["state"]),
        note=data["note"],
        offset=int(data["offset"]),
        start=int(edit.get("start", 0)),
        end=int(edit.get("end", 0)),
        replacement=edit.get("replacement"),
    )
