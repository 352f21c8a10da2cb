"""The `refs` verb's plan: where other files use the tree's images (CI jobs, Helm values,
manifests, compose files, scripts): every reference to an image of the tree, its state, and
the edit that moves an outdated one to the image's current version.

A reference is the image's repository (`REGISTRY/NAMESPACE/NAME`, or `NAMESPACE/NAME`
without the registry when the config has both) with an optional `:TAG` and `@sha256:`
digest. A line holding a `dockerpkg: pin` comment keeps its references as they are. Pure:
the caller reads the files and, online, what the registry holds.
"""

from __future__ import annotations

import enum
import hashlib
import re
import string
from collections.abc import Iterable, Mapping, Sequence

import attrs

from dockerpkg.core.changelog import versions_newest_first
from dockerpkg.core.config import Config
from dockerpkg.core.labels import join_repository, split_label
from dockerpkg.core.plan import Plan
from dockerpkg.core.tree import Tree

FORMAT_VERSION = 1

# A repository name component as Docker takes it (lowercase, separators inside); a tree
# image's name may hold several, as in `releng/tox`.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
# A tag ends in a letter, digit or _: a full stop or dash after it ends a sentence, not it.
_TAG = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?"
_DIGEST = r"sha256:[0-9a-f]{64}"
# What may not touch a reference on either side: it would be part of a longer word or path.
# (After it, a full stop or a dash alone may: the end of a sentence, a YAML list's dash.)
_EDGE = r"[A-Za-z0-9_.\-/:@]"
_AFTER = r"(?:[A-Za-z0-9_/:@]|[.-][A-Za-z0-9_])"
# `# dockerpkg: pin [reason]`, or with //, --, ;, <!-- or /* as the comment's start.
_PIN = re.compile(r"(?:#|//|--|;|<!--|/\*)\s*dockerpkg:\s*pin\b(?P<reason>(?:(?!-->|\*/).)*)")
_PIN_PUNCTUATION = string.whitespace + ":,-"  # around a pin's reason
_LATEST = "latest"


class UseState(enum.Enum):
    CURRENT = "current"  # names the current version (or `latest`, or no tag)
    OUTDATED = "outdated"  # names another version: the plan moves it
    PINNED = "pinned"  # kept on purpose: a pin comment on its line
    UNKNOWN = "unknown"  # in the tree's registry and namespace, but no image of the tree
    NOT_PUBLISHED = "not_published"  # online: the current version is not in the registry
    UNCHECKED = "unchecked"  # a digest alone, offline: which version it is needs the registry


class SkipReason(enum.Enum):
    """Why a file that may hold references was not looked through."""

    TOO_LARGE = "too_large"  # over the size limit, and holds the needle
    BINARY = "binary"  # a NUL byte early on (and no UTF-16 byte order mark); holds the needle
    UNREADABLE = "unreadable"  # it could not be read (permissions, a read error)


@attrs.frozen
class SkippedFile:
    """A file `refs` did not look through, though it may hold references: it cannot say the
    references there are current."""

    path: str
    reason: SkipReason
    detail: str  # for people: what was seen


@attrs.frozen
class Published:
    """What the registry holds of one image, asked with --online."""

    tags: frozenset[str]
    current_digest: str | None  # the manifest digest of the current version, if published


@attrs.frozen
class ImageUse:
    """One reference in one file."""

    path: str
    line: int
    column: int  # 1-based, in characters
    text: str  # the reference as written
    image: str | None  # the tree image it names; None: unknown
    version: str | None  # its tag as written; None: none
    digest: str | None
    current: str | None  # the image's current version
    state: UseState
    note: str = ""  # pinned: the comment's reason; otherwise why there is no edit
    offset: int = 0  # where the reference starts in the file's text
    # The characters the edit replaces (offsets in the file's text) and what it writes.
    start: int = 0
    end: int = 0
    replacement: str | None = None

    @property
    def edited(self) -> str | None:
        """The reference after the edit; None: no edit."""
        if self.replacement is None:
            return None
        head, tail = self.start - self.offset, self.end - self.offset
        return self.text[:head] + self.replacement + self.text[tail:]


@attrs.frozen
class FileDigest:
    path: str
    sha256: str


@attrs.frozen
class UsagePlan:
    """Every reference found, and the files the plan edits with their digests then."""

    directory: str
    online: bool
    uses: tuple[ImageUse, ...]
    files: tuple[FileDigest, ...] = ()  # the files with edits, as they were read
    scanned: int = 0  # how many files were read
    format_version: int = FORMAT_VERSION
    skipped: tuple[SkippedFile, ...] = ()  # files that may hold references, not looked through

    @property
    def edits(self) -> tuple[ImageUse, ...]:
        return tuple(use for use in self.uses if use.replacement is not None)

    def count(self, state: UseState) -> int:
        return sum(1 for use in self.uses if use.state is state)


