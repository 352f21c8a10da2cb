"""What changes a registry: a tag copied onto a manifest, an image promoted from its staging
repository (its blobs mounted, or copied where the registry will not mount them), a
manifest deleted, an image index put together from one image per platform. Each write is
idempotent: at worst it leaves an unused upload behind."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from dockerpkg.core.platforms import Platform
from dockerpkg.effects.registry.auth import insufficient_scope
from dockerpkg.effects.registry.errors import RegistryError, RegistryFailure
from dockerpkg.effects.registry.session import (
    ACCEPT,
    RegistrySession,
    check_names,
    content_digest,
)


def copy_tag(session: RegistrySession, repository: str, source: str, target: str) -> str | None:
    """Point tag TARGET of REPOSITORY at SOURCE's manifest (SOURCE a tag or a digest), as it
    is (one GET, one PUT); returns the manifest's digest, or None when SOURCE is not
    published."""
    check_names(repository, source, digest=True)
    check_names(repository, target)
    repo = session.api_repository(repository)
    kept = session.gates.manifests.get(session.host, repo, source)  # a digest read this run
    if kept is not None:
        body, media_type = kept
    else:
        what = f"the manifest of {repository}:{source}"
        manifest = session.call(
            "GET", repo, f"/v2/{repo}/manifests/{source}", {"Accept": ACCEPT}, what
        )
        if manifest.status_code == 404 or insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise session.words.unexpected(manifest, what)
        session.keep_manifest(repo, manifest)
        media_type = manifest.headers.get("Content-Type", "")
        body = manifest.content
    digest = content_digest(body)
    put_manifest(
        session,
        repository,
        target,
        media_type=media_type,
        body=body,
        doing=f"tagging {repository}:{source} as {target}",
        put_what=f"PUT manifest {repository}:{target}",
    )
    return digest


def promote(
    session: RegistrySession, staging: str, repository: str, tag: str, digest: str | None
) -> str | None:
    """Put the manifest of ``staging:tag`` (with DIGEST, ``staging@DIGEST``) under
    ``repository:tag``, its blobs brought from STAGING; returns the manifest's digest, or
    None when STAGING does not have it."""
    check_names(staging, tag)
    check_names(repository, tag)
    found = session.manifest(staging, digest or tag)
    if found is None:
        return None
    manifest, body = found
    if digest is not None and content_digest(body) != digest:
        raise session.words.error(
            RegistryFailure.BAD_RESPONSE,
            f"{staging}@{digest[:19]} came back as another manifest",
        )
    copy_image_manifest(
        session,
        staging,
        repository,
        tag,
        (manifest, body),
        shown=f"{staging}:{tag}",
        doing=f"putting the manifest of {repository}:{tag}",
        put_what=f"PUT manifest {repository}:{tag}",
    )
    return content_digest(body)


def copy_image_manifest(
    session: RegistrySession,
    staging: str,
    repository: str,
    reference: str,
    found: tuple[Mapping[str, Any], bytes],
    *,
    shown: str,
    doing: str,
    put_what: str,
) -> None:
    """Put FOUND (a single image manifest of STAGING, parsed and as read; SHOWN in errors)
    under REFERENCE (a tag or its digest) of REPOSITORY, its blobs brought from STAGING
    first; DOING and PUT_WHAT describe the PUT."""
    manifest, body = found
    try:
        media_type = str(manifest["mediaType"])
        blobs = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    except (KeyError, TypeError):
        raise session.words.error(
            RegistryFailure.BAD_RESPONSE, f"{shown} is not a single image manifest"
        ) from None
    for blob in blobs:
        bring_blob(session, staging, repository, str(blob))
    put_manifest(
        session,
        repository,
        reference,
        media_type=media_type,
        body=body,
        doing=doing,
        put_what=put_what,
    )


def put_manifest(
    session: RegistrySession,
    repository: str,
    reference: str,
    *,
    media_type: str,
    body: bytes,
    doing: str,
    put_what: str,
) -> None:
    """PUT BODY (of MEDIA_TYPE) under REFERENCE of REPOSITORY; any status but 200 or 201 is
    an error described by PUT_WHAT (DOING describes the call)."""
    repo = session.api_repository(repository)
    put = session.call(
        "PUT",
        repo,
        f"/v2/{repo}/manifests/{reference}",
        {"Content-Type": media_type},
        doing,
        body=body,
        push=True,
    )
    if put.status_code not in (200, 201):
        raise session.words.unexpected(put, put_what)


def bring_blob(session: RegistrySession, source: str, repository: str, digest: str) -> None:
    """Make blob DIGEST of SOURCE part of REPOSITORY: there already, mounted, or copied."""
    repo, source_repo = session.api_repository(repository), session.api_repository(source)
    what = f"blob {digest[:19]} of {repository}"
    if _has_blob(session, repo, digest, what):
        return
    mount = session.call(
        "POST",
        repo,
        f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source_repo}",
        {"Content-Length": "0"},
        f"mounting {what}",
        body=b"",
        push=True,
    )
    if mount.status_code == 201:
        return
    # A token for one repository cannot mount from another (the registry asks for both
    # scopes at once): start a plain upload and send the bytes.
    upload = mount if mount.status_code == 202 else _start_upload(session, repo, what)
    # The registry started an upload rather than mount (no right to read SOURCE with
    # this token, or no cross-repository mounts): send the blob's bytes.
    blob = session.call(
        "GET", source_repo, f"/v2/{source_repo}/blobs/{digest}", {}, f"blob {digest[:19]}"
    )
    if blob.status_code != 200:
        raise session.words.unexpected(blob, f"GET blob {digest[:19]} of {source}")
    try:
        put: requests.Response | None = _send_blob(
            session, repo, upload, digest, content=blob.content, what=what
        )
    except RegistryError as exc:
        if exc.failure is RegistryFailure.RATE_LIMITED:
            raise
        put = None
    if put is not None and put.status_code in (201, 204):
        return
    # A PUT asked again after its answer was lost (a reset connection) finds its upload
    # used up (404 BLOB_UPLOAD_UNKNOWN) when the first try did commit the blob: look for
    # it, and only if it is not there, upload it once more from the start.
    if _has_blob(session, repo, digest, what):
        return
    upload = _start_upload(session, repo, what)
    put = _send_blob(session, repo, upload, digest, content=blob.content, what=what)
    if put.status_code not in (201, 204):
        raise session.words.unexpected(put, f"copying {what}")


def _has_blob(session: RegistrySession, repo: str, digest: str, what: str) -> bool:
    """Whether API repository REPO holds blob DIGEST (WHAT, for messages)."""
    head = session.call("HEAD", repo, f"/v2/{repo}/blobs/{digest}", {}, what, push=True)
    return head.status_code == 200


def _start_upload(session: RegistrySession, repo: str, what: str) -> requests.Response:
    """A new upload to API repository REPO (WHAT, for messages): the registry's answer."""
    upload = session.call(
        "POST",
        repo,
        f"/v2/{repo}/blobs/uploads/",
        {"Content-Length": "0"},
        f"uploading {what}",
        body=b"",
        push=True,
    )
    if upload.status_code != 202:
        raise session.words.unexpected(upload, f"uploading {what}")
    return upload


