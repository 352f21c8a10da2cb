"""A saved plan is a claim, not an instruction: what `apply PLAN.json` may carry out is the plan
derived again from the tree and the config, and the saved plan only says which of its steps.

A build plan's steps depend on what the registry and the daemon held when it was made, which
`apply` does not see as it was. So the saved plan's steps are read as claims about that state
(`claimed_observed`: an image it builds was neither published nor built, one it only verifies
was built locally, one it pulls was published ...), the planner derives the plan for that state,
and the two must agree on every field of every image and every step (`build_differences`).
A false claim can only make the run do less (an image said to be published is not built) or
fail (a pull of what is not there); what is built, from what, with which secrets, and pushed
where is always the tree's and the config's. The images published since the plan was made
are dropped afterwards (dockerpkg.core.recheck).

Images and plans are compared field by field over a projection (every attrs field but those
named in the exclusions below), so a field added to PlannedImage or Plan is compared without
anyone remembering to.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

import attrs
from attrs import AttrsInstance

from dockerpkg.core.imagelabels import OCI
from dockerpkg.core.plan import (
    Op,
    Plan,
    PlannedImage,
    PlannedSecret,
    PublishMode,
    Reason,
    Step,
    StepKey,
)
from dockerpkg.core.planner import Observed
from dockerpkg.core.platformclaims import claimed_platforms
from dockerpkg.core.staging import Staged, staged_reference
from dockerpkg.core.tree import Tree

# Plan fields that are not compared: the images and steps (compared one by one below), what
# is only said, never carried out (notes, findings), and what the caller checked already.
_PLAN_UNCOMPARED = frozenset(
    {"images", "steps", "notes", "findings", "format_version", "digest", "directory"}
)
# Image labels that say which checkout the build came from: the run's own checkout gives them
# (a plan made before a commit that changed nothing in the tree stays good).
CHECKOUT_LABELS = frozenset({OCI + "revision", OCI + "source"})
# Stand-ins for manifest digests the saved plan's steps imply but do not record.
_CLAIMED_VERSION = "sha256:" + "0" * 63 + "1"
_CLAIMED_LATEST = "sha256:" + "0" * 63 + "2"
_CLAIMED_OTHER = "sha256:" + "0" * 63 + "3"  # an identity no tree gives
_LATEST_ON = "latest on "
_SUFFIX = re.compile(r"-[0-9]{8}(?:-[0-9]{6})?")
# How much of a long value a difference shows.
_SHOWN = 120


def claimed_observed(saved: Plan, tree: Tree) -> Observed:
    """The registry and daemon state SAVED's steps imply for the images of TREE (keyed by the
    tree's labels, never the plan's): built images were neither published nor local, images
    only verified, or parents of built images not pulled, were local only, staged ones staged
    with the definition the plan gives, and every other image published (it needs
    nothing)."""
    by_op: dict[Op, set[str]] = {op: set() for op in Op}
    for step in saved.steps:
        by_op[step.op].add(step.image)
    staged = {
        s.image
        for s in saved.steps
        if s.reason in (Reason.STAGED_IN_EARLIER_RUN, Reason.STAGED_DEPENDENCY)
    }
    built = by_op[Op.BUILD]
    local_only = by_op[Op.VERIFY] - built
    if saved.options.pull:
        # A parent of a built image that is not pulled was taken from the daemon: built
        # there, not published (published, it would be pulled).
        pulled = {s.image for s in saved.steps if s.op is Op.PULL}
        parents = {p for name in built if name in tree.images for p in tree.images[name].parents}
        local_only |= parents - built - pulled
    published: set[str] = set()
    local: set[str] = set()
    for name, image in tree.images.items():
        if name in local_only:
            local.add(image.label)
        elif name not in built and name not in staged:
            published.add(image.label)
            local.add(image.label)
    digests, tags = _claimed_latest(saved, tree)
    claimed_staged, local_identities = _claimed_identities(saved, tree, staged)
    local |= local_identities.keys()
    # A pull may go on with the daemon's copy only where the daemon held one.
    pulls = {s.label or s.image: s.local_copy for s in saved.steps if s.op is Op.PULL}
    local = (local - pulls.keys()) | {label for label, copy in pulls.items() if copy}
    platforms = claimed_platforms(saved, tree)
    return Observed(
        offline=any(step.reason is Reason.OFFLINE for step in saved.steps),
        published=frozenset(published),
        local=frozenset(local) | platforms.local,
        credentials=saved.publish,
        digests=digests,
        tags=tags,
        base_digests={ref: digest for image in saved.images for ref, digest in image.pins.items()},
        staged=claimed_staged,
        local_identities=local_identities,
        platform_digests=platforms.platform_digests,
        base_platforms=platforms.base_platforms,
    )


def _claimed_identities(
    saved: Plan, tree: Tree, staged: set[str]
) -> tuple[dict[str, Staged], dict[str, str]]:
    """What SAVED's steps imply an earlier run staged (label -> Staged) and which daemon
    images carry another identity than the tree's (label -> a stand-in that never matches):
    staged images with the identity the plan gives and the digest their promotion or pull is
    held to; a staged manifest an unstage step removes, as what the version tag holds; an
    image built again for `identity_changed`, as staged (all_or_nothing) or held by the
    daemon with another identity."""
    identity = {image.name: image.definition or "" for image in saved.images}
    held: dict[str, str | None] = {}
    unstaged: dict[str, str | None] = {}
    changed: set[str] = set()
    for step in saved.steps:
        if step.image not in tree.images:
            continue
        if step.op is Op.PROMOTE and step.reason is Reason.STAGED_IN_EARLIER_RUN and step.detail:
            held[step.image] = staged_reference(step.detail)[1]
        elif step.op is Op.PULL and step.reason is Reason.STAGED_DEPENDENCY and step.label:
            held[step.image] = staged_reference(step.label)[1]
        elif step.op is Op.UNSTAGE:
            unstaged[step.image] = staged_reference(step.label or "")[1]
        elif step.op is Op.BUILD and step.reason is Reason.IDENTITY_CHANGED:
            changed.add(step.image)
    label = {name: tree.images[name].label for name in tree.images}
    claimed = {
        label[n]: Staged(identity.get(n, ""), held.get(n)) for n in staged if n in tree.images
    }
    claimed.update({label[n]: Staged("", digest, digest) for n, digest in unstaged.items()})
    all_or_nothing = saved.publish and saved.options.publish is PublishMode.ALL_OR_NOTHING
    if all_or_nothing:
        claimed.update({label[n]: Staged("", None) for n in changed})
        return claimed, {}
    return claimed, {label[n]: _CLAIMED_OTHER for n in changed}


def _claimed_latest(saved: Plan, tree: Tree) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The digests and tags SAVED's tag-latest steps imply: the version is published, and
    `latest` is missing or on the tags the step's detail names (which the planner then checks
    are versions of the image)."""
    digests: dict[str, str] = {}
    tags: dict[str, tuple[str, ...]] = {}
    for step in saved.steps:
        image = tree.images.get(step.image)
        if step.op is not Op.TAG_LATEST or image is None:
            continue
        digests[image.label] = _CLAIMED_VERSION
        detail = step.detail or ""
        if detail.startswith(_LATEST_ON):
            on = tuple(t.strip() for t in detail[len(_LATEST_ON) :].split(","))
            tags[image.repository] = (*on, "latest")
            digests.update({f"{image.repository}:{t}": _CLAIMED_LATEST for t in on})
            digests[f"{image.repository}:latest"] = _CLAIMED_LATEST
    return digests, tags


