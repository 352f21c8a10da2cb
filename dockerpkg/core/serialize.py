"""Two views of one Plan: stable JSON (sorted keys, no clock, no absolute paths) and text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from dockerpkg.core.ops import reported_as
from dockerpkg.core.plan import (
    FORMAT_VERSION,
    Action,
    BuildEngine,
    BuildOptions,
    CacheMode,
    Edit,
    Finding,
    Op,
    Plan,
    PlannedBuilder,
    PlannedImage,
    PlannedSecret,
    PublishMode,
    Reason,
    SecretKind,
    Step,
    StepKey,
)
from dockerpkg.core.planjson import TypeMismatchError, checked, loads, with_directory
from dockerpkg.core.stepchoices import cache_text, step_text
from dockerpkg.errors import DockerPkgError

_T = TypeVar("_T")


def plan_to_data(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": plan.format_version,
        "action": plan.action.value,
        "directory": plan.directory,
        "digest": plan.digest,
        "registry": plan.registry,
        "publish": plan.publish,
        "builders": [_builder_json(b) for b in plan.builders],
        "secrets": [{"id": s.id, "source": s.source} for s in plan.secrets],
        "ssh": [{"id": s.id, "source": s.source} for s in plan.ssh],
        "options": {
            "select": plan.options.select,
            "names": None if plan.options.names is None else list(plan.options.names),
            "no_publish": plan.options.no_publish,
            "pull": plan.options.pull,
            "use_cache": plan.options.use_cache,
            "suffix": plan.options.suffix,
            "publish": plan.options.publish.value,
            "cache": plan.options.cache.value,
            "engine": None if plan.options.engine is None else plan.options.engine.value,
        },
        "notes": list(plan.notes),
        "images": [_image_json(i) for i in plan.images],
        "steps": [_step_json(s) for s in plan.steps],
        "findings": [_finding_json(f) for f in plan.findings],
        "edits": [
            {
                "path": e.path,
                "image": e.image,
                "old_version": e.old_version,
                "new_version": e.new_version,
                "entry": e.entry,
            }
            for e in plan.edits
        ],
    }


def _builder_json(builder: PlannedBuilder) -> dict[str, object]:
    data: dict[str, object] = {"url": builder.url, "slots": builder.slots, "tls": builder.tls}
    if builder.platforms:  # only in trees with platforms
        data["platforms"] = list(builder.platforms)
    return data


def _image_json(i: PlannedImage) -> dict[str, object]:
    data: dict[str, object] = {
        "path": i.path,
        "name": i.name,
        "tag": i.tag,
        "label": i.label,
        "repository": i.repository,
        "depends": list(i.depends),
        "parents": list(i.parents),
        "bases": list(i.bases),
        "dockerfile": i.dockerfile,
        "build_dockerfile": i.build_dockerfile,
        "has_test": i.has_test,
        "has_dockerignore": i.has_dockerignore,
        "definition": i.definition,
        "own_definition": i.own_definition,
        "labels": dict(i.labels),
        "records": None if i.records is None else list(i.records),
        "pins": dict(i.pins),
        "secrets": list(i.secrets),
        "ssh": list(i.ssh),
        "cache_from": list(i.cache_from),
    }
    # Several platforms, only where set: a tree without them reads as it always did.
    if i.platform is not None:
        data["platform"] = i.platform
    if i.platforms:
        data["platforms"] = list(i.platforms)
        data["children"] = dict(i.children)
    return data


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_data(plan), sort_keys=True, indent=2) + "\n"


def plan_from_json(text: str, path: str) -> Plan:
    """Read a saved plan; a plan from another format version is refused, not guessed at."""
    data = loads(text, path)
    try:
        if not isinstance(data, dict):
            raise TypeMismatchError("the plan: expected an object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DockerPkgError.single(
                path, f"plan format_version {version} is not {FORMAT_VERSION}; make the plan again"
            )
        options = data["options"]
        return with_directory(checked(_plan_from_data(data, options, path)))
    except DockerPkgError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        message = str(exc) if isinstance(exc, TypeMismatchError) else f"{type(exc).__name__} {exc}"
        raise DockerPkgError.single(path, f"not a dockerpkg plan: {message}") from None


def _plan_from_data(data: dict[str, Any], options: dict[str, Any], path: str) -> Plan:
    return Plan(
        action=Action(data["action"]),
        directory=data["directory"],
        digest=data["digest"],
        registry=data["registry"],
        publish=data["publish"],
        builders=_each(
            data.get("builders", []),
            "builders",
            lambda b: PlannedBuilder(
                b["url"], b["slots"], bool(b["tls"]), _listed(b.get("platforms", []), "platforms")
            ),
        ),
        secrets=_each(data["secrets"], "secrets", _planned_secret),
        ssh=_each(data["ssh"], "ssh", _planned_secret),
        options=BuildOptions(
            select=options["select"],
            names=None if options["names"] is None else _listed(options["names"], "names"),
            no_publish=bool(options["no_publish"]),
            pull=options["pull"],
            use_cache=options["use_cache"],
            suffix=options["suffix"],
            publish=PublishMode(options["publish"]),
            cache=CacheMode(options["cache"]),
            engine=_engine(data["action"], options["engine"], path),
        ),
        notes=_listed(data["notes"], "notes"),
        images=_each(data["images"], "images", _image_from),
        steps=_each(data["steps"], "steps", _step_from),
        edits=_each(data["edits"], "edits", lambda e: Edit(**e)),
        findings=_each(
            data["findings"],
            "findings",
            lambda f: Finding(
                **{
                    **f,
                    "reason": Reason(f["reason"]),
                    "below": _listed(f.get("below", []), "below"),
                }
            ),
        ),
    )


def _planned_secret(x: dict[str, Any]) -> PlannedSecret:
    """A secret or agent as plan JSON spells it: its id and its source, `KIND:WHERE`."""
    source = x["source"]
    if not isinstance(source, str):
        raise TypeMismatchError(f"source: expected KIND:WHERE, not {type(source).__name__}")
    kind, colon, where = source.partition(":")
    if not colon:
        raise TypeMismatchError(f"source: {source!r} is not KIND:WHERE")
    return PlannedSecret(x["id"], SecretKind(kind), where)


def _image_from(i: dict[str, Any]) -> PlannedImage:
    lists = ("depends", "parents", "bases", "secrets", "ssh", "cache_from")
    return PlannedImage(
        **{
            **i,
            **{key: _listed(i[key], key) for key in lists},
            "labels": _mapping(i["labels"], "labels"),
            "records": None if i["records"] is None else _listed(i["records"], "records"),
            "pins": _mapping(i["pins"], "pins"),
            "platforms": _listed(i.get("platforms", []), "platforms"),
            "children": _mapping(i.get("children", {}), "children"),
        }
    )


def _step_json(step: Step) -> dict[str, object]:
    data: dict[str, object] = {
        "op": step.op.value,
        "image": step.image,
        "reason": step.reason.value,
        "label": step.label,
        "detail": step.detail,
        "needs": [str(key) for key in step.needs],
    }
    # What the step's run follows (core/stepchoices), only where set: few steps have any.
    if step.local_copy:
        data["local_copy"] = True
    if step.missing_test is not None:
        data["missing_test"] = step.missing_test
    if step.use_cache:
        data["use_cache"] = True
    if step.platform is not None:
        data["platform"] = step.platform
    return data


def _step_from(s: dict[str, Any]) -> Step:
    return Step(
        Op(s["op"]),
        s["image"],
        Reason(s["reason"]),
        s["label"],
        s["detail"],
        tuple(_step_key(key) for key in _listed(s["needs"], "needs")),
        local_copy=s.get("local_copy", False),
        missing_test=s.get("missing_test"),
        use_cache=s.get("use_cache", False),
        platform=s.get("platform"),
    )


def _step_key(value: object) -> StepKey:
    if not isinstance(value, str):
        raise TypeMismatchError(f"needs: expected OP:IMAGE, not {type(value).__name__}")
    return StepKey.parse(value)


def _each(items: object, where: str, make: Callable[[Any], _T]) -> tuple[_T, ...]:
    """MAKE of each of ITEMS (the list WHERE of a plan), a failure named by its place."""
    made = []
    for index, item in enumerate(_listed(items, where)):
        try:
            made.append(make(item))
        except TypeMismatchError as exc:
            raise TypeMismatchError(f"{where}[{index}].{exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TypeMismatchError(f"{where}[{index}]: {type(exc).__name__} {exc}") from None
    return tuple(made)


def _listed(value: object, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise TypeMismatchError(f"{where}: expected a list, not {type(value).__name__}")
    return tuple(value)


def _mapping(value: object, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeMismatchError(f"{where}: expected an object, not {type(value).__name__}")
    return dict(value)


def _engine(action: str, value: str | None, path: str) -> BuildEngine | None:
    """A saved plan's engine: a build plan must name the one it was planned for, which
    `apply` then builds with."""
    if value is None and action == Action.BUILD.value:
        raise DockerPkgError.single(path, "the build plan names no engine (options.engine)")
    return None if value is None else BuildEngine(value)


def _finding_json(finding: Finding) -> dict[str, object]:
    found: dict[str, object] = {
        "image": finding.image,
        "label": finding.label,
        "reason": finding.reason.value,
        "detail": finding.detail,
        "fix": finding.fix,
    }
    if finding.base is not None:
        found.update(
            base=finding.base,
            recorded=finding.recorded,
            current=finding.current,
            below=list(finding.below),
        )
    return found


def plan_to_text(plan: Plan, *, needs: bool = False) -> str:
    """One line per step with its reason (and, with NEEDS, what it waits for), notes, then a
    one-line summary."""
    lines = []
    op_width = max((len(s.op.value) for s in plan.steps), default=0)
    width = max((len(s.image) for s in plan.steps), default=0)
    for step in plan.steps:
        target = f"{step.label}  " if step.label and step.label != step.image else ""
        extra = (f" [{step.detail}]" if step.detail else "") + step_text(step)
        extra += f" on {step.platform}" if step.platform else ""
        head = f"{step.op.value:<{op_width}}  {step.image:<{width}}"
        lines.append(f"{head}  {target}({step.reason.value}){extra}")
        if needs and step.needs:
            lines.append(f"  needs: {', '.join(str(key) for key in step.needs)}")
    for edit in plan.edits:
        lines.append(f"--- {edit.path}: {edit.old_version} -> {edit.new_version}")
        lines.extend(
            "  | " + line if line else "  |" for line in edit.entry.rstrip("\n").split("\n")
        )
    for finding in plan.findings:
        kind = "outdated" if finding.reason is Reason.BASE_CHANGED else "drift"
        lines.append(f"{kind}  {finding.image}  {finding.label}  ({finding.reason.value})")
        lines.append(f"  {finding.detail}")
        lines.append(f"  fix: {finding.fix}")
    if plan.builders:
        lines.append("builders: " + ", ".join(builder_text(b) for b in plan.builders))
    if plan.options.engine is not None and (plan.count(Op.BUILD) or plan.count(Op.BUILD_STAGE)):
        lines.append(f"engine: {plan.options.engine.value}")
    if (cache := cache_text(plan)) is not None:
        lines.append(f"cache: {cache}")
    lines.extend(f"note: {note}" for note in plan.notes)
    lines.append(summary(plan))
    return "\n".join(lines) + "\n"


def builder_text(builder: PlannedBuilder) -> str:
    slots = {None: "--jobs slots", 1: "1 slot"}.get(builder.slots, f"{builder.slots} slots")
    platforms = f", {' '.join(builder.platforms)}" if builder.platforms else ""
    return f"{builder.url} ({slots}{', TLS' if builder.tls else ''}{platforms})"


def findings_summary(plan: Plan) -> str:
    """The summary's words about findings ("" without any)."""
    moved = [f for f in plan.findings if f.reason is Reason.BASE_CHANGED]
    drifted = len(plan.findings) - len(moved)
    parts = [f", {drifted} changed without a version bump"] if drifted else []
    if moved:
        count = len(moved) + sum(len(f.below) for f in moved)
        parts.append(f", {count} on an outdated base")
    return "".join(parts)


def summary(plan: Plan) -> str:
    drift = findings_summary(plan)
    if not plan.steps and not plan.edits:
        return f"Plan: nothing to do{drift}."
    counts = [
        (Op.PULL, "to pull"),
        (Op.BUILD, "to build"),
        (Op.VERIFY, "to verify"),
        (Op.PUBLISH, "to publish"),
        (Op.TAG_LATEST, "latest to move"),
        (Op.PROMOTE, "to promote"),
        (Op.INDEX, "to index"),
        (Op.UNSTAGE, "staged to remove"),
        (Op.REMOVE, "to remove"),
        (Op.KEEP, "kept"),
        (Op.WRITE_CHANGELOG, "changelogs to write"),
    ]
    stages = plan.count(Op.BUILD_STAGE)
    # A staging push is counted as a publication (it is one, held back until the promotion).
    counted = {op: 0 for op, _ in counts}
    for step in plan.steps:
        if (op := reported_as(step.op)) in counted:
            counted[op] += 1
    parts = [
        f"{counted[op]} {words}"
        + (f" ({stages} with a build stage)" if op is Op.BUILD and stages else "")
        for op, words in counts
        if counted[op]
    ]
    return "Plan: " + ", ".join(parts) + drift + "."
