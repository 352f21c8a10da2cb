"""Image definitions: changelog and control text -> ImageSpec values (python-debian on strings)."""

from __future__ import annotations

import attrs
from debian import deb822
from debian.changelog import Changelog, ChangelogParseError

from dockerpkg.errors import DockerPkgError, Problem, error


@attrs.frozen
class Dependency:
    """One entry of Depends/Build-Depends; the constraint is kept as written, for display."""

    name: str
    constraint: str | None = None


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

    @property
    def path(self) -> str:
        return self.source.path


def _changelog_head(source: ImageSource) -> tuple[str, str]:
    where = source.file("changelog")
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
    """python-debian quotes the offending line after the last ': '; find where it is."""
    quoted = message.rsplit(": ", 1)[-1].strip()
    for number, line in enumerate(text.splitlines(), 1):
        if quoted and line.strip() == quoted:
            return number
    return None


def _control_depends(source: ImageSource) -> tuple[Dependency, ...]:
    if source.control is None:
        return ()
    where = source.file("control")
    try:
        paragraph = deb822.Deb822(source.control)
    except ValueError as exc:
        raise DockerPkgError([error(where, f"cannot parse control file: {exc}")]) from None
    found: list[Dependency] = []
    problems: list[Problem] = []
    for field in ("Build-Depends", "Depends"):
        value = paragraph.get(field)
        if not value:
            continue
        line = _field_line(source.control, field)
        for alternatives in deb822.PkgRelation.parse_relations(value):
            if len(alternatives) != 1 or not alternatives[0].get("name"):
                problems.append(
                    error(where, f"{field}: alternatives ('|') are not supported", line)
                )
                continue
            entry = alternatives[0]
            version = entry.get("version")
            constraint = f"{version[0]} {version[1]}" if version else None
            found.append(Dependency(entry["name"], constraint))
    if problems:
        raise DockerPkgError(problems)
    return tuple(found)


def _field_line(text: str, field: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.lower().startswith(field.lower() + ":"):
            return number
    return None


def parse_image(source: ImageSource) -> ImageSpec:
    """Parse one image folder's changelog and control; raises with every problem found."""
    problems: list[Problem] = []
    name = version = ""
    depends: tuple[Dependency, ...] = ()
    try:
        name, version = _changelog_head(source)
    except DockerPkgError as exc:
        problems.extend(exc.problems)
    try:
        depends = _control_depends(source)
    except DockerPkgError as exc:
        problems.extend(exc.problems)
    if problems:
        raise DockerPkgError(problems)
    return ImageSpec(source=source, name=name, version=version, depends=depends)


@attrs.frozen
class Snapshot:
    """Everything read from an image tree: the sources, and what was skipped (as warnings)."""

    images: tuple[ImageSource, ...]
    warnings: tuple[Problem, ...] = ()
