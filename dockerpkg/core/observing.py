"""What observing asks the registry, and the fold of the answers into `Observed`.

effects/observe.py asks (the daemon for its images; the registry for a manifest digest per
reference, the labels of the images found, the tags of repositories whose `latest` moved, the
digests of base images) and keeps what was said as data: `RegistryAnswers`, `BaseAnswers`,
the daemon's `LocalImage`s. Which questions to ask, and everything concluded from the answers,
is decided here, so the fold is tested with literal answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core.bases import BASES_LABEL, BaseRef, base_refs, read_bases_label
from dockerpkg.core.config import Config
from dockerpkg.core.definition import DEFINITION_LABEL, IDENTITY_LABEL
from dockerpkg.core.images import LocalImage
from dockerpkg.core.planner import Observed
from dockerpkg.core.registryrefs import Ref, tree_refs
from dockerpkg.core.staging import STAGING, Staged, staging_path
from dockerpkg.core.tree import Tree

# The labels dockerpkg reads back from a published image: all others are dropped on arrival.
KEPT_LABELS = (DEFINITION_LABEL, BASES_LABEL, IDENTITY_LABEL)


def _kept(value: Mapping[Ref, Mapping[str, str]]) -> Mapping[Ref, Mapping[str, str]]:
    return {
        ref: {k: v for k, v in labels.items() if k in KEPT_LABELS} for ref, labels in value.items()
    }


@attrs.frozen
class RegistryAnswers:
    """What the config's registry said: a manifest digest per reference asked (None: not
    there), the labels of the images whose labels were read (only those dockerpkg reads
    back are kept), and the tags of the repositories (by registry path) listed."""

    digests: Mapping[Ref, str | None] = attrs.field(factory=dict)
    labels: Mapping[Ref, Mapping[str, str]] = attrs.field(factory=dict, converter=_kept)
    tags: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)

    def merged(self, later: RegistryAnswers) -> RegistryAnswers:
        """These answers and LATER's: where both answered, the first answer stands."""
        return RegistryAnswers(
            {**later.digests, **self.digests},
            {**later.labels, **self.labels},
            {**later.tags, **self.tags},
        )


@attrs.frozen
class BaseQuestions:
    """The base images to ask one registry about, HOST (None: Docker Hub); OWN: it is the
    config's registry, the only one asked with the run's login."""

    host: str | None
    own: bool
    refs: tuple[BaseRef, ...]


@attrs.frozen
class BaseAnswers:
    """What the registries of base images said: each base label's manifest digest (None:
    not there), and the error of each registry that did not answer (its bases unjudged),
    also by base label (UNKNOWN), for the notes of pin_bases."""

    digests: Mapping[str, str | None] = attrs.field(factory=dict)
    failures: tuple[str, ...] = ()
    unknown: Mapping[str, str] = attrs.field(factory=dict)


def asks_latest(config: Config, credentials: bool) -> bool:
    """Whether each repository's `latest` is asked about: only a run that can publish (so
    move `latest`, which needs CREDENTIALS) and checks it."""
    return credentials and config.check_latest


def questions(
    config: Config, refs: Iterable[Ref], *, latest: bool, staging: bool
) -> tuple[Ref, ...]:
    """REFS, then (LATEST) each repository's `latest`, then (STAGING: all_or_nothing, an
    earlier run may have staged a version) each version's staging reference."""
    refs = tuple(refs)
    more = tuple(staged_ref(config, ref) for ref in refs) if staging else ()
    if not latest:
        return refs + more
    return refs + tuple(dict.fromkeys((path, "latest") for path, _ in refs)) + more


def tree_questions(tree: Tree, config: Config, *, latest: bool, staging: bool) -> tuple[Ref, ...]:
    """The questions for a resolved TREE's references (see `questions`)."""
    return questions(config, tree_refs(tree, config).values(), latest=latest, staging=staging)


def staged_ref(config: Config, ref: Ref) -> Ref:
    """Where an earlier run stages the version at REF."""
    return staging_path(ref[0], config.namespace), ref[1]


def label_reads(digests: Mapping[Ref, str | None], definitions: bool) -> dict[Ref, str]:
    """Whose labels to read, and by what reference (a tag, or a digest): every version found
    (not `latest`) with DEFINITIONS, else only those staged; a staged image is read by the
    digest observed, the one that would be promoted."""
    reads = {}
    for (path, tag), digest in digests.items():
        if not digest or tag == "latest":
            continue
        staged = f"/{STAGING}/" in f"/{path}"
        if staged or definitions:
            reads[path, tag] = digest if staged else tag
    return reads


