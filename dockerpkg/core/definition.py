"""Definition digests: what determines an image, so a change without a new version shows.

An image's *own* definition covers its rendered Dockerfile (and build-stage Dockerfile), the
base images it names, and its build context after `.dockerignore` (file names and contents).
The metadata dockerpkg itself reads (changelog, control, the templates, which the rendered
Dockerfiles stand for) is left out: a new changelog entry is a new version, not a new
definition. Its *definition* adds the definitions of the tree images it depends on, so it
changes whenever anything it is built from changes: it is the *identity* of a build (as
docker-library's build ids are), computed in one pass over the tree in build order, each
parent's once. An image in the daemon or in the staging repository is reused only when its
identity label records the tree's.

`.dockerignore` follows the rules of docker-py, which makes the build context dockerpkg sends:
`#` comments, `!` exceptions (the last matching line wins), `*` and `?` within one path
segment, `**` across segments, `[...]` classes, and a pattern matching a folder matches
everything in it. Like docker-py, a backslash is an ordinary character.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping

import attrs

from dockerpkg.core.bases import unpin_dockerfile
from dockerpkg.core.plan import PlannedImage
from dockerpkg.core.tree import Image, Tree

# The image label recording what an image was built from (its own definition): `apply` sets
# it, `plan` reads it back from the registry to find images whose definition changed without a
# new version. One label only: the classic engine commits each label as a step of its own.
DEFINITION_LABEL = "org.dockerpkg.definition"

# The image label recording the build's identity (its definition: own and parents', see
# `definitions`): a staged or local image is reused only when it records the tree's.
IDENTITY_LABEL = "org.dockerpkg.identity"

METADATA = frozenset({"changelog", "control", "Dockerfile.template", "Dockerfile.build.template"})
_VERSION = "dockerpkg-definition-1"


@attrs.frozen
class Pattern:
    regex: re.Pattern[str]
    exception: bool
    depth: int  # path segments in the pattern


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression, as docker-py reads it."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1 if i < n and pattern[i] in "!^" else i)
            if end < 0:
                out.append(re.escape(char))
                continue
            body = pattern[i:end]
            i = end + 1
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def parse_dockerignore(text: str) -> tuple[Pattern, ...]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        line = line[1:].strip() if exception else line
        cleaned = posixpath.normpath(line).lstrip("/")
        if not cleaned or cleaned == ".":
            continue
        patterns.append(
            Pattern(re.compile(_translate(cleaned), re.DOTALL), exception, cleaned.count("/") + 1)
        )
    return tuple(patterns)


def ignored(path: str, patterns: Iterable[Pattern]) -> bool:
    """Whether Docker leaves PATH (relative, "/"-separated) out of the build context."""
    parts = path.split("/")
    result = False
    for pattern in patterns:
        matched = pattern.regex.fullmatch(path) is not None
        if not matched and len(parts) > 1 and pattern.depth <= len(parts) - 1:
            matched = pattern.regex.fullmatch("/".join(parts[: pattern.depth])) is not None
        if matched:
            result = not pattern.exception
    return result


def context_files(
    hashes: Iterable[tuple[str, str]], dockerignore: str | None
) -> list[tuple[str, str]]:
    """The (path, sha256) of the files a build sends, minus dockerpkg's own metadata."""
    patterns = parse_dockerignore(dockerignore or "")
    return sorted(
        (path, digest)
        for path, digest in hashes
        if path not in METADATA and not ignored(path, patterns)
    )


def own_definition(image: Image) -> str | None:
    """The digest of the image's own inputs; None when its Dockerfile was not rendered."""
    if image.dockerfile is None:
        return None
    source = image.spec.source
    return definition_of(
        (image.dockerfile, image.build_dockerfile),
        image.bases,
        source.hashes,
        dict(source.files).get(".dockerignore"),
    )


def definition_of(
    dockerfiles: tuple[str, str | None],
    bases: Iterable[str],
    hashes: Iterable[tuple[str, str]],
    dockerignore: str | None,
) -> str:
    """The own definition of an image from its parts: the rendered Dockerfile and build
    Dockerfile, its base images, and the (path, sha256) of the files of its folder."""
    dockerfile, build = dockerfiles
    digest = hashlib.sha256(f"{_VERSION}\0".encode())
    digest.update(f"dockerfile\0{dockerfile}\0".encode())
    digest.update(f"build\0{build or ''}\0".encode())
    for base in sorted(bases):
        digest.update(f"base\0{base}\0".encode())
    for path, content in context_files(hashes, dockerignore):
        digest.update(f"file\0{path}\0{content}\0".encode())
    return "sha256:" + digest.hexdigest()


def sent_definition(
    image: PlannedImage, hashes: Iterable[tuple[str, str]], dockerignore: str | None
) -> str:
    """The own definition of what a build of the planned IMAGE sends: the plan's Dockerfiles
    (as rendered, before pin_bases held their FROM lines) with HASHES, the (path, sha256) of
    the files of the context as copied for the daemon, and its DOCKERIGNORE text."""
    build = image.build_dockerfile
    return definition_of(
        (
            unpin_dockerfile(image.dockerfile or "", image.pins),
            None if build is None else unpin_dockerfile(build, image.pins),
        ),
        image.bases,
        hashes,
        dockerignore,
    )


@attrs.frozen
class Definitions:
    own: Mapping[str, str | None]
    full: Mapping[str, str | None]  # the identity of each image's build


def definitions(tree: Tree) -> Definitions:
    """Own and full definitions (identities) of every image (None where something was not
    rendered): one pass in build order, each parent's full definition computed once."""
    own: dict[str, str | None] = {}
    full: dict[str, str | None] = {}
    for name in tree.order:
        image = tree.images[name]
        own[name] = own_definition(image)
        parents = [(p, full.get(p)) for p in sorted(image.parents)]
        if own[name] is None or any(d is None for _, d in parents):
            full[name] = None
            continue
        digest = hashlib.sha256(f"{own[name]}\0".encode())
        for parent, definition in parents:
            digest.update(f"parent\0{parent}\0{definition}\0".encode())
        full[name] = "sha256:" + digest.hexdigest()
    return Definitions(own, full)