def build_differences(saved: Plan, derived: Plan) -> tuple[tuple[str, str], ...]:
    """Where SAVED differs from DERIVED (the plan derived for the state SAVED claims): pairs
    of (what: "plan" or an image's name, the difference in words). Empty: they agree."""
    found: list[tuple[str, str]] = []
    found += [("plan", text) for text in _field_differences(saved, derived, _PLAN_UNCOMPARED)]
    ours = {image.name: image for image in derived.images}
    theirs = {image.name: image for image in saved.images}
    for name in sorted(theirs.keys() - ours.keys()):
        found.append((name, "the saved plan has this image; the tree has none of that name"))
    for name in sorted(ours.keys() - theirs.keys()):
        found.append((name, "an image of the tree the saved plan leaves out"))
    for name in sorted(ours.keys() & theirs.keys()):
        found += [(name, text) for text in image_differences(theirs[name], ours[name])]
    found += _step_differences(saved.steps, derived.steps)
    return tuple(found)


def image_differences(saved: PlannedImage, derived: PlannedImage) -> list[str]:
    """Each field of SAVED that is not DERIVED's, in words (the checkout's labels aside)."""
    return _field_differences(_comparable(saved), _comparable(derived), frozenset())


def _comparable(image: PlannedImage) -> PlannedImage:
    labels = {k: v for k, v in image.labels.items() if k not in CHECKOUT_LABELS}
    return attrs.evolve(image, labels=labels)


