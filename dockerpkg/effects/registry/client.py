"""Ask a Docker registry (HTTP API v2) which ``repository:tag`` pairs are published.

One client talks to one registry over one ``requests`` session whose connections are kept alive
and shared by worker threads. The first request learns, once, the scheme (HTTPS, or plain HTTP
for a loopback registry that speaks nothing else) and how the registry wants to be
authenticated; after that every check is a single ``HEAD``, except that a Bearer registry needs
one token per repository (fetched in batches by ``published_many``). ``published_many`` sends
its checks in pipelined batches (``effects/pipeline.py``) on connections of its own, and asks
anything but a plain 200 or 404 again through the session.

Failures are never answered with "not published": a registry that cannot be reached, whose TLS
cannot be verified, or that refuses us raises RegistryError, worded for the user and free of
secrets. Questions are idempotent (GET, HEAD), and so are the writes (PUT and DELETE of
manifests, blob uploads and mounts, which at worst leave an unused upload behind), so
connection failures, timeouts and answers 500/502/503/504 are tried again as a RetryPolicy
says, with growing pauses, before that error.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import requests

from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.pipeline import Answer, Endpoint, Head, PipelinedConnection
from dockerpkg.effects.registry.auth import (
    Authenticator,
    Scheme,
    insufficient_scope,
    parse_challenge,
)
from dockerpkg.effects.registry.errors import (
    RegistryCancelledError,
    RegistryError,
    RegistryFailure,
    Wording,
)
from dockerpkg.effects.registry.transport import Interrupter, RetryPolicy, Transport

#: Where Docker Hub's registry API lives; ``docker.io`` itself only redirects to the website.
DOCKER_HUB_API_HOST = "registry-1.docker.io"

#: Every manifest type an image we build or pull can be stored as. Without an ``Accept``
#: listing them, registries answer for (or convert to) the old schema 1, or say 404.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB_API_HOST})

# Names as the distribution spec defines them; checked so that a name cannot alter the URL.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# Checks written at once on one connection by published_many: a round trip for many, a share
# for every worker when the checks are few, and few enough that the batch's requests (with
# tokens, about 1 KiB each) and answers fit the socket buffers: the server never waits for
# us to read while we still write.
_BATCH = 32


class RegistryClient:
    """Answers questions about one registry; safe to share between threads.

    ``registry`` is ``host[:port]``; ``None`` or ``""`` means Docker Hub. ``ca_bundle`` is a
    PEM file of CAs to trust instead of the system ones. ``workers`` bounds both the threads of
    ``published_many`` and the connections kept open to the registry. ``retry`` bounds the
    time spent on a registry that refuses, fails or hangs.
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
    ) -> None:
        if workers < 1:
            msg = f"workers must be at least 1, not {workers}"
            raise ValueError(msg)
        if registry and ("/" in registry or not registry.strip()):
            msg = f"registry must be host[:port], not {registry!r}"
            raise ValueError(msg)
        self._is_hub = not registry or registry in _HUB_NAMES
        self._host = DOCKER_HUB_API_HOST if self._is_hub else str(registry)
        self.name = "Docker Hub" if self._is_hub else str(registry)
        self._credentials = credentials
        self._words = Wording(self.name, credentials)
        self._retry = retry or RetryPolicy()
        self._transport = Transport(
            self._words, self._retry, ca_bundle, workers, env or {}, interrupter=interrupter
        )
        self._auth = Authenticator(self._host, credentials, self._transport, self._words)
        # published_many's fast path: one pipelined connection per worker thread.
        self._local = threading.local()
        self._quick_connections: list[PipelinedConnection] = []
        self._lock = threading.Lock()  # guards _quick_connections
        self._workers = workers

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
        self._transport.close()
        with self._lock:
            for connection in self._quick_connections:
                connection.close()
            self._quick_connections.clear()

    def interrupt(self) -> None:
        """End every wait on the registry now (those of the clients sharing its Interrupter
        too): each raises RegistryCancelledError or a connection error."""
        self._transport.interrupter.interrupt()

    # --- questions -------------------------------------------------------------------------

    def published(self, repository: str, tag: str) -> bool:
        """Whether ``repository:tag`` has a manifest in the registry."""
        response = self._head_manifest(repository, tag)
        return response is not None

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of ``repository:tag``'s manifest, or None when it is not published."""
        response = self._head_manifest(repository, tag)
        if response is None:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        # The header is optional in the spec; the digest is by definition that of the bytes.
        repo = self._api_repository(repository)
        what = f"the manifest of {repository}:{tag}"
        body = self._call("GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what)
        if body.status_code != 200:
            raise self._words.unexpected(body, what)
        return _content_digest(body.content)

    def copy_tag(self, repository: str, source: str, target: str) -> str | None:
        """Point tag TARGET of REPOSITORY at SOURCE's manifest (SOURCE a tag or a digest), as
        it is (one GET, one PUT); returns the manifest's digest, or None when SOURCE is not
        published.

        What a second `docker push` of the same image would leave, without its check of
        every layer.
        """
        _check_names(repository, source, digest=True)
        _check_names(repository, target)
        repo = self._api_repository(repository)
        what = f"the manifest of {repository}:{source}"
        manifest = self._call(
            "GET", repo, f"/v2/{repo}/manifests/{source}", {"Accept": _ACCEPT}, what
        )
        if manifest.status_code == 404 or insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise self._words.unexpected(manifest, what)
        media_type = manifest.headers.get("Content-Type", "")
        body = manifest.content
        digest = _content_digest(body)
        put = self._call(
            "PUT",
            repo,
            f"/v2/{repo}/manifests/{target}",
            {"Content-Type": media_type},
            f"tagging {repository}:{source} as {target}",
            body=body,
            push=True,
        )
        if put.status_code not in (200, 201):
            raise self._words.unexpected(put, f"PUT manifest {repository}:{target}")
        return digest

    def promote(
        self, staging: str, repository: str, tag: str, digest: str | None = None
    ) -> str | None:
        """Put the manifest of ``staging:tag`` (with DIGEST, ``staging@DIGEST``: that
        manifest, whatever the tag holds now) under ``repository:tag``, its blobs mounted
        from STAGING (or copied, where the registry will not mount them); returns the
        manifest's digest, or None when STAGING does not have it."""
        _check_names(staging, tag)
        _check_names(repository, tag)
        found = self._manifest(staging, digest or tag)
        if found is None:
            return None
        manifest, body = found
        if digest is not None and _content_digest(body) != digest:
            raise self._words.error(
                RegistryFailure.BAD_RESPONSE,
                f"{staging}@{digest[:19]} came back as another manifest",
            )
        try:
            media_type = manifest["mediaType"]
            blobs = [manifest["config"]["digest"]] + [
                layer["digest"] for layer in manifest["layers"]
            ]
        except (KeyError, TypeError):
            raise self._words.error(
                RegistryFailure.BAD_RESPONSE, f"{staging}:{tag} is not a single image manifest"
            ) from None
        for blob in blobs:
            self._bring_blob(staging, repository, str(blob))
        repo = self._api_repository(repository)
        put = self._call(
            "PUT",
            repo,
            f"/v2/{repo}/manifests/{tag}",
            {"Content-Type": str(media_type)},
            f"putting the manifest of {repository}:{tag}",
            body=body,
            push=True,
        )
        if put.status_code not in (200, 201):
            raise self._words.unexpected(put, f"PUT manifest {repository}:{tag}")
        return _content_digest(body)

    def _bring_blob(self, source: str, repository: str, digest: str) -> None:
        """Make blob DIGEST of SOURCE part of REPOSITORY: there already, mounted, or copied."""
        repo, source_repo = self._api_repository(repository), self._api_repository(source)
        what = f"blob {digest[:19]} of {repository}"
        head = self._call("HEAD", repo, f"/v2/{repo}/blobs/{digest}", {}, what, push=True)
        if head.status_code == 200:
            return
        mount = self._call(
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
        upload = mount
        if mount.status_code != 202:
            # A token for one repository cannot mount from another (the registry asks for
            # both scopes at once): start a plain upload and send the bytes.
            upload = self._call(
                "POST",
                repo,
                f"/v2/{repo}/blobs/uploads/",
                {"Content-Length": "0"},
                f"uploading {what}",
                body=b"",
                push=True,
            )
            if upload.status_code != 202:
                raise self._words.unexpected(upload, f"uploading {what}")
        # The registry started an upload rather than mount (no right to read SOURCE with
        # this token, or no cross-repository mounts): send the blob's bytes.
        blob = self._call(
            "GET", source_repo, f"/v2/{source_repo}/blobs/{digest}", {}, f"blob {digest[:19]}"
        )
        if blob.status_code != 200:
            raise self._words.unexpected(blob, f"GET blob {digest[:19]} of {source}")
        location = urlsplit(urljoin(self._auth.ensure_ready() + "/", upload.headers["Location"]))
        target = location.path + "?" + (location.query + "&" if location.query else "")
        put = self._call(
            "PUT",
            repo,
            f"{target}digest={digest}",
            {"Content-Type": "application/octet-stream"},
            f"copying {what}",
            body=blob.content,
            push=True,
        )
        if put.status_code not in (201, 204):
            raise self._words.unexpected(put, f"copying {what}")

    def delete_manifest(self, repository: str, digest: str) -> str | None:
        """Delete the manifest DIGEST of REPOSITORY (every tag on it goes): None when done or
        gone already, else why the registry would not (deletion off, say)."""
        _check_names(repository, "latest")
        repo = self._api_repository(repository)
        what = f"the manifest {digest[:19]} of {repository}"
        try:
            response = self._call(
                "DELETE", repo, f"/v2/{repo}/manifests/{digest}", {}, f"deleting {what}", push=True
            )
        except RegistryError as exc:
            # Refused (a token without the delete right) or unreachable: the tags have moved
            # already, so this is a leftover to report, not a failure.
            return str(exc)
        if response.status_code in (200, 202, 404):
            return None
        return f"the registry answered {response.status_code} to deleting {what}"

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
        unique = list(dict.fromkeys(refs))
        for repository, tag in unique:
            _check_names(repository, tag)
        if not unique:
            return {}
        # Decide scheme and authentication here, once, rather than in every worker at once.
        self._auth.ensure_ready()
        workers = min(self._workers, len(unique))
        # Every worker gets a share when the refs are few; batches stay short when many.
        size = min(_BATCH, -(-len(unique) // workers))
        batches = [unique[start : start + size] for start in range(0, len(unique), size)]
        answers: dict[tuple[str, str], str | None] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry") as pool:
            self._auth.prefetch_tokens(
                pool, [f"repository:{self._api_repository(r)}:pull" for r, _ in unique]
            )
            futures = [pool.submit(self._quick_digests, cancel, batch) for batch in batches]
            try:
                for future in as_completed(futures):
                    answers.update(future.result())
            except BaseException as exc:
                if not isinstance(exc, Exception):  # a signal: end the waits in flight
                    self.interrupt()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return {ref: answers[ref] for ref in unique}

    def _quick_digests(
        self, cancel: threading.Event | None, batch: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        """``manifest_digest`` for BATCH, pipelined on a connection kept by this thread.

        Only the common answers (200 with a digest, 404) are taken from the pipeline; anything
        else (a token to renew, an error, a redirect, no answer at all) is asked again through
        ``manifest_digest``, which handles it fully.
        """
        if cancel is not None and cancel.is_set():
            raise RegistryCancelledError("cancelled")
        connection = self._thread_connection(self._auth.ensure_ready())
        quick: Sequence[Answer | None] = [None] * len(batch)
        if connection is not None:
            quick = connection.heads([self._quick_head(*ref) for ref in batch])
        answers: dict[tuple[str, str], str | None] = {}
        for ref, answer in zip(batch, quick, strict=True):
            if answer is not None and answer.status == 404:
                answers[ref] = None
                continue
            if answer is not None and answer.status == 200 and answer.digest:
                answers[ref] = answer.digest
                continue
            if cancel is not None and cancel.is_set():
                raise RegistryCancelledError("cancelled")
            answers[ref] = self.manifest_digest(*ref)
        return answers

    def _quick_head(self, repository: str, tag: str) -> Head:
        repo = self._api_repository(repository)
        headers = {"Accept": _ACCEPT}
        header = self._auth.authorization(f"repository:{repo}:pull", fresh=False).header
        if header is not None:
            headers["Authorization"] = header
        return Head(f"/v2/{repo}/manifests/{tag}", headers)

    def _thread_connection(self, base_url: str) -> PipelinedConnection | None:
        """This thread's connection, or None where a proxy is in the way (requests does it)."""
        connection: PipelinedConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._transport.proxies_for(base_url):
            return None
        url = urlsplit(base_url)
        context = None
        if url.scheme == "https":
            verify = self._transport.verify
            context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        endpoint = Endpoint(
            url.hostname or self._host,
            url.port or (443 if url.scheme == "https" else 80),
            context,
            self._retry.connect_timeout,
            self._retry.read_timeout,
        )
        connection = PipelinedConnection(endpoint, url.netloc, self._transport.interrupter.watch)
        self._local.connection = connection
        with self._lock:
            self._quick_connections.append(connection)
        return connection

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, sorted; empty when the repository does not exist."""
        _check_names(repository, None)
        repo = self._api_repository(repository)
        found: set[str] = set()
        path: str | None = f"/v2/{repo}/tags/list"
        what = f"the tags of {repository}"
        while path is not None:
            response = self._call("GET", repo, path, {"Accept": "application/json"}, what)
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
        found = self._manifest(repository, tag)
        if found is None:
            return None
        manifest, body = found
        config = manifest.get("config") if isinstance(manifest, dict) else None
        digest = config.get("digest") if isinstance(config, dict) else None
        return digest if isinstance(digest, str) else _content_digest(body)

    def image_labels(self, repository: str, tag: str) -> dict[str, str] | None:
        """The labels in ``repository:tag``'s image config (manifest, then config blob); None
        when it is not published or is a multi-platform index (no single config)."""
        found = self._manifest(repository, tag)
        if found is None:
            return None
        try:
            config_digest = found[0]["config"]["digest"]
        except (KeyError, TypeError):
            return None
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        blob = self._call("GET", repo, f"/v2/{repo}/blobs/{config_digest}", {}, what)
        if blob.status_code != 200:
            raise self._words.unexpected(blob, f"GET image config of {repository}:{tag}")
        try:
            labels = (blob.json().get("config") or {}).get("Labels") or {}
        except (ValueError, AttributeError):
            return None
        return {str(k): str(v) for k, v in labels.items()}

    def _manifest(self, repository: str, tag: str) -> tuple[Any, bytes] | None:
        """``repository:tag``'s manifest (TAG may be a digest), parsed, and its bytes; None
        when not published."""
        _check_names(repository, tag, digest=True)
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        manifest = self._call("GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what)
        if manifest.status_code == 404 or insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise self._words.unexpected(manifest, f"GET manifest of {repository}:{tag}")
        try:
            return manifest.json(), manifest.content
        except ValueError:
            return None, manifest.content

    # --- one request, authenticated --------------------------------------------------------

    def _head_manifest(self, repository: str, tag: str) -> requests.Response | None:
        _check_names(repository, tag, digest=True)
        repo = self._api_repository(repository)
        what = f"{repository}:{tag}"
        response = self._call(
            "HEAD", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": _ACCEPT}, what
        )
        if response.status_code == 200:
            return response
        if response.status_code == 404 or insufficient_scope(response):
            return None
        raise self._words.unexpected(response, what)

    def _call(
        self,
        method: str,
        repository: str,
        path: str,
        headers: Mapping[str, str],
        what: str,
        *,
        body: bytes | None = None,
        push: bool = False,
    ) -> requests.Response:
        """Send a request for ``repository`` (WHAT it asks about, for messages), authenticating
        as the registry asks and retrying as the policy says.

        Returns any response but 401/403, which become RegistryError. A 401 is answered once
        with fresh authentication (a Bearer token may have expired, or the registry may demand
        authentication only for some repositories); a second refusal is final.
        """
        base_url = self._auth.ensure_ready()
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        url = base_url + path
        authorization = self._auth.authorization(scope, fresh=False)
        response = self._transport.send(method, url, headers, authorization, what, body=body)
        if response.status_code == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge.scheme is Scheme.NONE:
                raise self._words.error(
                    RegistryFailure.AUTHENTICATION,
                    f"authentication required by registry {self.name} for {repository}, "
                    "but it sent no usable WWW-Authenticate challenge",
                )
            already_basic = self._auth.scheme is Scheme.BASIC
            self._auth.learn(challenge)
            if challenge.scheme is Scheme.BASIC and (already_basic or self._credentials is None):
                # We already sent the Basic credentials, or have none to send.
                raise self._words.refused(f"repository {repository}", response.status_code)
            retry_scope = challenge.scope or scope
            authorization = self._auth.authorization(retry_scope, fresh=True, also_for=scope)
            response = self._transport.send(method, url, headers, authorization, what, body=body)
        if response.status_code == 401 and insufficient_scope(response):
            # The token server accepted us but granted nothing on this repository: Docker Hub
            # answers so for a repository that does not exist yet. Callers decide.
            return response
        if response.status_code in (401, 403):
            raise self._words.refused(f"repository {repository}", response.status_code)
        return response

    # --- names and errors ------------------------------------------------------------------

    def _api_repository(self, repository: str) -> str:
        """Docker Hub keeps official images under ``library/``, which users leave out."""
        if self._is_hub and "/" not in repository:
            return f"library/{repository}"
        return repository

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


def _content_digest(content: bytes) -> str:
    """A manifest's digest: by definition, that of its bytes."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _check_names(repository: str, tag: str | None, *, digest: bool = False) -> None:
    """REPOSITORY and TAG as the spec allows them (with DIGEST, TAG may be a digest)."""
    if not _REPOSITORY.fullmatch(repository):
        msg = f"not a valid repository name: {repository!r}"
        raise ValueError(msg)
    if digest and tag is not None and _DIGEST.fullmatch(tag):
        return
    if tag is not None and not _TAG.fullmatch(tag):
        msg = f"not a valid tag: {tag!r}"
        raise ValueError(msg)


def _next_page(response: requests.Response) -> str | None:
    """The path of the next page of a paginated list (``Link: <..>; rel="next"``)."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    absolute = urljoin(response.url, url)
    parts = urlsplit(absolute)
    return parts.path + (f"?{parts.query}" if parts.query else "")
