"""What observing asks the registry, and the fold of the answers into `Observed`.

effects/observe.py asks (the daemon for its images; the registry for a manifest digest per
reference, the labels of the images found, the tags of repositories whose `latest` moved, the
digests of base images) and keeps what was said as data: `RegistryAnswers`, `BaseAnswers`,
the daemon's `LocalImage`s. For a tree with platforms it also asks (effects/platformreads.py)
which platforms each published version and each base lists, and the daemon's platform and the
machine's binfmt_misc handlers: `PlatformAnswers`, `DaemonFacts`. Which questions to ask, and
everything concluded from the answers, is decided here, so the fold is tested with literal
answers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from dockerpkg.core.bases import BASES_LABEL, BaseRef, base_refs, read_bases_label
from dockerpkg.core.config import Config
from dockerpkg.core.definition import DEFINITION_LABEL, IDENTITY_LABEL
from dockerpkg.core.images import LocalImage
from dockerpkg.core.planner import Observed
from dockerpkg.core.platforms import Platform, platform_tag
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
    return _grouped(config, config.base_images)


def _grouped(config: Config, labels: Iterable[str]) -> tuple[BaseQuestions, ...]:
    groups: dict[tuple[str | None, bool], list[BaseRef]] = {}
    for ref in base_refs(labels, config.registry):
        groups.setdefault((ref.registry, ref.own), []).append(ref)
    return tuple(
        BaseQuestions((config.registry or None) if own else host, own, tuple(refs))
        for (host, own), refs in groups.items()
    )


# --- several platforms ------------------------------------------------------------------------


@attrs.frozen
class PlatformAnswers:
    """What the registries said of a tree with platforms: the platforms each published
    version lists (reference -> platform -> manifest digest: an index's children, or a single
    image's own platform), those of each base image (by base label), the labels recorded on
    each platform's image where read (by registry path and manifest digest), and the error
    of each registry of base images that did not answer (its bases unjudged)."""

    versions: Mapping[Ref, Mapping[str, str]] = attrs.field(factory=dict)
    bases: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    labels: Mapping[Ref, Mapping[str, str]] = attrs.field(factory=dict, converter=_kept)
    failures: tuple[str, ...] = ()


@attrs.frozen
class BinfmtHandler:
    """One handler registered in binfmt_misc: its NAME (`qemu-aarch64`), whether it is
    ENABLED, and its FLAGS (`PF`)."""

    name: str
    enabled: bool
    flags: str = ""


@attrs.frozen
class DaemonFacts:
    """What a daemon says of itself (`/info`: its OS and ARCHITECTURE, as uname spells it)
    and, for a daemon on this machine, the binfmt_misc HANDLERS registered (empty: none).
    HANDLERS None: what the daemon emulates is not known (it is on another machine or in
    another kernel, or binfmt_misc cannot be read), UNKNOWN saying why; its platforms are
    then not judged at all, rather than as its own alone."""

    os: str
    architecture: str
    handlers: tuple[BinfmtHandler, ...] | None = ()
    unknown: str = ""


# The machine names uname gives 32-bit ARM, which OCI spells with a variant.
_UNAME_ARM = {"armv7l": "v7", "armv6l": "v6", "armv8l": "v7"}

# The architectures qemu-user names its handlers after (`qemu-aarch64`), as platforms.
QEMU_PLATFORMS: Mapping[str, tuple[str, ...]] = {
    "aarch64": ("linux/arm64",),
    "arm": ("linux/arm/v7", "linux/arm/v6"),
    "i386": ("linux/386",),
    "x86_64": ("linux/amd64",),
    "ppc64le": ("linux/ppc64le",),
    "s390x": ("linux/s390x",),
    "riscv64": ("linux/riscv64",),
    "mips64el": ("linux/mips64le",),
    "loongarch64": ("linux/loong64",),
}


def platforms_of(tree: Tree, config: Config) -> dict[str, tuple[str, ...]]:
    """Image name -> the platforms it is built for (its control's `Platforms`, else the
    config's), for the images that have any."""
    found = {}
    for name, image in tree.images.items():
        if wanted := image.spec.platforms or config.platforms:
            found[name] = wanted
    return found


def platform_questions(
    tree: Tree, config: Config, digests: Mapping[Ref, str | None]
) -> tuple[Ref, ...]:
    """The version references of the images with platforms that the registry holds (as
    DIGESTS say): their manifests are read for the platforms they list. None for a tree
    without platforms."""
    refs = tree_refs(tree, config)
    return tuple(refs[name] for name in platforms_of(tree, config) if digests.get(refs[name]))


def platform_base_questions(tree: Tree, config: Config) -> tuple[BaseQuestions, ...]:
    """The base images of the images with platforms, one group per registry (as
    `base_questions`); none for a tree without platforms."""
    labels = {base for name in platforms_of(tree, config) for base in tree.images[name].bases}
    return _grouped(config, labels) if labels else ()


def platform_label_reads(
    versions: Mapping[Ref, Mapping[str, str]], built_for: Mapping[Ref, Collection[str]]
) -> tuple[Ref, ...]:
    """Whose labels to read for a tree with platforms: the image of each platform a version
    is built for (BUILT_FOR, by version reference) that its index lists, by the manifest
    digest listed (the platform tag may have moved since); the other platforms an index
    lists (an upstream image's eight) are not read."""
    found: dict[Ref, None] = {}
    for ref, listed in versions.items():
        for platform in _canonical(built_for.get(ref, ())):
            if (digest := listed.get(platform)) is not None:
                found[ref[0], digest] = None
    return tuple(found)


def platform_versions(tree: Tree, config: Config) -> dict[Ref, tuple[str, ...]]:
    """Version reference -> the platforms its image is built for, for the images that have
    any."""
    refs = tree_refs(tree, config)
    return {refs[name]: wanted for name, wanted in platforms_of(tree, config).items()}


def _canonical(platforms: Iterable[str]) -> tuple[str, ...]:
    """PLATFORMS as an index names them (`linux/arm64`, never `linux/aarch64`)."""
    found = []
    for text in platforms:
        try:
            found.append(str(Platform.parse(text)))
        except ValueError:
            continue
    return tuple(found)


# A digest as an index may name a child: nothing else reaches a plan, a log or a request.
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# What an index's child may be: one image's manifest (Docker's or OCI's), never another
# index (its platforms would be another read) nor an artifact.
IMAGE_MANIFESTS = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    }
)
# The children of one index looked at: upstream images list a dozen at most (with their
# attestations); past this, an index is not one dockerpkg or a build tool made.
MAX_CHILDREN = 64


