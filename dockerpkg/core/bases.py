"""Base digests: which manifest of each base image an image was built on, and which
published images sit on a base that has moved since.

`apply` records, on every image it builds, the manifest digest of each external base image
and each published tree parent it pulled (the label `org.dockerpkg.bases`, JSON: reference ->
digest, sorted). `plan` reads the label back from the registry and compares it with the
registry's current digest of the same references: a base re-pushed under the same tag (a
security refresh) shows although nothing in the tree changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core.graph import reachable
from dockerpkg.core.labels import DOCKER_HUB, registry_of, same_registry, split_label
from dockerpkg.core.plan import Finding, Op, Plan, PlannedImage, Reason
from dockerpkg.core.platforms import FROM_LINE
from dockerpkg.core.tree import Tree

BASES_LABEL = "org.dockerpkg.bases"

# How a digest is shortened in reasons and one-line texts.
SHORT_DIGEST = 19  # "sha256:" and 12 hex digits


def bases_label(digests: Mapping[str, str]) -> str:
    """The label's value: compact JSON, references sorted, so equal bases give equal labels."""
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":"))


def read_bases_label(value: str | None) -> Mapping[str, str] | None:
    """The references and digests a label records; None when absent or not one of ours."""
    if value is None:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        return None
    return found


def recorded_references(plan: Plan, image: PlannedImage) -> tuple[str, ...]:
    """What IMAGE's build records the digest of: its external bases and the tree parents the
    plan does not build (published before the run, so pulled). A parent built in the run has
    no manifest yet when its child is built; the parent's own label records what it sits on."""
    return _recorded(image, _built(plan), {i.name: i.label for i in plan.images})


def with_records(plan: Plan) -> Plan:
    """PLAN with `records` set on every image it builds (when its config records bases)."""
    # Worked out once for the plan, not per image: planning stays linear in the tree's size.
    built = _built(plan)
    labels = {image.name: image.label for image in plan.images}
    images = tuple(
        attrs.evolve(
            image, records=_recorded(image, built, labels) if image.name in built else None
        )
        for image in plan.images
    )
    return attrs.evolve(plan, images=images)


def _built(plan: Plan) -> frozenset[str]:
    return frozenset(step.image for step in plan.steps if step.op is Op.BUILD)


def _recorded(
    image: PlannedImage, built: frozenset[str], labels: Mapping[str, str]
) -> tuple[str, ...]:
    parents = {labels[p] for p in image.parents if p in labels and p not in built}
    return tuple(sorted({*image.bases, *parents}))


def chosen_digest(
    held: Iterable[str], expected: str | None, pulled: str | None = None
) -> str | None:
    """The manifest digest a daemon's image stands for, from the digests it holds for the
    reference's repository (several when one image was pushed under several manifests, or
    its tag became a multi-platform index): the one the plan pinned (EXPECTED) if held, else
    the one the run's pull said the tag resolved to (PULLED: what the registry answers for
    the tag, so what `plan` compares with), else the smallest, so the choice is repeatable."""
    digests = sorted(set(held))
    for wanted in (expected, pulled):
        if wanted is not None and wanted in digests:
            return wanted
    return digests[0] if digests else None


# What the daemon says a pull resolved its tag to (`Digest: sha256:...`).
_PULLED = re.compile(r"Digest: (sha256:[0-9a-f]{64})\s*")


def pulled_digest(said: Iterable[str]) -> str | None:
    """The digest a pull's progress lines SAID the pulled reference resolved to, if any."""
    found = None
    for line in said:
        if match := _PULLED.fullmatch(line.strip()):
            found = match[1]
    return found


@attrs.frozen
class BaseMove:
    """One recorded reference whose digest in the registry is no longer the recorded one."""

    reference: str
    recorded: str
    current: str


@attrs.frozen
class BaseCheck:
    """The outcome of comparing recorded bases with the registry's current digests."""

    # Image name -> the moves of its own bases, for the images at the top of a branch.
    tops: Mapping[str, tuple[BaseMove, ...]]
    # Image name -> published images below it in the tree (outdated with it), sorted.
    below: Mapping[str, tuple[str, ...]]
    # Every outdated image (tops and what is below them), in build order.
    outdated: tuple[str, ...]
    # Published images without the label (built by docker-pkg or before), in build order.
    unknown: tuple[str, ...]