def _field_differences(
    saved: AttrsInstance, derived: AttrsInstance, skipped: frozenset[str]
) -> list[str]:
    found = []
    for field in attrs.fields(type(derived)):
        if field.name in skipped:
            continue
        theirs, ours = getattr(saved, field.name), getattr(derived, field.name)
        if _plain(theirs) != _plain(ours):
            found.append(_worded(field.name, theirs, ours))
    return found


def _plain(value: object) -> object:
    """VALUE as plain data, so a mapping and a dict (or a tuple and a list) compare equal;
    step keys and secret sources as plan JSON spells them (what a difference shows)."""
    if isinstance(value, StepKey):
        return str(value)
    if isinstance(value, PlannedSecret):
        return {"id": value.id, "source": value.source}
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=False))  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)  # an enum by its JSON spelling


def _worded(field: str, saved: object, derived: object) -> str:
    if isinstance(saved, str) and isinstance(derived, str) and "\n" in saved + derived:
        return f"{field} differs from the tree's: {_first_changed_line(saved, derived)}"
    return f"{field} is {_short(saved)} in the saved plan, {_short(derived)} from the tree"


def _first_changed_line(saved: str, derived: str) -> str:
    ours, theirs = derived.splitlines(), saved.splitlines()
    matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
    for tag, low, _, first, _ in matcher.get_opcodes():
        where = f"line {first + 1}"
        if tag == "insert":
            return f"{where}: the saved plan adds {_short(theirs[first])}"
        if tag == "delete":
            return f"{where}: the saved plan drops {_short(ours[low])}"
        if tag == "replace":
            return f"{where}: the saved plan has {_short(theirs[first])}, not {_short(ours[low])}"
    return "its line ends differ"


def _short(value: object) -> str:
    text = repr(_plain(value))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _step_differences(saved: Iterable[Step], derived: Iterable[Step]) -> list[tuple[str, str]]:
    theirs = {step.key: step for step in saved}
    ours = {step.key: step for step in derived}
    found = []
    for key in sorted(theirs.keys() | ours.keys(), key=str):
        mine, other = ours.get(key), theirs.get(key)
        if mine == other:
            continue
        if mine is None:
            assert other is not None
            found.append((other.image, f"step {other.op.value} is not one the tree gives"))
        elif other is None:
            found.append((mine.image, f"step {mine.op.value} of the tree is missing"))
        else:
            found += [
                (mine.image, f"step {mine.op.value}: {text}")
                for text in _field_differences(other, mine, frozenset())
            ]
    return found


def prune_differences(saved: Plan, derived: Plan) -> tuple[tuple[str, str], ...]:
    """Where the removals and keeps of a saved prune plan differ from those planned again
    (DERIVED): an image removed or kept by one and not the other."""
    words = {Op.REMOVE: "removes", Op.KEEP: "keeps"}

    def acts(plan: Plan) -> list[tuple[str, str, str]]:
        return [(s.op.value, s.image, s.label or "") for s in plan.steps if s.op in words]

    theirs, ours = acts(saved), acts(derived)
    # Sets, not list lookups: a prune plan may name thousands of images.
    their_set, our_set = set(theirs), set(ours)
    found = []
    for op, image, label in [a for a in theirs if a not in our_set]:
        found.append((image, f"the saved plan {words[Op(op)]} {label}; planned now, it does not"))
    for op, image, label in [a for a in ours if a not in their_set]:
        found.append((image, f"planned now, {label} {op}s; the saved plan does not say so"))
    if not found and theirs != ours:
        found.append(("plan", "the same steps in another order"))
    return tuple(found)


def suffix_problem(suffix: str) -> str | None:
    """What is wrong with a saved plan's version suffix: only --nightly's `-YYYYMMDD` and
    --snapshot's `-YYYYMMDD-HHMMSS` are made by dockerpkg (a suffix is part of every tag)."""
    if suffix and _SUFFIX.fullmatch(suffix) is None:
        return f"options.suffix {_short(suffix)} is not one --nightly or --snapshot gives"
    return None