def moved_repositories(tree: Tree, config: Config, answers: RegistryAnswers) -> tuple[str, ...]:
    """The registry paths whose `latest` is on another image than the tree's version: their
    tags are listed, to tell which one it is on."""
    moved = set()
    for path, tag in tree_refs(tree, config).values():
        version, latest = answers.digests.get((path, tag)), answers.digests.get((path, "latest"))
        if version is not None and latest is not None and latest != version:
            moved.add(path)
    return tuple(sorted(moved))


def base_questions(config: Config) -> tuple[BaseQuestions, ...]:
    """The config's base images, one group per registry to ask; only the config's own
    registry is asked with the run's login, never another."""
    groups: dict[tuple[str | None, bool], list[BaseRef]] = {}
    for ref in base_refs(config.base_images, config.registry):
        groups.setdefault((ref.registry, ref.own), []).append(ref)
    return tuple(
        BaseQuestions((config.registry or None) if own else host, own, tuple(refs))
        for (host, own), refs in groups.items()
    )


@attrs.frozen
class Asked:
    """How an observation was made: with CREDENTIALS, reading labels (DEFINITIONS), asking
    for STAGING references (all_or_nothing)."""

    credentials: bool = False
    definitions: bool = False
    staging: bool = False


def fold_observed(
    tree: Tree,
    config: Config,
    asked: Asked,
    answers: RegistryAnswers,
    *,
    local: tuple[LocalImage, ...] = (),
    bases: BaseAnswers | None = None,
    daemon_asked: bool = True,
) -> Observed:
    """What TREE's plan needs to know, from what the registry (ANSWERS), the daemon (LOCAL:
    its images; none when it was not asked: DAEMON_ASKED false) and the base images'
    registries (BASES) said."""
    bases = bases or BaseAnswers()
    refs = tree_refs(tree, config)
    images = {name: tree.images[name] for name in refs}
    by_path = {path: images[name].repository for name, (path, _) in refs.items()}
    recorded = {images[n].label: answers.labels.get(r, {}) for n, r in refs.items()}
    return Observed(
        offline=False,
        published=frozenset(images[n].label for n, r in refs.items() if answers.digests.get(r)),
        local=frozenset(tag for image in local for tag in image.tags),
        daemon_asked=daemon_asked,
        credentials=asked.credentials,
        recorded={
            label: value
            for label, kept in recorded.items()
            if (value := kept.get(DEFINITION_LABEL))
        },
        digests=_digests(tree, refs, answers, by_path),
        tags={by_path[path]: found for path, found in answers.tags.items()},
        labels_read=asked.definitions,
        bases={
            label: based
            for label, kept in recorded.items()
            if (based := read_bases_label(kept.get(BASES_LABEL))) is not None
        },
        base_digests={label: d for label, d in bases.digests.items() if d is not None},
        bases_absent=frozenset(label for label, d in bases.digests.items() if d is None),
        bases_unknown=dict(bases.unknown),
        problems=tuple(f"cannot tell whether base images moved: {e}" for e in bases.failures),
        staged=_staged(tree, config, refs, answers) if asked.staging else {},
        local_identities={
            tag: image.identity for image in local if image.identity for tag in image.tags
        },
    )


def _digests(
    tree: Tree, refs: Mapping[str, Ref], answers: RegistryAnswers, by_path: Mapping[str, str]
) -> dict[str, str]:
    """Label -> manifest digest: each published version and its repository's `latest`,
    where `latest` was asked, then the tags listed of repositories whose `latest` moved."""
    digests: dict[str, str] = {}
    for name, (path, tag) in refs.items():
        image = tree.images[name]
        version = answers.digests.get((path, tag))
        if version is None or (path, "latest") not in answers.digests:
            continue
        digests[image.label] = version
        latest = answers.digests[path, "latest"]
        if latest is not None:
            digests[f"{image.repository}:latest"] = latest
    for path, tags in answers.tags.items():
        for tag in tags:
            if (digest := answers.digests.get((path, tag))) is not None:
                digests.setdefault(f"{by_path[path]}:{tag}", digest)
    return digests


def _staged(
    tree: Tree, config: Config, refs: Mapping[str, Ref], answers: RegistryAnswers
) -> dict[str, Staged]:
    """Label -> what is staged for it (the identity its label records, its digest, and the
    version tag's digest), for the labels staged."""
    found = {}
    for name, ref in refs.items():
        staged = staged_ref(config, ref)
        if digest := answers.digests.get(staged):
            identity = answers.labels.get(staged, {}).get(IDENTITY_LABEL, "")
            found[tree.images[name].label] = Staged(identity, digest, answers.digests.get(ref))
    return found
