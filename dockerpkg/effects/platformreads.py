"""Ask registries which platforms a published image holds, for a tree with platforms: the
manifest under each version tag (an index lists its children's platforms; a single image's
config blob says its own), the same for the base images, and the labels each platform's
image records. core/observing.py decides what to ask and what the answers mean; nothing
here is asked for a tree without platforms.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from dockerpkg.core.bases import BaseRef
from dockerpkg.core.config import Config
from dockerpkg.core.observing import (
    BaseQuestions,
    PlatformAnswers,
    manifest_platforms,
    platform_label_reads,
)
from dockerpkg.core.registryrefs import Ref
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import Interrupter, RegistryError, RegistryFailure
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.registry.session import RegistrySession, content_digest
from dockerpkg.effects.registry.transport import RetryPolicy

T = TypeVar("T")
# What one manifest or image config read may weigh: the size registries accept for a
# manifest (distribution's default limit); larger is no image a build tool made.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
K = TypeVar("K", bound=Hashable)


class PlatformReader:
    """Reads platforms and labels for one observation, over one session per registry and a
    bounded pool of threads shared by all of them."""

    def __init__(
        self,
        config: Config,
        credentials: Credentials | None,
        env: Mapping[str, str],
        interrupter: Interrupter,
        gates: RegistryGates | None = None,
    ) -> None:
        self._config = config
        self._gates = gates or RegistryGates(config.registries)
        self._credentials = credentials
        self._env = dict(env)
        self._interrupter = interrupter

    def _session(self, host: str | None, credentials: Credentials | None) -> RegistrySession:
        return RegistrySession(
            host,
            credentials,
            ca_bundle=self._config.ca_bundle,
            workers=max(1, self._config.scan_workers),
            retry=RetryPolicy(),
            env=self._env,
            interrupter=self._interrupter,
            gates=self._gates,
        )

    def read(
        self,
        versions: Mapping[Ref, tuple[str, ...]],
        bases: Sequence[BaseQuestions],
        *,
        labels: bool,
        cancel: threading.Event | None = None,
    ) -> PlatformAnswers:
        """The platforms of VERSIONS (in the config's registry; its errors are raised) and of
        BASES (a registry that fails leaves its bases out, its error kept), and with LABELS
        the labels of the image of each platform a version is built for (VERSIONS' values)."""
        if not versions and not bases:
            return PlatformAnswers()
        own = self._session(self._config.registry or None, self._credentials)
        sessions = [own]
        workers = max(1, self._config.scan_workers)
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="platforms") as pool:
                found = _each(pool, tuple(versions), partial(_platforms_of, own), cancel)
                listed = {ref: value for ref, value in found.items() if value is not None}
                base_found, failures = self._bases(pool, bases, sessions, cancel)
                read = platform_label_reads(listed, versions) if labels else ()
                recorded = _each(pool, read, partial(_labels_of, own), cancel)
        finally:
            for session in sessions:
                session.transport.close()
        return PlatformAnswers(
            listed,
            base_found,
            {ref: value for ref, value in recorded.items() if value is not None},
            failures,
        )

    def _bases(
        self,
        pool: ThreadPoolExecutor,
        groups: Sequence[BaseQuestions],
        sessions: list[RegistrySession],
        cancel: threading.Event | None,
    ) -> tuple[dict[str, Mapping[str, str]], tuple[str, ...]]:
        found: dict[str, Mapping[str, str]] = {}
        failures = []
        for group in groups:
            session = self._session(group.host, self._credentials if group.own else None)
            sessions.append(session)
            try:
                answers = _each(pool, group.refs, partial(_base_platforms, session), cancel)
            except RegistryError as exc:
                failures.append(str(exc))
                continue
            found.update({r.label: value for r, value in answers.items() if value is not None})
        return found, tuple(failures)


def _each(
    pool: ThreadPoolExecutor,
    items: Sequence[K],
    ask: Callable[[K], T | None],
    cancel: threading.Event | None,
) -> dict[K, T | None]:
    """ASK for each of ITEMS on POOL, all at once; the first error is raised once every
    question ended (a set CANCEL leaves those not started unasked: None)."""

    def one(item: K) -> T | None:
        if cancel is not None and cancel.is_set():
            return None
        return ask(item)

    futures = [pool.submit(one, item) for item in items]
    for error in [future.exception() for future in futures]:  # every one ended
        if error is not None:
            raise error
    return {item: future.result() for item, future in zip(items, futures, strict=True)}


def _base_platforms(session: RegistrySession, ref: BaseRef) -> Mapping[str, str] | None:
    return _platforms(session, ref.path, ref.tag)


def _platforms_of(session: RegistrySession, ref: Ref) -> Mapping[str, str] | None:
    return _platforms(session, *ref)


def _labels_of(session: RegistrySession, ref: Ref) -> Mapping[str, str] | None:
    return _labels(session, *ref)


def _manifest(session: RegistrySession, path: str, reference: str) -> tuple[Any, bytes] | None:
    """The manifest of PATH at REFERENCE (a tag or digest), parsed, and its bytes; None when
    the registry holds none. A reference the registry's own answers named that is no valid
    name, or a manifest larger than registries accept, is RegistryError naming both."""
    try:
        found = session.manifest(path, reference)
    except ValueError as exc:  # its words quote the name, escaped
        message = f"registry {session.name}: the manifest of {path}: {exc}"
        raise session.words.error(RegistryFailure.BAD_RESPONSE, message) from None
    if found is not None and len(found[1]) > MAX_MANIFEST_BYTES:
        message = (
            f"registry {session.name}: the manifest of {path}@{reference} is "
            f"{len(found[1])} bytes, more than a registry accepts ({MAX_MANIFEST_BYTES})"
        )
        raise session.words.error(RegistryFailure.BAD_RESPONSE, message)
    return found


def _platforms(session: RegistrySession, path: str, reference: str) -> Mapping[str, str] | None:
    """Platform -> manifest digest of PATH:REFERENCE; None when the registry holds none."""
    found = _manifest(session, path, reference)
    if found is None:
        return None
    manifest, body = found
    digest = content_digest(body)
    if isinstance(manifest, dict) and "manifests" in manifest:
        return manifest_platforms(manifest, digest)
    return manifest_platforms(manifest, digest, _config_blob(session, path, manifest))


def _labels(session: RegistrySession, path: str, digest: str) -> Mapping[str, str] | None:
    """The labels the image PATH@DIGEST records; None when it is gone or has no config."""
    found = _manifest(session, path, digest)
    if found is None:
        return None
    config = _config_blob(session, path, found[0])
    if not isinstance(config, dict):
        return None
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None


def _config_blob(session: RegistrySession, path: str, manifest: Any) -> Any:
    """The config blob a single image's MANIFEST names, parsed; None where it names none."""
    try:
        digest = manifest["config"]["digest"]
    except (KeyError, TypeError):
        return None
    if not isinstance(digest, str):
        return None
    repo = session.api_repository(path)
    # Content named by its digest: one read a run, whichever image of the run names it.
    kept = session.gates.manifests.get(session.host, repo, digest)
    content = kept[0] if kept is not None else None
    if content is None:
        what = f"the image config of {path}@{digest}"
        blob = session.call("GET", repo, f"/v2/{repo}/blobs/{digest}", {}, what)
        if blob.status_code != 200:
            raise session.words.unexpected(blob, f"GET {what}")
        content = blob.content
        if len(content) > MAX_MANIFEST_BYTES:
            return None
        if content_digest(content) == digest:
            session.gates.manifests.put(session.host, repo, digest, content)
    try:
        return json.loads(content)
    except ValueError:
        return None
