"""Ask a Docker registry (HTTP API v2) which ``repository:tag`` pairs are published, and
change its tags.

One client talks to one registry over one ``requests`` session whose connections are kept alive
and shared by worker threads. The first request learns, once, the scheme (HTTPS, or plain HTTP
for a loopback registry that speaks nothing else) and how the registry wants to be
authenticated; after that every check is a single ``HEAD``, except that a Bearer registry needs
one token per repository (fetched in batches by ``published_many``). ``published_many`` sends
its checks in pipelined batches (``registry/pipelined.py``) on connections of its own, and asks
anything but a plain 200 or 404 again through the session (``registry/session.py``). Writes
(tags copied, images promoted, manifests deleted, image indexes put) are
``registry/writes.py``'s.

Failures are never answered with "not published": a registry that cannot be reached, whose TLS
cannot be verified, or that refuses us raises RegistryError, worded for the user and free of
secrets. Questions are idempotent (GET, HEAD), and so are the writes (PUT and DELETE of
manifests, blob uploads and mounts, which at worst leave an unused upload behind), so
connection failures, timeouts and answers 500/502/503/504 are tried again as a RetryPolicy
says, with growing pauses, before that error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self
from urllib.parse import urljoin, urlsplit

import requests

from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import indexcopy, writes
from dockerpkg.effects.registry.errors import RegistryFailure
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.registry.pipelined import PipelinedChecks
from dockerpkg.effects.registry.session import (
    ACCEPT,
    DOCKER_HUB_API_HOST,
    MANIFEST_MEDIA_TYPES,
    RegistrySession,
    check_names,
    content_digest,
)
from dockerpkg.effects.registry.transport import Interrupter, RetryPolicy

__all__ = ["DOCKER_HUB_API_HOST", "MANIFEST_MEDIA_TYPES", "RegistryClient"]


class RegistryClient:
    """Answers questions about one registry, and changes its tags; safe to share between
    threads.

    ``registry`` is ``host[:port]``; ``None`` or ``""`` means Docker Hub. ``ca_bundle`` is a
    PEM file of CAs to trust instead of the system ones. ``workers`` bounds both the threads of
    ``published_many`` and the connections kept open to the registry. ``retry`` bounds the
    time spent on a registry that refuses, fails or hangs. ``gates`` are the run's, one per
    registry host (see registry/gate.py): every client of a run shares them.
    """

    def __init__(
        self,
        registry: str | None,
        credentials: Credentials | None = None,
        ca_bundle: str | None = None,
        workers: int = 8,
        retry: RetryPolicy | None = None,
        *,
        env: Mapping[str, str] | None = None,
        interrupter: Interrupter | None = None,
        gates: RegistryGates | None = None,
    ) -> None:
        if workers < 1:
            msg = f"workers must be at least 1, not {workers}"
            raise ValueError(msg)
        if registry and ("/" in registry or not registry.strip()):
            msg = f"registry must be host[:port], not {registry!r}"
            raise ValueError(msg)
        self._session = RegistrySession(
            registry,
            credentials,
            ca_bundle=ca_bundle,
            workers=workers,
            retry=retry or RetryPolicy(),
            env=env or {},
            interrupter=interrupter,
            gates=gates or RegistryGates(),
        )
        self.name = self._session.name
        self._words = self._session.words
        self._checks = PipelinedChecks(self._session, workers, self._digest_after)

    def __repr__(self) -> str:
        return f"RegistryClient({self.name!r}, user={self._words.username()!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._session.transport.close()
        self._checks.close()

    def interrupt(self) -> None:
        """End every wait on the registry now (those of the clients sharing its Interrupter
        too): each raises RegistryCancelledError or a connection error."""
        self._session.transport.interrupter.interrupt()

    # --- questions -------------------------------------------------------------------------

    def published(self, repository: str, tag: str) -> bool:
        """Whether ``repository:tag`` has a manifest in the registry."""
        response = self._session.head_manifest(repository, tag)
        return response is not None

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag``'s manifest, or None when it is not published."""
        return self._digest_after(repository, tag, 0)

    def _digest_after(self, repository: str, tag: str, tried: int) -> str | None:
        """`manifest_digest`, its HEAD tried TRIED times already (in a pipelined batch)."""
        response = self._session.head_manifest(repository, tag, tried=tried)
        if response is None:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        # The header is optional in the spec; the digest is by definition that of the bytes.
        repo = self._session.api_repository(repository)
        what = f"the manifest of {repository}:{tag}"
        body = self._session.call(
            "GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT}, what
        )
        if body.status_code != 200:
            raise self._words.unexpected(body, what)
        return content_digest(body.content)

    def published_many(
        self, refs: Iterable[tuple[str, str]], cancel: threading.Event | None = None
    ) -> dict[tuple[str, str], bool]:
        """``published`` for every ``(repository, tag)``, asked concurrently (see
        ``digests_many``)."""
        return {ref: digest is not None for ref, digest in self.digests_many(refs, cancel).items()}

    def digests_many(
        self, refs: Iterable[tuple[str, str]], cancel: threading.Event | None = None
    ) -> dict[tuple[str, str], str | None]:
        """``manifest_digest`` for every ``(repository, tag)``, asked concurrently.

        The answer has one entry per distinct ref, in the order given. If any check fails, the
        first failure is raised and the checks not yet started are cancelled; a set CANCEL
        does the same, raising RegistryCancelledError.
        """
        return self._checks.digests(refs, cancel)

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, sorted; empty when the repository does not exist."""
        check_names(repository, None)
        repo = self._session.api_repository(repository)
        found: set[str] = set()
        path: str | None = f"/v2/{repo}/tags/list"
        what = f"the tags of {repository}"
        while path is not None:
            response = self._session.call("GET", repo, path, {"Accept": "application/json"}, what)
            if response.status_code == 404:
                return []
            if response.status_code != 200:
                raise self._words.unexpected(response, what)
            found.update(self._tags_in(response, repository))
            path = _next_page(response)
        return sorted(found)

    def config_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag``'s image config (what the daemon calls the image
        ID); None when it is not published. A multi-platform index has none of its own: its
        manifest's digest is given instead, which no image ID equals."""
        found = self._session.manifest(repository, tag)
        if found is None:
            return None
        manifest, body = found
        config = manifest.get("config") if isinstance(manifest, dict) else None
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else content_digest(body)

    def image_labels(self, repository: str, tag: str) -> dict[str, str] | None:
        """The labels in ``repository:tag``'s image config (manifest, then config blob); None
        when it is not published or is a multi-platform index (no single config)."""
        found = self._session.manifest(repository, tag)
        if found is None:
            return None
        try:
            config_digest = found[0]["config"]["digest"]
        except (KeyError, TypeError):
            return None
        repo = self._session.api_repository(repository)
        what = f"{repository}:{tag}"
        blob = self._session.call("GET", repo, f"/v2/{repo}/blobs/{config_digest}", {}, what)
        if blob.status_code != 200:
            raise self._words.unexpected(blob, f"GET image config of {repository}:{tag}")
        try:
            labels = (blob.json().get("config") or {}).get("Labels") or {}
        except (ValueError, AttributeError):
            return None
        return {str(k): str(v) for k, v in labels.items()}

    # --- writes ----------------------------------------------------------------------------

    def copy_tag(self, repository: str, source: str, target: str) -> str | None:
        """Point tag TARGET of REPOSITORY at SOURCE's manifest (SOURCE a tag or a digest), as
        it is (one GET, one PUT); returns the manifest's digest, or None when SOURCE is not
        published.

        What a second `docker push` of the same image would leave, without its check of
        every layer.
        """
        return writes.copy_tag(self._session, repository, source, target)

    def promote(
        self, staging: str, repository: str, tag: str, digest: str | None = None
    ) -> str | None:
        """Put the manifest of ``staging:tag`` (with DIGEST, ``staging@DIGEST``: that
        manifest, whatever the tag holds now) under ``repository:tag``, its blobs mounted
        from STAGING (or copied, where the registry will not mount them); returns the
        manifest's digest, or None when STAGING does not have it."""
        return writes.promote(self._session, staging, repository, tag, digest)

    def delete_manifest(self, repository: str, digest: str) -> str | None:
        """Delete the manifest DIGEST of REPOSITORY (every tag on it goes): None when done or
        gone already, else why the registry would not (deletion off, say)."""
        return writes.delete_manifest(self._session, repository, digest)

    def put_index(
        self, repository: str, tags: Sequence[str], children: Sequence[tuple[str, str]]
    ) -> str:
        """Put one OCI image index listing CHILDREN (platform, and a tag or a digest of
        REPOSITORY: one platform's image each) under each of TAGS in order; its digest. A
        child the registry does not hold is an error before anything is written."""
        return writes.put_index(self._session, repository, tags, children)

    def promote_index(
        self,
        staging: str,
        repository: str,
        tags: Sequence[str],
        children: Sequence[tuple[str, str]],
    ) -> str:
        """Put one OCI image index listing CHILDREN (platform, manifest digest: in
        REPOSITORY already, else copied there from STAGING by digest) under each of TAGS in
        order; its digest. A child neither holds is an error before any tag moves."""
        return indexcopy.promote_index(self._session, staging, repository, tags, children)

    def _tags_in(self, response: requests.Response, repository: str) -> list[str]:
        try:
            tags = response.json().get("tags") or []
        except (ValueError, AttributeError):
            tags = None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise self._words.error(
                RegistryFailure.BAD_RESPONSE,
                f"registry {self.name} sent an unreadable tag list for {repository}",
            )
        return tags


def _next_page(response: requests.Response) -> str | None:
    """The path of the next page of a paginated list (``Link: <..>; rel="next"``)."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    absolute = urljoin(response.url, url)
    parts = urlsplit(absolute)
    return parts.path + (f"?{parts.query}" if parts.query else "")
