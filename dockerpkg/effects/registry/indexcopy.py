"""The promotion of an image with platforms (`--publish all_or_nothing`): each platform's
manifest the run staged is copied into the image's repository by digest (its blobs mounted,
or copied where the registry will not mount them; no tag), then one image index listing
every platform is put under the version tag and `latest`. Until the index is put, nothing
under a tag of the repository moves. Idempotent, as every write of the registry."""

from __future__ import annotations

from collections.abc import Sequence

from dockerpkg.effects.registry.errors import RegistryFailure
from dockerpkg.effects.registry.session import RegistrySession, check_names, content_digest
from dockerpkg.effects.registry.writes import copy_image_manifest, put_index


def promote_index(
    session: RegistrySession,
    staging: str,
    repository: str,
    tags: Sequence[str],
    children: Sequence[tuple[str, str]],
) -> str:
    """Put an OCI image index listing CHILDREN (platform, manifest digest: one the
    REPOSITORY holds already, else one STAGING holds, copied first) under each of TAGS in
    order; the index's digest. A child neither holds is an error before any tag moves."""
    for tag in tags:
        check_names(repository, tag)
    for platform, digest in children:
        if session.head_manifest(repository, digest) is None:
            _copy_manifest(session, staging, repository, platform, digest)
    return put_index(session, repository, tags, children)


def _copy_manifest(
    session: RegistrySession, staging: str, repository: str, platform: str, digest: str
) -> None:
    """Copy STAGING's manifest DIGEST (PLATFORM's image) into REPOSITORY, by digest."""
    found = session.manifest(staging, digest)
    if found is None:
        raise session.words.error(
            RegistryFailure.UNEXPECTED_STATUS,
            f"cannot promote the {platform} image of {repository}: registry {session.name} "
            f"has no {staging}@{digest}",
        )
    if content_digest(found[1]) != digest:
        raise session.words.error(
            RegistryFailure.BAD_RESPONSE, f"{staging}@{digest[:19]} came back as another manifest"
        )
    copy_image_manifest(
        session,
        staging,
        repository,
        digest,
        found,
        shown=f"{staging}@{digest[:19]} ({platform})",
        doing=f"copying the {platform} image {staging}@{digest[:19]} into {repository}",
        put_what=f"PUT manifest {repository}@{digest[:19]}",
    )