def manifest_platforms(manifest: Any, digest: str, image_config: Any = None) -> dict[str, str]:
    """Platform -> manifest digest, from one manifest read: an index (or a Docker manifest
    list) gives its children's (its first MAX_CHILDREN), leaving out those of no known
    platform (attestations), those that are not one image's manifest and those whose digest
    is not a sha256 digest; a single image's manifest (of DIGEST) is of the platform its
    config (IMAGE_CONFIG, the config blob) records, none where it records none."""
    if isinstance(manifest, dict) and isinstance(manifest.get("manifests"), list):
        found: dict[str, str] = {}
        for child in manifest["manifests"][:MAX_CHILDREN]:
            if not _image_child(child):
                continue
            if (platform := _platform(child.get("platform"))) is not None:
                found.setdefault(platform, child["digest"])
        return found
    platform = _platform(image_config)
    return {} if platform is None else {platform: digest}


def _image_child(child: Any) -> bool:
    """Whether CHILD (an entry of an index) is one image's manifest, named by a digest."""
    if not isinstance(child, dict):
        return False
    digest, media_type = child.get("digest"), child.get("mediaType")
    return (
        isinstance(digest, str)
        and _DIGEST.fullmatch(digest) is not None
        and media_type in IMAGE_MANIFESTS
    )


