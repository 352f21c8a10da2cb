"""Update planning: which changelogs get a new entry, with which version and text.

`update NAME` adds an entry to NAME (matched exactly, unlike docker-pkg's suffix match) and to
every image that depends on it, directly or not; `update --all` does the same for every
selected image. Every version and every new changelog head is checked here, so a plan that
exists can be written as a whole: nothing is found wrong half-way through the writes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping

import attrs

from dockerpkg.core import changelog, versions
from dockerpkg.core.bases import BaseCheck, BaseMove, short, unknown_note
from dockerpkg.core.changelog import Author
from dockerpkg.core.config import Config
from dockerpkg.core.graph import reachable
from dockerpkg.core.labels import is_docker_tag
from dockerpkg.core.plan import DEFAULT_OPTIONS, Action, BuildOptions, Edit, Op, Plan, Reason, Step
from dockerpkg.core.planner import planned_image, selected_names
from dockerpkg.core.tree import Image, Tree
from dockerpkg.errors import DockerPkgError, Problem, error

_PROBE_DATE = "Thu, 01 Jan 1970 00:00:00 +0000"

# Picks the new version of one image from its current one; raises VersionError.
VersionRule = Callable[[Image], str]


def plan_update(
    tree: Tree,
    config: Config,
    *,
    name: str,
    reason: str,
    version: str | None,
    author: Author,
    date: str,
    directory: str,
    digest: str,
) -> Plan:
    """`update NAME`: NAME gets VERSION (checked to be greater) or a bump; its dependents a
    bump and a "Refresh for update in parent image NAME:" entry."""
    if name not in tree.images:
        raise unknown_image(tree, name, directory)

    # Trees share a few versions among thousands of images; bump each once.
    bumped: dict[str, str] = {}

    def rule(image: Image) -> str:
        current = image.spec.version
        if image.name == name and version is not None:
            return versions.check_requested(version, current)
        if current not in bumped:
            bumped[current] = versions.bump(current, config.update_id)
        return bumped[current]

    return _plan(
        tree,
        config,
        requested=[name],
        requested_reason=Reason.REQUESTED,
        rule=rule,
        reason=reason,
        author=author,
        date=date,
        directory=directory,
        digest=digest,
        options=DEFAULT_OPTIONS,
    )


def plan_update_all(
    tree: Tree,
    config: Config,
    *,
    select: str | None,
    reason: str,
    version_suffix: str | None,
    author: Author,
    date: str,
    directory: str,
    digest: str,
) -> Plan:
    """`update --all`: every image whose label matches SELECT (all without it), and every image
    depending on one of them; each gets `-SUFFIX` (replacing an older suffix of the same
    shape) with --version-suffix, else an automatic bump."""

    rule = _suffix_or_bump(config, version_suffix)
    selected = selected_names(tree, select)
    plan = _plan(
        tree,
        config,
        requested=selected,
        requested_reason=Reason.SCHEDULED_REFRESH,
        rule=rule,
        reason=reason,
        author=author,
        date=date,
        directory=directory,
        digest=digest,
        options=BuildOptions(select=select),
    )
    if not selected:
        return Plan(
            action=plan.action,
            directory=plan.directory,
            digest=plan.digest,
            images=(),
            steps=(),
            options=plan.options,
            notes=(f"no image matches --select {select}",),
            registry=plan.registry,
        )
    return plan


def _suffix_or_bump(config: Config, version_suffix: str | None) -> VersionRule:
    """--version-suffix SUFFIX on every version, else an automatic bump (update --all)."""

    def rule(image: Image) -> str:
        if version_suffix is not None:
            return versions.with_suffix(image.spec.version, version_suffix)
        return versions.bump(image.spec.version, config.update_id)

    return rule


def base_reason(moves: tuple[BaseMove, ...]) -> str:
    """The default entry of an image whose base moved: which base, and its new digest."""
    return "\n".join(
        f"Rebuild for updated base image {m.reference.rpartition('/')[2]} ({short(m.current)})"
        for m in moves
    )


def plan_update_changed_bases(
    tree: Tree,
    config: Config,
    *,
    check: BaseCheck,
    reason: str | None,
    version_suffix: str | None,
    author: Author,
    date: str,
    directory: str,
    digest: str,
) -> Plan:
    """`update --changed-bases`: an entry for each image whose recorded base moved (REASON,
    else one naming the base) and for every image depending on one of them; versions as
    `update --all` gives them."""

    rule = _suffix_or_bump(config, version_suffix)
    reasons = {name: reason or base_reason(moves) for name, moves in check.tops.items()}
    plan = _plan(
        tree,
        config,
        requested=list(check.tops),
        requested_reason=Reason.BASE_UPDATED,
        rule=rule,
        reason=reasons,
        author=author,
        date=date,
        directory=directory,
        digest=digest,
        options=DEFAULT_OPTIONS,
    )
    notes = [] if check.tops else ["no published image sits on a base image that moved"]
    unknown = unknown_note(check)
    return attrs.evolve(plan, notes=(*plan.notes, *notes, *([unknown] if unknown else [])))


def unknown_image(tree: Tree, name: str, directory: str) -> DockerPkgError:
    """No image is called NAME: name the close ones, including those docker-pkg's suffix match
    would have picked."""
    names = sorted(tree.images)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    close += [n for n in names if n.endswith(name) and n not in close]
    if close:
        hint = "did you mean " + ", ".join(sorted(close)) + "?"
    else:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        hint = f"the images are: {shown}" if names else "the tree has no images"
    return DockerPkgError.single(directory, f"no image is named '{name}'; {hint}")


def _requesters(
    tree: Tree, requested: Iterable[str], targets: frozenset[str]
) -> dict[str, tuple[str, ...]]:
    """For each target, the requested images it is updated for (itself, if requested).

    One pass in build order: an image inherits the requesters of its parents among targets.
    """
    wanted = set(requested)
    result: dict[str, tuple[str, ...]] = {}
    for name in tree.order:
        if name not in targets:
            continue
        if name in wanted:
            result[name] = (name,)
        else:
            found = {r for p in tree.images[name].parents if p in result for r in result[p]}
            result[name] = tuple(sorted(found))
    return result


def _plan(
    tree: Tree,
    config: Config,
    *,
    requested: list[str],
    requested_reason: Reason,
    rule: VersionRule,
    reason: str | Mapping[str, str],  # one for all, or per requested image
    author: Author,
    date: str,
    directory: str,
    digest: str,
    options: BuildOptions,
) -> Plan:
    targets = reachable(tree.children, requested)
    requesters = _requesters(tree, requested, targets)
    edits: list[Edit] = []
    steps: list[Step] = []
    notes: list[str] = []
    problems: list[Problem] = []
    # Reason texts whose entry was seen to parse: names and versions are valid by
    # construction, so one structural check per distinct text is enough.
    parsed: set[str] = set()
    for name in (n for n in tree.order if n in targets):
        image = tree.images[name]
        own = requesters[name] == (name,)
        if isinstance(reason, str):
            given = reason
        else:
            given = "\n".join(dict.fromkeys(reason[r] for r in requesters[name]))
        text = given if own else changelog.refresh_reason(requesters[name], given)
        try:
            edit = _edit(
                image, config, rule=rule, reason=text, author=author, date=date, parsed=parsed
            )
        except DockerPkgError as exc:
            problems.extend(exc.problems)
            continue
        edits.append(edit)
        steps.append(
            Step(
                Op.WRITE_CHANGELOG,
                name,
                requested_reason if own else Reason.PARENT_UPDATED,
                image.label,
                f"{edit.old_version} -> {edit.new_version}",
            )
        )
        if not is_docker_tag(edit.new_version):
            notes.append(
                f"{name}: version {edit.new_version} is not a valid Docker tag; "
                "building it will fail"
            )
    if problems:
        raise DockerPkgError(problems)
    return Plan(
        action=Action.UPDATE,
        directory=directory,
        digest=digest,
        images=tuple(
            planned_image(tree.images[n])
            for n in sorted(targets, key=lambda n: tree.images[n].path)
        ),
        steps=tuple(steps),
        options=options,
        notes=tuple(notes),
        edits=tuple(edits),
        registry=config.registry,
    )


def _edit(
    image: Image,
    config: Config,
    *,
    rule: VersionRule,
    reason: str,
    author: Author,
    date: str,
    parsed: set[str],
) -> Edit:
    source = image.spec.source
    path = source.file("changelog")
    try:
        new_version = rule(image)
    except versions.VersionError as exc:
        raise DockerPkgError.single(path, f"image '{image.name}': {exc}", 1) from None
    text = changelog.entry(
        name=image.name,
        version=new_version,
        distribution=config.distribution,
        reason=reason,
        author=author,
        date=date,
    )
    # The date is checked by whoever formats it; a fixed one keeps this check about structure.
    probe = changelog.entry(
        name=image.name,
        version=new_version,
        distribution=config.distribution,
        reason=reason,
        author=author,
        date=_PROBE_DATE,
    )
    if reason not in parsed and (
        "\n" in date or changelog.head_of(probe + source.changelog) != (image.name, new_version)
    ):
        raise DockerPkgError(
            [
                error(
                    path,
                    f"image '{image.name}': the new entry would not parse as a changelog entry "
                    f"(version {new_version}, date {date!r}); check the reason and the author",
                    1,
                )
            ]
        )
    parsed.add(reason)
    return Edit(
        path=path,
        image=image.name,
        old_version=image.spec.version,
        new_version=new_version,
        entry=text,
    )