def _send_blob(
    session: RegistrySession,
    repo: str,
    upload: requests.Response,
    digest: str,
    *,
    content: bytes,
    what: str,
) -> requests.Response:
    """PUT CONTENT (blob DIGEST; WHAT, for messages) to the upload the registry's answer
    UPLOAD started."""
    location = urlsplit(urljoin(session.auth.ensure_ready() + "/", upload.headers["Location"]))
    target = location.path + "?" + (location.query + "&" if location.query else "")
    return session.call(
        "PUT",
        repo,
        f"{target}digest={digest}",
        {"Content-Type": "application/octet-stream"},
        f"copying {what}",
        body=content,
        push=True,
    )


def delete_manifest(session: RegistrySession, repository: str, digest: str) -> str | None:
    """Delete the manifest DIGEST of REPOSITORY (every tag on it goes): None when done or
    gone already, else why the registry would not (deletion off, say)."""
    check_names(repository, "latest")
    repo = session.api_repository(repository)
    what = f"the manifest {digest[:19]} of {repository}"
    try:
        response = session.call(
            "DELETE", repo, f"/v2/{repo}/manifests/{digest}", {}, f"deleting {what}", push=True
        )
    except RegistryError as exc:
        # Refused (a token without the delete right) or unreachable: the tags have moved
        # already, so this is a leftover to report, not a failure.
        return str(exc)
    session.gates.manifests.drop(session.host, repo, digest)
    if response.status_code in (200, 202, 404):
        return None
    return f"the registry answered {response.status_code} to deleting {what}"


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What an index may list: one platform's image manifest, never another index.
_SINGLE_MANIFESTS = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


def put_index(
    session: RegistrySession,
    repository: str,
    tags: Sequence[str],
    children: Sequence[tuple[str, str]],
) -> str:
    """Put one OCI image index listing CHILDREN (platform, and a tag or a digest of
    REPOSITORY, each one platform's image manifest) under each of TAGS, in order; returns
    the index's digest. A child the registry does not hold, or that is not one image's
    manifest, is an error before anything is written."""
    for tag in tags:
        check_names(repository, tag)
    listed = [_child(session, repository, platform, ref) for platform, ref in children]
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed},
        separators=(",", ":"),
    ).encode()
    for tag in tags:
        put_manifest(
            session,
            repository,
            tag,
            media_type=OCI_INDEX,
            body=body,
            doing=f"putting the image index of {repository}:{tag}",
            put_what=f"PUT image index {repository}:{tag}",
        )
    return content_digest(body)


def _child(session: RegistrySession, repository: str, platform: str, ref: str) -> dict[str, object]:
    """The index's entry for PLATFORM's image REF (a tag or digest of REPOSITORY)."""
    check_names(repository, ref, digest=True)
    repo = session.api_repository(repository)
    shown = f"{repository}@{ref}" if ref.startswith("sha256:") else f"{repository}:{ref}"
    what = f"the {platform} image {shown}"
    response = session.call("GET", repo, f"/v2/{repo}/manifests/{ref}", {"Accept": ACCEPT}, what)
    if response.status_code == 404 or insufficient_scope(response):
        raise session.words.error(
            RegistryFailure.UNEXPECTED_STATUS,
            f"cannot put the image index of {repository}: registry {session.name} has no "
            f"{shown} for {platform}",
        )
    if response.status_code != 200:
        raise session.words.unexpected(response, what)
    media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
    if media_type not in _SINGLE_MANIFESTS:
        raise session.words.error(
            RegistryFailure.BAD_RESPONSE,
            f"cannot put the image index of {repository}: {shown} ({platform}) is "
            f"{media_type or 'of no media type'}, not one platform's image manifest",
        )
    body = response.content
    digest = content_digest(body)
    if ref.startswith("sha256:") and digest != ref:
        raise session.words.error(
            RegistryFailure.BAD_RESPONSE, f"{shown} came back as another manifest"
        )
    parsed = Platform.parse(platform)
    described: dict[str, str] = {"architecture": parsed.architecture, "os": parsed.os}
    if parsed.variant:
        described["variant"] = parsed.variant
    return {"mediaType": media_type, "digest": digest, "size": len(body), "platform": described}
