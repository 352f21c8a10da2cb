"""Compare two saved plans (say, of the base branch and of a change): which images were added
or removed, got a new version, or changed definition without one (a forgotten changelog
entry), with the rendered Dockerfile diffs."""

from __future__ import annotations

import difflib
import enum

import attrs

from dockerpkg.core.plan import Plan, PlannedImage


class Change(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    NEW_VERSION = "new_version"
    # The definition changed while the version did not: nothing would rebuild the image.
    DEFINITION_CHANGED_WITHOUT_VERSION_BUMP = "definition_changed_without_version_bump"


@attrs.frozen
class ImageChange:
    image: str
    change: Change
    old_version: str | None
    new_version: str | None
    detail: str
    dockerfile_diff: str  # unified diff of the rendered Dockerfiles; "" when unknown or equal


@attrs.frozen
class PlanDiff:
    changes: tuple[ImageChange, ...]

    @property
    def forgotten_bumps(self) -> tuple[ImageChange, ...]:
        wanted = Change.DEFINITION_CHANGED_WITHOUT_VERSION_BUMP
        return tuple(c for c in self.changes if c.change is wanted)


def dockerfile_diff(old: PlannedImage | None, new: PlannedImage | None) -> str:
    """The unified diff of two images' rendered Dockerfiles (build stage included)."""
    texts = []
    for image in (old, new):
        if image is not None and image.dockerfile is None:
            return ""  # not rendered in that plan: unknown, not empty
        text = "" if image is None else image.dockerfile or ""
        if image is not None and image.build_dockerfile is not None:
            # Rendered Dockerfiles usually lack a final newline (Jinja drops it).
            separator = "" if not text or text.endswith("\n") else "\n"
            text += f"{separator}# --- Dockerfile.build ---\n{image.build_dockerfile}"
        texts.append(text)
    either = new or old
    name = either.name if either is not None else ""
    lines = difflib.unified_diff(
        texts[0].splitlines(keepends=True),
        texts[1].splitlines(keepends=True),
        fromfile=f"a/{name}/Dockerfile",
        tofile=f"b/{name}/Dockerfile",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _why(old: PlannedImage, new: PlannedImage, changed_parents: list[str]) -> str:
    if old.own_definition != new.own_definition:
        return "its Dockerfile, build context or base images changed"
    return "it depends on changed images: " + ", ".join(changed_parents)


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    before = {image.name: image for image in old.images}
    after = {image.name: image for image in new.images}
    changes: list[ImageChange] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None and now is not None:
            changes.append(
                ImageChange(name, Change.ADDED, None, now.tag, "", dockerfile_diff(None, now))
            )
        elif now is None and was is not None:
            changes.append(ImageChange(name, Change.REMOVED, was.tag, None, "", ""))
        elif was is not None and now is not None:
            known = was.definition is not None and now.definition is not None
            redefined = known and was.definition != now.definition
            if was.tag != now.tag:
                detail = "definition changed" if redefined else ""
                changes.append(
                    ImageChange(
                        name,
                        Change.NEW_VERSION,
                        was.tag,
                        now.tag,
                        detail,
                        dockerfile_diff(was, now),
                    )
                )
            elif redefined:
                parents = [
                    p
                    for p in now.parents
                    if p in before and p in after and before[p].definition != after[p].definition
                ]
                changes.append(
                    ImageChange(
                        name,
                        Change.DEFINITION_CHANGED_WITHOUT_VERSION_BUMP,
                        was.tag,
                        now.tag,
                        _why(was, now, parents),
                        dockerfile_diff(was, now),
                    )
                )
    return PlanDiff(tuple(changes))


def diff_to_text(diff: PlanDiff) -> str:
    if not diff.changes:
        return "No image added, removed or changed.\n"
    lines = []
    for change in diff.changes:
        versions = {
            Change.ADDED: f"{change.new_version}",
            Change.REMOVED: f"{change.old_version}",
            Change.NEW_VERSION: f"{change.old_version} -> {change.new_version}",
            Change.DEFINITION_CHANGED_WITHOUT_VERSION_BUMP: f"{change.new_version}",
        }[change.change]
        extra = f": {change.detail}" if change.detail else ""
        lines.append(f"{change.change.value}  {change.image}  {versions}{extra}")
    for bump in diff.forgotten_bumps:
        lines.append(
            f"error: {bump.image} changed without a new version; add a changelog entry "
            f"(dockerpkg update {bump.image} DIRECTORY)"
        )
    for change in diff.changes:
        if change.dockerfile_diff:
            lines.append("")
            lines.append(change.dockerfile_diff.rstrip("\n"))
    return "\n".join(lines) + "\n"


def diff_to_data(diff: PlanDiff) -> list[dict[str, str | None]]:
    return [
        {
            "image": c.image,
            "change": c.change.value,
            "old_version": c.old_version,
            "new_version": c.new_version,
            "detail": c.detail,
            "dockerfile_diff": c.dockerfile_diff,
        }
        for c in diff.changes
    ]