def check_bases(
    tree: Tree,
    published: Iterable[str],
    recorded: Mapping[str, Mapping[str, str]],
    current: Mapping[str, str],
) -> BaseCheck:
    """Which of the PUBLISHED images (names) sit on a moved base. RECORDED: label -> the
    label's references and digests, for the published images whose label was read; CURRENT:
    reference -> the registry's digest now (references it was not asked for are not judged).

    An image whose parent in the tree is outdated is outdated too: it was built on what the
    parent was, and the parent's rebuild will give it a new parent.
    """
    shown = set(published)
    moved: dict[str, tuple[BaseMove, ...]] = {}
    for name in tree.order:
        image = tree.images[name]
        bases = recorded.get(image.label)
        if name not in shown or bases is None:
            continue
        found = tuple(
            BaseMove(ref, digest, current[ref])
            for ref, digest in sorted(bases.items())
            if ref in current and current[ref] != digest
        )
        if found:
            moved[name] = found
    children = tree.children
    outdated = reachable(children, list(moved)) & shown
    tops = {
        n: moved[n] for n in tree.order if n in moved and not set(tree.images[n].parents) & outdated
    }
    below = {n: tuple(sorted((reachable(children, [n]) & outdated) - {n})) for n in tops}
    unknown = tuple(
        n
        for n in tree.order
        if n in shown and n not in outdated and tree.images[n].label not in recorded
    )
    return BaseCheck(
        tops=tops,
        below=below,
        outdated=tuple(n for n in tree.order if n in outdated),
        unknown=unknown,
    )


def short(digest: str) -> str:
    return digest[:SHORT_DIGEST] + "…" if len(digest) > SHORT_DIGEST else digest


def base_findings(tree: Tree, check: BaseCheck, directory: str) -> tuple[Finding, ...]:
    """One finding per top of an outdated branch, naming the base, both digests and what is
    below it, with the command that bumps exactly those images."""
    findings = []
    for name, moves in check.tops.items():
        image = tree.images[name]
        first = moves[0]
        what = "; ".join(
            f"{m.reference} was {m.recorded} when it was built, is {m.current} now" for m in moves
        )
        below = check.below[name]
        if below:
            count = len(below)
            what += f"; {count} image{'s' if count > 1 else ''} built on it outdated too"
        findings.append(
            Finding(
                image=name,
                label=image.label,
                reason=Reason.BASE_CHANGED,
                detail=what,
                fix=f"dockerpkg update --changed-bases {directory}",
                base=first.reference,
                recorded=first.recorded,
                current=first.current,
                below=below,
            )
        )
    return tuple(findings)


def unknown_note(check: BaseCheck) -> str | None:
    """The one line about published images whose bases were never recorded."""
    if not check.unknown:
        return None
    count = len(check.unknown)
    names = ", ".join(check.unknown[:5]) + (", ..." if count > 5 else "")
    return (
        f"{count} published image{'s' if count > 1 else ''} without the {BASES_LABEL} label "
        f"(built by docker-pkg or an older dockerpkg): whether {'their' if count > 1 else 'its'} "
        f"base moved is unknown ({names})"
    )


@attrs.frozen
class BaseRef:
    """Where to ask for one base image's manifest digest."""

    label: str
    registry: str | None  # None: Docker Hub
    path: str  # the repository without its registry host
    tag: str
    own: bool  # in the config's registry: asked with the run's credentials


def base_refs(labels: Iterable[str], registry: str | None) -> tuple[BaseRef, ...]:
    """The base image LABELS as questions for their registries; a label pinned by digest
    cannot move, so it is not asked about."""
    found = []
    for label in sorted(set(labels)):
        if "@" in label:
            continue
        repository, tag = split_label(label)
        host = registry_of(repository)
        path = repository.partition("/")[2] if repository.startswith(host + "/") else repository
        found.append(
            BaseRef(
                label=label,
                registry=None if host == DOCKER_HUB else host,
                path=path,
                tag=tag or "latest",
                own=same_registry(repository, registry),
            )
        )
    return tuple(found)


