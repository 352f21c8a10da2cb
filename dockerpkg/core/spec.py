"""Image definitions: changelog and control text -> ImageSpec values (python-debian on strings)."""

from __future__ import annotations

import re

import attrs
from debian.changelog import Changelog, ChangelogParseError

from dockerpkg.core.platforms import Platform
from dockerpkg.errors import DockerPkgError, Problem, error


@attrs.frozen
class Dependency:
    """One entry of Depends/Build-Depends; the constraint is kept as written, for display."""

    name: str
    constraint: str | None = None
    # Where the control file names it, for messages; not part of the value.
    line: int | None = attrs.field(default=None, eq=False)


@attrs.frozen
class ImageSource:
    """What the tree holds for one image folder, exactly as read."""

    path: str  # folder relative to the tree root, "/"-separated; "." for the root itself
    template: str
    changelog: str
    control: str | None = None
    build_template: str | None = None
    # Text files of the folder a template may include, by path relative to the folder.
    files: tuple[tuple[str, str], ...] = ()
    # Every file name in the folder (relative), text or not: test.sh, .dockerignore, ...
    names: frozenset[str] = frozenset()
    # sha256 of every file, text or not, so a saved plan notices any change to the context.
    hashes: tuple[tuple[str, str], ...] = ()
    # Why a file has no text (not UTF-8, too big, unreadable), for whoever wants to read it
    # (a structure-tests.yaml): relative path -> (why, line). Not part of the value.
    unread: tuple[tuple[str, tuple[str, int | None]], ...] = attrs.field(default=(), eq=False)

    def file(self, name: str) -> str:
        """The path of a file of this image, relative to the tree root."""
        return name if self.path == "." else f"{self.path}/{name}"


@attrs.frozen
class ImageSpec:
    """An image's identity and declared dependencies, parsed from its source."""

    source: ImageSource
    name: str
    version: str
    depends: tuple[Dependency, ...] = ()
    # The control file's `Platforms` (`linux/amd64, linux/arm64`): this image's platforms
    # instead of the config's; empty: the config's.
    platforms: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return self.source.path


def _changelog_head(source: ImageSource) -> tuple[str, str]:
    where = source.file("changelog")
    if not source.changelog.strip():
        raise DockerPkgError([error(where, "the changelog is empty")])
    try:
        changelog = Changelog(source.changelog, strict=True, max_blocks=1)
        name, version = changelog.package, changelog.version
    except (ChangelogParseError, ValueError) as exc:
        line = _first_bad_line(source.changelog, str(exc))
        detail = str(exc).removeprefix("Could not parse changelog: ")
        raise DockerPkgError([error(where, f"cannot parse changelog: {detail}", line)]) from None
    if not name or version is None:
        raise DockerPkgError([error(where, "changelog has no entry", 1)])
    return name, str(version)


def _first_bad_line(text: str, message: str) -> int | None:
    """python-debian quotes the offending line after the last ': '; find where it is. Other
    messages are about the heading (a bad version), or about the end of the file."""
    lines = text.splitlines()
    quoted = message.rsplit(": ", 1)[-1].strip()
    for number, line in enumerate(lines, 1):
        if quoted and line.strip() == quoted:
            return number
    filled = [number for number, line in enumerate(lines, 1) if line.strip()]
    if not filled:
        return None
    return filled[-1] if "eof" in message else filled[0]


# A field line of deb822: a name (printable ASCII but space and ':', not starting with # or -),
# a colon, and the value.
_FIELD = re.compile(r"([!-,.-9;-~][!-9;-~]*):(.*)")
# One relation: an image name and an optional version constraint, as python-debian reads them.
_RELATION = re.compile(
    r"(?P<name>[a-zA-Z0-9][a-zA-Z0-9.+\-]*)"
    r"(?:\s*\(\s*(?P<op><<|<=|=|>=|>>|<|>)\s*(?P<version>[0-9a-zA-Z:\-+~.]+)\s*\))?"
)
_DEPENDS_FIELDS = ("Build-Depends", "Depends")


@attrs.frozen
class _Field:
    """A control field: where it starts, and its value line by line (with line numbers)."""

    name: str
    line: int
    parts: tuple[tuple[int, str], ...]