def _platform(value: Any) -> str | None:
    """The platform a JSON object names by its `os`, `architecture` and `variant`."""
    if not isinstance(value, dict):
        return None
    os, architecture, variant = value.get("os"), value.get("architecture"), value.get("variant")
    if not isinstance(os, str) or not isinstance(architecture, str):
        return None
    if "unknown" in (os, architecture) or not architecture:
        return None
    try:
        return str(Platform.of_image(os, architecture, variant or None))
    except (ValueError, TypeError):
        return None


def daemon_platform(facts: DaemonFacts) -> str | None:
    """The daemon's own platform, from what `/info` says; None when it names none known."""
    variant = _UNAME_ARM.get(facts.architecture)
    architecture = "arm" if variant else facts.architecture
    if not architecture:
        return None
    try:
        return str(Platform.of_image(facts.os.lower(), architecture, variant))
    except ValueError:
        return None


def emulated_platforms(facts: DaemonFacts) -> frozenset[str]:
    """The platforms the daemon's machine runs under QEMU: those of each enabled
    `qemu-ARCH` handler registered with the F flag (its interpreter opened at registration,
    so it also runs inside a container, whose filesystem lacks it), the daemon's own left
    out."""
    own = daemon_platform(facts)
    found: set[str] = set()
    for handler in facts.handlers or ():
        name = handler.name.removeprefix("qemu-")
        if handler.enabled and "F" in handler.flags and handler.name.startswith("qemu-"):
            found.update(QEMU_PLATFORMS.get(name, ()))
    return frozenset(found - {own} if own else found)


def _platform_recorded(
    tree: Tree, refs: Mapping[str, Ref], platforms: PlatformAnswers
) -> dict[str, Mapping[str, str]]:
    """Platform label (`REPOSITORY:TAG-arm64`) -> the labels its image records, for each
    platform of each version whose labels were read."""
    found: dict[str, Mapping[str, str]] = {}
    for name, ref in refs.items():
        image = tree.images[name]
        for platform, digest in platforms.versions.get(ref, {}).items():
            kept = platforms.labels.get((ref[0], digest))
            if kept is not None:
                tag = platform_tag(image.tag, Platform.parse(platform))
                found[f"{image.repository}:{tag}"] = kept
    return found


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
    platforms: PlatformAnswers | None = None,
    daemon: DaemonFacts | None = None,
) -> Observed:
    """What TREE's plan needs to know, from what the registry (ANSWERS), the daemon (LOCAL:
    its images; none when it was not asked: DAEMON_ASKED false) and the base images'
    registries (BASES) said; for a tree with platforms, the platforms listed (PLATFORMS) and
    the daemon's own and emulated ones (DAEMON)."""
    bases = bases or BaseAnswers()
    platforms = platforms or PlatformAnswers()
    refs = tree_refs(tree, config)
    images = {name: tree.images[name] for name in refs}
    by_path = {path: images[name].repository for name, (path, _) in refs.items()}
    recorded = {images[n].label: answers.labels.get(r, {}) for n, r in refs.items()}
    recorded.update(_platform_recorded(tree, refs, platforms))
    problems = tuple(f"cannot tell whether base images moved: {e}" for e in bases.failures)
    problems += tuple(f"cannot tell the platforms of base images: {e}" for e in platforms.failures)
    known = daemon is not None and daemon.handlers is not None
    if daemon is not None and not known:
        problems += (
            f"cannot tell which platforms the daemon builds: {daemon.unknown or 'unknown'} "
            "(declare them as its builder's `platforms` to have them checked)",
        )
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
        problems=problems,
        staged=_staged(tree, config, refs, answers) if asked.staging else {},
        local_identities={
            tag: image.identity for image in local if image.identity for tag in image.tags
        },
        platform_digests={
            images[n].label: dict(platforms.versions[r])
            for n, r in refs.items()
            if r in platforms.versions
        },
        base_platforms={label: dict(found) for label, found in platforms.bases.items()},
        daemon_platform=daemon_platform(daemon) if daemon is not None and known else None,
        emulated=emulated_platforms(daemon) if daemon is not None and known else frozenset(),
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