@attrs.frozen
class TreeFacts:
    """What matching needs of the tree: each image's current version and older ones."""

    prefixes: tuple[str, ...]  # the repository prefixes references are looked for under
    current: Mapping[str, str]  # image name -> its current version
    versions: Mapping[str, frozenset[str]]  # image name -> every version of its changelog
    # Names under the prefixes that are the config's base images, not the tree's: neither
    # references to edit nor unknown (a registry without a namespace holds both).
    external: frozenset[str] = frozenset()


def tree_facts(tree: Tree, config: Config) -> TreeFacts:
    full = join_repository(config.registry, config.namespace)
    prefixes = [full] if full else []
    if config.registry and config.namespace:
        prefixes.append(config.namespace.strip("/"))
    bases = [split_label(base)[0] for base in config.base_images]
    external = frozenset(
        repository[len(p) + 1 :]
        for repository in bases
        for p in prefixes
        if repository.startswith(f"{p}/")
    )
    return TreeFacts(
        prefixes=tuple(prefixes),
        external=external,
        current={name: image.tag for name, image in tree.images.items()},
        versions={
            name: frozenset(versions_newest_first(image.spec.source.changelog))
            for name, image in tree.images.items()
        },
    )


def moved_facts(facts: TreeFacts, update: Plan) -> TreeFacts:
    """FACTS once the UPDATE plan's entries are written: each image it updates is current at
    its new version (`update --refs` moves the users to it)."""
    newer = {edit.image: edit.new_version for edit in update.edits}
    return attrs.evolve(facts, current={**facts.current, **newer})


@attrs.frozen
class UpdateWithRefs:
    """`update --refs` as one plan: the UPDATE's changelog entries and the REFS edits that
    move the users in the config's refs: paths (PATHS, where those edits may go besides the
    tree) to its new versions (FACTS: the tree's, once updated). Shown whole, then written
    in one transaction, all files or none."""

    update: Plan
    refs: UsagePlan
    paths: tuple[str, ...]
    facts: TreeFacts


def needle(facts: TreeFacts) -> bytes | None:
    """A byte string every file holding a reference holds (the shortest prefix and its
    slash): a file without it is not decoded or searched. None: nothing can match."""
    if not facts.prefixes:
        return None
    return (min(facts.prefixes, key=len) + "/").encode()


def _pattern(prefixes: Sequence[str]) -> re.Pattern[str]:
    # Longest first: with the registry before without it.
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(
        rf"(?<!{_EDGE})(?P<prefix>{alternatives})/(?P<name>{_NAME})"
        rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?(?!{_AFTER})"
    )


def find_uses(
    path: str,
    text: str,
    facts: TreeFacts,
    published: Mapping[str, Published] | None = None,
) -> list[ImageUse]:
    """Every reference to the tree's registry and namespace in TEXT (the file at PATH), with
    its state and edit; PUBLISHED (online): what the registry holds of each image."""
    if not facts.prefixes:
        return []
    found = []
    line_starts = _line_starts(text)
    for match in _pattern(facts.prefixes).finditer(text):
        name = match["name"]
        if name not in facts.current and (
            name in facts.external or any(name.startswith(f"{n}/") for n in facts.current)
        ):
            continue  # a base image, or a path under an image's name (team/app/config.yaml)
        line = _line_of(line_starts, match.start())
        begin = line_starts[line - 1]
        use = ImageUse(
            path=path,
            line=line,
            column=match.start() - begin + 1,
            text=match[0],
            image=name if name in facts.current else None,
            version=match["tag"],
            digest=match["digest"],
            current=facts.current.get(name),
            state=UseState.CURRENT,
            offset=match.start(),
        )
        found.append(_judged(use, match, text[begin : _line_end(text, begin)], published))
    return found


def _judged(
    use: ImageUse,
    match: re.Match[str],
    line_text: str,
    published: Mapping[str, Published] | None,
) -> ImageUse:
    """USE with its state: unknown, pinned, not published, or as its version says."""
    if use.image is None or use.current is None:
        note = f"no image of the tree is called {match['name']}"
        return attrs.evolve(use, state=UseState.UNKNOWN, note=note)
    pin = _PIN.search(line_text)
    if pin is not None:
        return attrs.evolve(use, state=UseState.PINNED, note=pin["reason"].strip(_PIN_PUNCTUATION))
    held = None if published is None else published.get(use.image)
    if held is not None and use.current not in held.tags:
        note = f"{use.current} is not in the registry yet: an edit to it would break this"
        return attrs.evolve(use, state=UseState.NOT_PUBLISHED, note=note)
    return _versioned(use, match, held, offline=published is None)