def _control_fields(text: str, where: str) -> tuple[dict[str, _Field], list[Problem]]:
    """The fields of the first paragraph (the image's; later ones are not read), by
    lower-cased name; every malformed line of the file is a problem at its line."""
    raw: list[tuple[str, int, list[tuple[int, str]]]] = []  # every field, in order
    first_paragraph: int | None = None  # how many fields the first paragraph has
    problems: list[Problem] = []
    current: list[tuple[int, str]] | None = None  # the value of the field being read
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if current is not None and first_paragraph is None:
                first_paragraph = len(raw)
            current = None
        elif line[0] in " \t":
            if current is None:
                problems.append(error(where, "continuation line without a field above it", number))
            else:
                current.append((number, line.strip()))
        elif match := _FIELD.fullmatch(line):
            current = [(number, match.group(2).strip())]
            raw.append((match.group(1), number, current))
        else:
            problems.append(
                error(where, f"malformed line {line.strip()!r}: expected 'Field: value'", number)
            )
            current = None
    fields: dict[str, _Field] = {}
    for name, number, parts in raw[:first_paragraph]:
        key = name.lower()
        if key in fields:
            message = f"field {name} given twice (first at line {fields[key].line})"
            problems.append(error(where, message, number))
        else:
            fields[key] = _Field(name, number, tuple((n, v) for n, v in parts if v))
    return fields, problems


def _relations(field: _Field) -> list[tuple[int, str]]:
    """The comma-separated entries of a field, each with the line it starts on; empty entries
    (a trailing comma) are left out."""
    entries: list[tuple[int, str]] = []
    start, pending = field.line, ""
    for number, part in field.parts:
        pieces = part.split(",")
        for index, piece in enumerate(pieces):
            if not pending.strip():
                start = number
            pending += " " + piece
            if index < len(pieces) - 1:
                if pending.strip():
                    entries.append((start, pending.strip()))
                pending = ""
    if pending.strip():
        entries.append((start, pending.strip()))
    return entries


def _control_platforms(field: _Field | None, where: str) -> tuple[tuple[str, ...], list[Problem]]:
    """The control file's `Platforms` in their canonical spelling, in the order written."""
    if field is None:
        return (), []
    found: dict[str, None] = {}  # ordered, and a set
    for line, entry in _relations(field):
        try:
            platform = str(Platform.parse(entry))
        except ValueError as exc:
            return (), [error(where, f"{field.name}: {exc}", line)]
        if platform in found:
            return (), [error(where, f"{field.name}: platform {platform} is given twice", line)]
        found[platform] = None
    if not found:
        return (), [error(where, f"{field.name}: no platform given", field.line)]
    return tuple(found), []


def _control(source: ImageSource) -> tuple[tuple[Dependency, ...], tuple[str, ...]]:
    """The image's dependencies and platforms, as its control file gives them."""
    if source.control is None:
        return (), ()
    where = source.file("control")
    fields, problems = _control_fields(source.control, where)
    platforms, wrong = _control_platforms(fields.get("platforms"), where)
    problems += wrong
    found: list[Dependency] = []
    for name in _DEPENDS_FIELDS:
        field = fields.get(name.lower())
        if field is None:
            continue
        for line, entry in _relations(field):
            match = _RELATION.fullmatch(entry)
            if "|" in entry:
                message = f"{field.name}: alternatives ('{entry}') are not supported"
                problems.append(error(where, message, line))
            elif match is None:
                message = (
                    f"{field.name}: cannot read '{entry}': expected an image name, optionally "
                    "followed by a version constraint such as (>= 1.0)"
                )
                problems.append(error(where, message, line))
            else:
                constraint = f"{match['op']} {match['version']}" if match["op"] else None
                found.append(Dependency(match["name"], constraint, line))
    if problems:
        raise DockerPkgError(problems)
    return tuple(found), platforms


def parse_image(source: ImageSource) -> ImageSpec:
    """Parse one image folder's changelog and control; raises with every problem found."""
    problems: list[Problem] = []
    name = version = ""
    depends: tuple[Dependency, ...] = ()
    platforms: tuple[str, ...] = ()
    try:
        name, version = _changelog_head(source)
    except DockerPkgError as exc:
        problems.extend(exc.problems)
    try:
        depends, platforms = _control(source)
    except DockerPkgError as exc:
        problems.extend(exc.problems)
    if problems:
        raise DockerPkgError(problems)
    return ImageSpec(
        source=source, name=name, version=version, depends=depends, platforms=platforms
    )


@attrs.frozen
class Snapshot:
    """Everything read from an image tree: the sources, and what was skipped (as warnings)."""

    images: tuple[ImageSource, ...]
    warnings: tuple[Problem, ...] = ()
    # Files an interrupted update left (staged changelogs, its journal), relative: not read.
    working: tuple[str, ...] = ()