def absent_base_notes(
    tree: Tree, absent: Iterable[str], to_build: Iterable[str], *, pull: bool = True
) -> list[str]:
    """A note for each base image of the tree that its registry said it does not hold
    (ABSENT), naming the images on it and those of TO_BUILD, whose pull of it will fail
    (with PULL off, the daemon's copy is all they have)."""
    missing = frozenset(absent)
    building = frozenset(to_build)
    users: dict[str, list[str]] = {}
    for name in tree.order:
        for base in tree.images[name].bases:
            if base in missing:
                users.setdefault(base, []).append(name)
    notes = []
    for base, names in sorted(users.items()):
        built = [name for name in names if name in building]
        if not built:
            consequence = "nothing this plan builds needs it, but a rebuild will"
        elif pull:
            consequence = f"building {', '.join(built)} will fail to pull it"
        else:
            consequence = f"building {', '.join(built)} needs the daemon's copy of it"
        notes.append(
            f"base image {base} is not in its registry (deleted or renamed?); images on it: "
            f"{', '.join(names)}; {consequence}"
        )
    return notes


def pinned(label: str, digest: str) -> str:
    """LABEL held to one manifest: `NAME:TAG@DIGEST` (the tag stays for readers)."""
    return f"{label}@{digest}"


def pin_dockerfile(dockerfile: str, pins: Mapping[str, str]) -> str:
    """DOCKERFILE with every FROM of a base image in PINS (label -> digest) held to that
    digest; other lines and FROMs unchanged."""
    lines = []
    for line in dockerfile.split("\n"):
        match = FROM_LINE.match(line)
        if match is not None and match["image"] in pins:
            image = match["image"]
            lines.append(match["head"] + pinned(image, pins[image]) + match["rest"])
        else:
            lines.append(line)
    return "\n".join(lines)


def unpin_dockerfile(dockerfile: str, pins: Mapping[str, str]) -> str:
    """DOCKERFILE as it was before `pin_dockerfile` held it to PINS (label -> digest)."""
    if not pins:
        return dockerfile
    held = {pinned(label, digest): label for label, digest in pins.items()}
    lines = []
    for line in dockerfile.split("\n"):
        match = FROM_LINE.match(line)
        if match is not None and match["image"] in held:
            lines.append(match["head"] + held[match["image"]] + match["rest"])
        else:
            lines.append(line)
    return "\n".join(lines)


def pin_plan(plan: Plan, pins: Mapping[str, str]) -> Plan:
    """PLAN with its base images held to PINS (label -> digest): FROM lines of rendered
    Dockerfiles, the pulls of those bases (which fetch that manifest and move no tag), and
    each image's `pins`, which its build records as its bases' digests."""
    if not pins:
        return plan
    images = []
    for image in plan.images:
        images.append(pin_image(image, {b: pins[b] for b in image.bases if b in pins}))
    # A pull held to a digest has no local copy to go on with: the daemon's image under the
    # tag may be another manifest.
    steps = tuple(
        attrs.evolve(step, label=pinned(step.image, pins[step.image]), local_copy=False)
        if step.op is Op.PULL and step.image in pins
        else step
        for step in plan.steps
    )
    return attrs.evolve(plan, images=tuple(images), steps=steps)


def pin_image(image: PlannedImage, used: Mapping[str, str]) -> PlannedImage:
    """IMAGE with the bases in USED (label -> digest) held to their digests in its FROM
    lines, recorded as its `pins`; as it is when it uses none or is never built."""
    if image.dockerfile is None or not used:
        return image
    build = image.build_dockerfile
    return attrs.evolve(
        image,
        dockerfile=pin_dockerfile(image.dockerfile, used),
        build_dockerfile=None if build is None else pin_dockerfile(build, used),
        pins=used,
    )


def pins_of(
    bases: Iterable[str],
    digests: Mapping[str, str],
    offline: bool,
    unknown: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """For `pin_bases`: the digest to hold each of BASES to (from DIGESTS, observed when
    planning), and notes for those it cannot: UNKNOWN says why a base's registry did not
    answer; the others were not found there."""
    unknown = unknown or {}
    wanted = sorted({base for base in bases if "@" not in base})
    if offline:
        return {}, [
            "pin_bases: planned offline, so the base images' digests are unknown: "
            "FROM lines are not pinned"
        ]
    pins = {base: digests[base] for base in wanted if base in digests}
    notes = [
        f"pin_bases: the digest of {base} is unknown (its registry did not answer: "
        f"{unknown[base]}): not pinned"
        if base in unknown
        else f"pin_bases: {base} was not found in its registry: not pinned"
        for base in wanted
        if base not in pins
    ]
    return pins, notes