def _versioned(
    use: ImageUse, match: re.Match[str], held: Published | None, *, offline: bool
) -> ImageUse:
    """USE as its tag and digest say, against its image's current version (and HELD, the
    current version's digest online)."""
    tag, digest, current = use.version, use.digest, use.current or ""
    if tag in (None, _LATEST):
        if digest is None:
            return use  # follows `latest`
        return _digest_use(use, held, match, offline=offline)
    if tag == current:
        return use if digest is None else _digest_use(use, held, match, offline=False)
    if digest is None:
        return attrs.evolve(
            use,
            state=UseState.OUTDATED,
            start=match.start("tag"),
            end=match.end("tag"),
            replacement=current,
        )
    if held is None or held.current_digest is None:
        note = "its digest is needed for the edit: run with --online"
        return attrs.evolve(use, state=UseState.OUTDATED, note=note)
    return attrs.evolve(
        use,
        state=UseState.OUTDATED,
        start=match.start("tag"),
        end=match.end("digest"),
        replacement=f"{current}@{held.current_digest}",
    )


def _digest_use(
    use: ImageUse, held: Published | None, match: re.Match[str], *, offline: bool
) -> ImageUse:
    """A reference by digest (alone, beside `latest`, or beside the current tag): current
    when it is the current version's digest; offline, a digest alone is unchecked."""
    if held is None:
        if not offline:
            return use
        return attrs.evolve(
            use, state=UseState.UNCHECKED, note="which version a digest is needs --online"
        )
    if held.current_digest is None or use.digest == held.current_digest:
        return use
    return attrs.evolve(
        use,
        state=UseState.OUTDATED,
        start=match.start("digest"),
        end=match.end("digest"),
        replacement=held.current_digest,
    )


def _line_starts(text: str) -> list[int]:
    starts = [0]
    at = text.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    return starts


def _line_of(starts: Sequence[int], offset: int) -> int:
    low, high = 0, len(starts)
    while high - low > 1:
        middle = (low + high) // 2
        if starts[middle] <= offset:
            low = middle
        else:
            high = middle
    return low + 1


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def edited_text(text: str, uses: Iterable[ImageUse]) -> str:
    """TEXT with the edits of USES (references found in it) made, every other character as
    it was."""
    return with_spans(
        text, [(u.start, u.end, u.replacement) for u in uses if u.replacement is not None]
    )


_EDIT = re.compile(rf"(?:{_TAG})?(?:@?{_DIGEST})?")


def is_version_text(text: str) -> bool:
    """Whether TEXT is what an edit of a reference replaces or writes: a tag, a digest or a
    tag and a digest (what a journal may ask for; see dockerpkg.effects.refswrites)."""
    return bool(text) and _EDIT.fullmatch(text) is not None


def with_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """TEXT with each (start, end, replacement) of SPANS (not overlapping) made."""
    out = []
    at = 0
    for start, end, replacement in sorted(spans):
        out += [text[at:start], replacement]
        at = end
    out.append(text[at:])
    return "".join(out)


def file_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# Why a reference in a file read but not written (UTF-16) has no edit.
UNEDITED_NOTE = "a UTF-16 file, which refs reads but does not edit: change it by hand"


def plan_usages(
    directory: str,
    files: Sequence[tuple[str, str, str]],
    facts: TreeFacts,
    published: Mapping[str, Published] | None = None,
    *,
    scanned: int | None = None,
    skipped: Sequence[SkippedFile] = (),
    unedited: frozenset[str] = frozenset(),
) -> UsagePlan:
    """The references in FILES ((path, text, digest of its bytes) of each file holding the
    needle), sorted by file, line and column; the digests of the files with edits. Those in
    UNEDITED (read, but not written back: UTF-16) keep their state and get no edit. SKIPPED:
    the files not looked through."""
    uses: list[ImageUse] = []
    digests = []
    for path, text, digest in sorted(files):
        mine = find_uses(path, text, facts, published)
        if path in unedited:
            mine = [_unedited(use) for use in mine]
        uses += mine
        if any(use.replacement is not None for use in mine):
            digests.append(FileDigest(path, digest))
    return UsagePlan(
        directory=directory,
        online=published is not None,
        uses=tuple(uses),
        files=tuple(digests),
        scanned=len(files) if scanned is None else scanned,
        skipped=tuple(sorted(skipped, key=lambda f: f.path)),
    )


def _unedited(use: ImageUse) -> ImageUse:
    if use.replacement is None:
        return use
    return attrs.evolve(use, start=0, end=0, replacement=None, note=UNEDITED_NOTE)
