"""One request to one registry, authenticated as it asks and retried as the policy says; the
names the distribution spec allows; and the manifest reads every question starts from.

`RegistrySession` is what the client's questions (`client`), its pipelined checks
(`pipelined`) and its writes (`writes`) share: the registry's name and host, the wording of
its failures, the transport and the authenticator.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import requests

from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry.auth import (
    Authenticator,
    Scheme,
    insufficient_scope,
    parse_challenge,
)
from dockerpkg.effects.registry.errors import RegistryFailure, Wording
from dockerpkg.effects.registry.gate import RegistryGates
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
ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_HUB_NAMES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB_API_HOST})

# Names as the distribution spec defines them; checked so that a name cannot alter the URL.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class RegistrySession:
    """Authenticated requests to one registry (``host[:port]``; ``None`` or ``""``: Docker
    Hub); safe to share between threads."""

    def __init__(
        self,
        registry: str | None,
        credentials: Credentials | None,
        *,
        ca_bundle: str | None,
        workers: int,
        retry: RetryPolicy,
        env: Mapping[str, str],
        interrupter: Interrupter | None,
        gates: RegistryGates,
    ) -> None:
        self.is_hub = not registry or registry in _HUB_NAMES
        self.host = DOCKER_HUB_API_HOST if self.is_hub else str(registry)
        self.name = "Docker Hub" if self.is_hub else str(registry)
        self.credentials = credentials
        self.words = Wording(self.name, credentials)
        self.retry = retry
        self.gates = gates
        self.transport = Transport(
            self.words, self.retry, ca_bundle, workers, env, interrupter=interrupter, gates=gates
        )
        self.auth = Authenticator(self.host, credentials, self.transport, self.words)

    def manifest(self, repository: str, tag: str) -> tuple[Any, bytes] | None:
        """``repository:tag``'s manifest (TAG may be a digest), parsed, and its bytes; None
        when not published. A manifest read once in the run (by tag or by digest) is not
        asked for again by digest: the run's cache has it (reads by tag always ask: tags
        move)."""
        check_names(repository, tag, digest=True)
        repo = self.api_repository(repository)
        cache = self.gates.manifests
        if _DIGEST.fullmatch(tag) and (kept := cache.get(self.host, repo, tag)) is not None:
            return _parsed(kept[0])
        what = f"{repository}:{tag}"
        manifest = self.call("GET", repo, f"/v2/{repo}/manifests/{tag}", {"Accept": ACCEPT}, what)
        if manifest.status_code == 404 or insufficient_scope(manifest):
            return None
        if manifest.status_code != 200:
            raise self.words.unexpected(manifest, f"GET manifest of {repository}:{tag}")
        self.keep_manifest(repo, manifest)
        return _parsed(manifest.content)

    def keep_manifest(self, repo: str, answer: requests.Response) -> None:
        """Keep a manifest read from API repository REPO for the rest of the run, under the
        digest of its bytes (which is what names a manifest)."""
        content = answer.content
        media_type = answer.headers.get("Content-Type", "")
        self.gates.manifests.put(self.host, repo, content_digest(content), content, media_type)

    def head_manifest(
        self, repository: str, tag: str, *, tried: int = 0
    ) -> requests.Response | None:
        """The answer to a HEAD of ``repository:tag``'s manifest; None when not published.
        TRIED: tries of it made already (in a pipelined batch)."""
        check_names(repository, tag, digest=True)
        repo = self.api_repository(repository)
        what = f"{repository}:{tag}"
        path = f"/v2/{repo}/manifests/{tag}"
        response = self.call("HEAD", repo, path, {"Accept": ACCEPT}, what, tried=tried)
        if response.status_code == 200:
            return response
        if response.status_code == 404 or insufficient_scope(response):
            return None
        raise self.words.unexpected(response, what)

    def call(
        self,
        method: str,
        repository: str,
        path: str,
        headers: Mapping[str, str],
        what: str,
        *,
        body: bytes | None = None,
        push: bool = False,
        tried: int = 0,
    ) -> requests.Response:
        """Send a request for ``repository`` (WHAT it asks about, for messages), authenticating
        as the registry asks and retrying as the policy says.

        Returns any response but 401/403, which become RegistryError. A 401 is answered once
        with fresh authentication (a Bearer token may have expired, or the registry may demand
        authentication only for some repositories); a second refusal is final. TRIED: tries
        of the request made already elsewhere (a pipelined batch's), counted with these.
        """
        base_url = self.auth.ensure_ready()
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        url = base_url + path
        authorization = self.auth.authorization(scope, fresh=False)
        response = self.transport.send(
            method, url, headers, authorization, what, body=body, tried=tried
        )
        if response.status_code == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge.scheme is Scheme.NONE:
                raise self.words.error(
                    RegistryFailure.AUTHENTICATION,
                    f"authentication required by registry {self.name} for {repository}, "
                    "but it sent no usable WWW-Authenticate challenge",
                )
            already_basic = self.auth.scheme is Scheme.BASIC
            self.auth.learn(challenge)
            if challenge.scheme is Scheme.BASIC and (already_basic or self.credentials is None):
                # We already sent the Basic credentials, or have none to send.
                raise self.words.refused(f"repository {repository}", response.status_code)
            retry_scope = challenge.scope or scope
            authorization = self.auth.authorization(retry_scope, fresh=True, also_for=scope)
            response = self.transport.send(method, url, headers, authorization, what, body=body)
        if response.status_code == 401 and insufficient_scope(response):
            # The token server accepted us but granted nothing on this repository: Docker Hub
            # answers so for a repository that does not exist yet. Callers decide.
            return response
        if response.status_code in (401, 403):
            raise self.words.refused(f"repository {repository}", response.status_code)
        return response

    def api_repository(self, repository: str) -> str:
        """Docker Hub keeps official images under ``library/``, which users leave out."""
        if self.is_hub and "/" not in repository:
            return f"library/{repository}"
        return repository


def _parsed(content: bytes) -> tuple[Any, bytes]:
    """A manifest's bytes, parsed (None when they are no JSON), and the bytes."""
    try:
        return json.loads(content), content
    except ValueError:
        return None, content


def content_digest(content: bytes) -> str:
    """A manifest's digest: by definition, that of its bytes."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def check_names(repository: str, tag: str | None, *, digest: bool = False) -> None:
    """REPOSITORY and TAG as the spec allows them (with DIGEST, TAG may be a digest)."""
    if not _REPOSITORY.fullmatch(repository):
        msg = f"not a valid repository name: {repository!r}"
        raise ValueError(msg)
    if digest and tag is not None and _DIGEST.fullmatch(tag):
        return
    if tag is not None and not _TAG.fullmatch(tag):
        msg = f"not a valid tag: {tag!r}"
        raise ValueError(msg)
