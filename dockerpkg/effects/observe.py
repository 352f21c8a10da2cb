"""Observe the world once, before planning: what the daemon holds and what is published.

Observation can start before the tree is resolved (`Observation`, from references guessed off
the changelogs): the registry then answers while this process parses and orders the tree,
instead of after it. Only the answers for the resolved tree's references are used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from dockerpkg.core.bases import BASES_LABEL, BaseRef, base_refs, read_bases_label
from dockerpkg.core.builders import Builder
from dockerpkg.core.config import Config
from dockerpkg.core.definition import DEFINITION_LABEL, IDENTITY_LABEL
from dockerpkg.core.images import local_images
from dockerpkg.core.planner import Observed
from dockerpkg.core.registryrefs import Ref, tree_refs
from dockerpkg.core.staging import STAGING, Staged, staging_path
from dockerpkg.core.tree import Tree
from dockerpkg.effects import imagestore
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.registry import Interrupter, RegistryClient, RegistryError
from dockerpkg.errors import DockerPkgError


def registry_client(
    config: Config,
    credentials: Credentials | None,
    env: Mapping[str, str],
    interrupter: Interrupter | None = None,
) -> RegistryClient:
    """The client of the config's registry; ENV may name the CAs to trust; INTERRUPTER ends
    its waits (and those of the other clients sharing it) on a signal."""
    return RegistryClient(
        config.registry or None,
        credentials,
        ca_bundle=config.ca_bundle,
        workers=max(1, config.scan_workers),
        env=env,
        interrupter=interrupter,
    )


class Observation:
    """The daemon's images and the registry's answers for REFS, gathered in the background
    from construction on; `result` completes them for the resolved tree."""

    def __init__(
        self,
        config: Config,
        credentials: Credentials | None,
        env: Mapping[str, str],
        refs: Iterable[Ref],
        *,
        definitions: bool = False,
        builders: tuple[Builder, ...] = (),
        daemon: bool = True,
        staging: bool = False,
    ) -> None:
        self._config = config
        self._builders = builders
        self._definitions = definitions
        # all_or_nothing: each version's staging reference is asked too (an earlier run
        # may have staged it), with the definition recorded on what is staged.
        self._staging = staging
        self._credentials = credentials
        self._env = dict(env)
        self._cancel = threading.Event()
        # Shared by every client asking for this observation: cancel() ends their waits.
        self._interrupter = Interrupter()
        # The daemon's listing, the registry's answers and the bases' digests, side by side.
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="observe")
        self._local_labels: Future[tuple[frozenset[str], dict[str, str]]] | None = None
        if daemon and len(builders) < 2:
            self._local_labels = self._pool.submit(self._local, dict(env))
        self._answers: Future[tuple[dict[Ref, str | None], dict[Ref, dict[str, str]]]] = (
            self._pool.submit(self._ask, self._with_latest(refs), self._cancel)
        )
        # `plan` (which reads the labels) compares bases and pin_bases holds builds to them:
        # otherwise a no-op build asks nothing more.
        self._bases: Future[tuple[dict[str, str], list[str], frozenset[str]]] | None = None
        if definitions or config.pin_bases:
            self._bases = self._pool.submit(self._base_digests, self._cancel)

    def _with_latest(self, refs: Iterable[Ref]) -> tuple[Ref, ...]:
        """REFS and, when the run can publish (so move `latest`), each repository's latest;
        when it stages, each version's staging reference."""
        refs = tuple(refs)
        more: tuple[Ref, ...] = ()
        if self._staging:
            more = tuple(self._staged_ref(ref) for ref in refs)
        if self._credentials is None or not self._config.check_latest:
            return refs + more
        latest = tuple(dict.fromkeys((repository, "latest") for repository, _ in refs))
        return refs + latest + more

    def _staged_ref(self, ref: Ref) -> Ref:
        return staging_path(ref[0], self._config.namespace), ref[1]

    def _local(self, env: Mapping[str, str]) -> tuple[frozenset[str], dict[str, str]]:
        """The labels of the one daemon images are built on (several builders share only
        the registry: none of them is asked), and the build identity each records."""
        try:
            daemon = _connect(env, self._builders[0] if self._builders else None)
        except imagestore.ImageStoreError as exc:
            raise DockerPkgError.single(
                "docker", f"{exc} (use --offline to plan without it)"
            ) from None
        try:
            images = local_images(daemon.images(untagged=False))
        except imagestore.ImageStoreError as exc:
            raise DockerPkgError.single("docker", str(exc)) from None
        finally:
            daemon.close()
        identities = {
            tag: image.identity for image in images if image.identity for tag in image.tags
        }
        return frozenset(tag for image in images for tag in image.tags), identities

    def _base_digests(
        self, cancel: threading.Event
    ) -> tuple[dict[str, str], list[str], frozenset[str]]:
        """The manifest digest of every base image of the config now, one HEAD each, with a
        client per registry (the run's credentials only for its own), and those not found; a
        registry that does not answer leaves its bases unjudged, with a note saying so."""
        by_registry: dict[tuple[str | None, bool], list[BaseRef]] = {}
        for ref in base_refs(self._config.base_images, self._config.registry):
            by_registry.setdefault((ref.registry, ref.own), []).append(ref)
        digests: dict[str, str] = {}
        absent: set[str] = set()
        problems: list[str] = []
        for (host, own), refs in by_registry.items():
            try:
                with RegistryClient(
                    (self._config.registry or None) if own else host,
                    self._credentials if own else None,
                    ca_bundle=self._config.ca_bundle,
                    workers=max(1, self._config.scan_workers),
                    env=self._env,
                    interrupter=self._interrupter,
                ) as registry:
                    answers = registry.digests_many([(r.path, r.tag) for r in refs], cancel)
            except RegistryError as exc:
                problems.append(f"cannot tell whether base images moved: {exc}")
                continue
            digests.update({r.label: d for r in refs if (d := answers[r.path, r.tag])})
            absent.update(r.label for r in refs if answers[r.path, r.tag] is None)
        return digests, problems, frozenset(absent)

    def _ask(
        self, refs: Iterable[Ref], cancel: threading.Event | None
    ) -> tuple[dict[Ref, str | None], dict[Ref, dict[str, str]]]:
        """The manifest digest of each of REFS (None: not published) and, when asked for, the
        own definitions their labels record; one client for both, so one set of connections
        and tokens."""
        try:
            with self._client() as registry:
                digests = registry.digests_many(refs, cancel)
                return digests, self._recorded(registry, digests, cancel)
        except RegistryError as exc:
            raise self._registry_error(exc) from None

    def _client(self) -> RegistryClient:
        return registry_client(self._config, self._credentials, self._env, self._interrupter)

    def _registry_error(self, exc: RegistryError) -> DockerPkgError:
        return DockerPkgError.single(self._config.registry or "Docker Hub", str(exc))

    def _tags(self, paths: list[str]) -> tuple[dict[str, tuple[str, ...]], dict[Ref, str | None]]:
        """The tags of the repositories at PATHS (those whose `latest` is not on the tree's
        version) and each tag's digest, to tell which one `latest` is on."""
        if not paths:
            return {}, {}
        try:
            with self._client() as registry, ThreadPoolExecutor(self._config.scan_workers) as pool:
                try:
                    found = dict(zip(paths, pool.map(registry.tags, paths), strict=True))
                except BaseException as exc:
                    if not isinstance(exc, Exception):  # a signal: end the waits in flight
                        registry.interrupt()
                    raise
                refs = [(path, tag) for path, tags in found.items() for tag in tags]
                return {p: tuple(t) for p, t in found.items()}, registry.digests_many(refs)
        except RegistryError as exc:
            raise self._registry_error(exc) from None

    def _recorded(
        self,
        registry: RegistryClient,
        digests: Mapping[Ref, str | None],
        cancel: threading.Event | None,
    ) -> dict[Ref, dict[str, str]]:
        """The labels dockerpkg reads back (definition, bases) of each published version."""
        found = [ref for ref, digest in digests.items() if digest and ref[1] != "latest"]
        staged = [ref for ref in found if f"/{STAGING}/" in f"/{ref[0]}"]
        wanted = found if self._definitions else staged
        staging = frozenset(staged)
        if not wanted:
            return {}

        def labels(ref: Ref) -> dict[str, str]:
            if cancel is not None and cancel.is_set():
                return {}
            # A staged image's labels are read by the digest observed: the one promoted.
            held = digests[ref] if ref in staging else None
            found = registry.image_labels(ref[0], held or ref[1]) or {}
            kept = (DEFINITION_LABEL, BASES_LABEL, IDENTITY_LABEL)
            return {key: found[key] for key in kept if key in found}

        with ThreadPoolExecutor(max(1, self._config.scan_workers)) as pool:
            try:
                answers = dict(zip(wanted, pool.map(labels, wanted), strict=True))
            except BaseException as exc:
                if not isinstance(exc, Exception):  # a signal: end the waits in flight
                    registry.interrupt()
                raise
        return {ref: value for ref, value in answers.items() if value}

    def result(self, tree: Tree) -> Observed:
        """What the plan for TREE needs; references not asked yet are asked now."""
        try:
            local, identities = (
                (frozenset(), {}) if self._local_labels is None else self._local_labels.result()
            )
            asked, asked_recorded = self._answers.result()
            bases = self._bases.result() if self._bases else ({}, [], frozenset())
        except BaseException:
            self.cancel()
            raise
        finally:
            self._pool.shutdown()
        try:
            return self._completed(tree, (local, identities), asked, asked_recorded, bases=bases)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # a signal: end the waits in flight
                self._interrupter.interrupt()
            raise

    def _completed(
        self,
        tree: Tree,
        daemon_held: tuple[frozenset[str], dict[str, str]],
        asked: Mapping[Ref, str | None],
        asked_recorded: Mapping[Ref, dict[str, str]],
        *,
        bases: tuple[dict[str, str], list[str], frozenset[str]],
    ) -> Observed:
        """The observation for TREE from what the background asked; what it did not (the
        resolved tree's references not guessed) is asked now; DAEMON_HELD: the daemon's
        labels and the build identity each records."""
        local, identities = daemon_held
        base_digests, base_problems, bases_absent = bases
        refs = tree_refs(tree, self._config)
        answers = dict(asked)
        recorded = dict(asked_recorded)
        missing = [ref for ref in self._with_latest(refs.values()) if ref not in answers]
        if missing:
            late, late_recorded = self._ask(missing, None)
            answers.update(late)
            recorded.update(late_recorded)
        published = frozenset(tree.images[name].label for name, ref in refs.items() if answers[ref])
        digests: dict[str, str] = {}
        moved: list[str] = []  # repositories whose latest is on another image
        for name, (path, tag) in refs.items():
            image = tree.images[name]
            version = answers[path, tag]
            if version is None or (path, "latest") not in answers:
                continue
            digests[image.label] = version
            latest = answers[path, "latest"]
            if latest is not None:
                digests[f"{image.repository}:latest"] = latest
            if latest is not None and latest != version:
                moved.append(path)
        by_path = {path: tree.images[name].repository for name, (path, _) in refs.items()}
        tags, tag_digests = self._tags(sorted(set(moved)))
        for (path, tag), digest in tag_digests.items():
            if digest is not None:
                digests.setdefault(f"{by_path[path]}:{tag}", digest)
        return Observed(
            offline=False,
            published=published,
            local=local,
            credentials=self._credentials is not None,
            recorded={
                tree.images[n].label: value
                for n, r in refs.items()
                if (value := recorded.get(r, {}).get(DEFINITION_LABEL))
            },
            digests=digests,
            tags={by_path[path]: found for path, found in tags.items()},
            labels_read=self._definitions,
            bases={
                tree.images[n].label: based
                for n, r in refs.items()
                if (based := read_bases_label(recorded.get(r, {}).get(BASES_LABEL))) is not None
            },
            base_digests=base_digests,
            bases_absent=bases_absent,
            problems=tuple(base_problems),
            staged=self._staged_found(tree, refs, answers, recorded),
            local_identities=identities,
        )

    def _staged_found(
        self,
        tree: Tree,
        refs: Mapping[str, Ref],
        answers: Mapping[Ref, str | None],
        recorded: Mapping[Ref, Mapping[str, str]],
    ) -> dict[str, Staged]:
        """Label -> what is staged for it (the identity its label records, its digest, and
        the version tag's digest), for the labels staged."""
        if not self._staging:
            return {}
        found = {}
        for name, ref in refs.items():
            staged = self._staged_ref(ref)
            digest = answers.get(staged)
            if digest:
                identity = recorded.get(staged, {}).get(IDENTITY_LABEL, "")
                found[tree.images[name].label] = Staged(identity, digest, answers.get(ref))
        return found

    def cancel(self) -> None:
        """Stop asking (the run ends without a plan): every wait on the registry ends at once;
        then wait for the threads asking."""
        self._cancel.set()
        self._interrupter.interrupt()
        # Waits for both; their errors, if any, no longer matter.
        self._answers.exception()
        if self._bases is not None:
            self._bases.exception()
        if self._local_labels is not None:
            self._local_labels.exception()
        self._pool.shutdown()


def _connect(env: Mapping[str, str], builder: Builder | None) -> imagestore.ImageStore:
    if builder is None:
        return imagestore.connect(env)
    if builder.url.startswith("unix://"):
        return imagestore.connect({"DOCKER_HOST": builder.url})
    from dockerpkg.effects import daemon

    try:
        return imagestore.DockerPyImageStore(daemon.connect_to(builder))
    except daemon.DaemonError as exc:
        raise imagestore.ImageStoreError(str(exc)) from None


def observe(
    tree: Tree,
    config: Config,
    credentials: Credentials | None,
    env: Mapping[str, str],
    *,
    definitions: bool = False,
) -> Observed:
    """Local labels in one daemon call; published tags in concurrent kept-alive checks; with
    DEFINITIONS, the definitions recorded in published images' labels."""
    refs = tree_refs(tree, config).values()
    return Observation(config, credentials, env, refs, definitions=definitions).result(tree)
