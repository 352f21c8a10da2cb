"""Observe the world once, before planning: ask what the daemon holds and what is published.

Observation can start before the tree is resolved (`Observation`, from references guessed off
the changelogs): the registry then answers while this process parses and orders the tree,
instead of after it. Only the answers for the resolved tree's references are used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from dockerpkg.core.builders import Builder
from dockerpkg.core.config import Config
from dockerpkg.core.images import LocalImage, local_images
from dockerpkg.core.observing import (
    Asked,
    BaseAnswers,
    DaemonFacts,
    PlatformAnswers,
    RegistryAnswers,
    asks_latest,
    base_questions,
    fold_observed,
    label_reads,
    moved_repositories,
    platform_base_questions,
    platform_questions,
    platform_versions,
    platforms_of,
    questions,
    tree_questions,
)
from dockerpkg.core.planner import Observed
from dockerpkg.core.registryrefs import Ref, tree_refs
from dockerpkg.core.tree import Tree
from dockerpkg.effects import imagestore
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.emulation import daemon_emulation
from dockerpkg.effects.platformreads import PlatformReader
from dockerpkg.effects.registry import Interrupter, RegistryClient, RegistryError
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.errors import DockerPkgError


def registry_client(
    config: Config,
    credentials: Credentials | None,
    env: Mapping[str, str],
    interrupter: Interrupter | None = None,
    gates: RegistryGates | None = None,
) -> RegistryClient:
    """The client of the config's registry; ENV may name the CAs to trust; INTERRUPTER ends
    its waits (and those of the other clients sharing it) on a signal; GATES are the run's
    (none: gates of its own, with the config's limits)."""
    return RegistryClient(
        config.registry or None,
        credentials,
        ca_bundle=config.ca_bundle,
        workers=max(1, config.scan_workers),
        env=env,
        interrupter=interrupter,
        gates=RegistryGates(config.registries) if gates is None else gates,
    )


class Observation:
    """The daemon's images and the registry's answers for REFS, gathered in the background
    from construction on; `result` completes them for the resolved tree and folds them into
    `Observed` (core/observing.py decides what to ask and what the answers mean)."""

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
        registry: bool = True,
        gates: RegistryGates | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        # The run's gates (none: gates of its own, with the config's limits): every client
        # below, whatever registry it asks, waits at them.
        self.gates = RegistryGates(config.registries) if gates is None else gates
        self._builders = builders
        self._first_builder = builders[0] if builders else None
        # all_or_nothing: each version's staging reference is asked too (an earlier run
        # may have staged it), with the definition recorded on what is staged.
        self._asked = Asked(credentials is not None, definitions, staging)
        self._latest = asks_latest(config, credentials is not None)
        self._credentials = credentials
        self._env = dict(env)
        self._cancel = threading.Event()
        # Shared by every client asking for this observation: cancel() ends their waits.
        self._interrupter = Interrupter()
        # The daemon's listing, the registry's answers and the bases' digests, side by side
        # (and, for a tree with platforms, what the daemon says of itself).
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="observe")
        self._local: Future[tuple[LocalImage, ...]] | None = None
        self._facts: Future[DaemonFacts] | None = None
        if daemon and len(builders) < 2:
            self._local = self._pool.submit(self._local_images, dict(env))
            # Images' own `Platforms` are known once the tree is resolved: asked then.
            if config.platforms:
                self._facts = self._pool.submit(daemon_facts, self._env, self._first_builder)
        # Without REGISTRY (a test session, whose tags no registry holds) nothing is asked
        # of it: nothing counts as published.
        asking = questions(config, refs, latest=self._latest, staging=staging) if registry else []
        self._answers = self._pool.submit(self._ask, asking, self._cancel)
        # `plan` (which reads the labels) compares bases and pin_bases holds builds to them:
        # otherwise a no-op build asks nothing more. A test session asks too with pin_bases,
        # so it builds FROM the lines `build` would: it pulls from those registries anyway.
        self._bases: Future[BaseAnswers] | None = None
        if config.pin_bases or (registry and definitions):
            self._bases = self._pool.submit(self._base_digests, self._cancel)

    def _local_images(self, env: Mapping[str, str]) -> tuple[LocalImage, ...]:
        """The images of the one daemon images are built on (several builders share only
        the registry: none of them is asked)."""
        try:
            daemon = _connect(env, self._builders[0] if self._builders else None)
        except imagestore.ImageStoreError as exc:
            raise DockerPkgError.single(
                "docker", f"{exc} (use --offline to plan without it)"
            ) from None
        try:
            return local_images(daemon.images(untagged=False))
        except imagestore.ImageStoreError as exc:
            raise DockerPkgError.single("docker", str(exc)) from None
        finally:
            daemon.close()

    def _base_digests(self, cancel: threading.Event) -> BaseAnswers:
        """The manifest digest of every base image of the config now, one HEAD each, with a
        client per registry; a registry that does not answer leaves its bases unjudged."""
        digests: dict[str, str | None] = {}
        failures: list[str] = []
        unknown: dict[str, str] = {}
        for group in base_questions(self._config):
            try:
                with RegistryClient(
                    group.host,
                    self._credentials if group.own else None,
                    ca_bundle=self._config.ca_bundle,
                    workers=max(1, self._config.scan_workers),
                    env=self._env,
                    interrupter=self._interrupter,
                    gates=self.gates,
                ) as registry:
                    answers = registry.digests_many([(r.path, r.tag) for r in group.refs], cancel)
            except RegistryError as exc:
                failures.append(str(exc))
                unknown.update({r.label: str(exc) for r in group.refs})
                continue
            digests.update({r.label: answers[r.path, r.tag] for r in group.refs})
        return BaseAnswers(digests, tuple(failures), unknown)

    def _ask(self, refs: Iterable[Ref], cancel: threading.Event | None) -> RegistryAnswers:
        """The manifest digest of each of REFS and the labels of those core says to read;
        one client for both, so one set of connections and tokens."""
        refs = list(refs)
        if not refs:
            return RegistryAnswers()
        try:
            with self._client() as registry:
                digests = registry.digests_many(refs, cancel)
                reads = label_reads(digests, self._asked.definitions)
                labels = _read_labels(registry, reads, cancel, self._config.scan_workers)
                return RegistryAnswers(digests, labels)
        except RegistryError as exc:
            raise self._registry_error(exc) from None

    def _client(self) -> RegistryClient:
        return registry_client(
            self._config, self._credentials, self._env, self._interrupter, self.gates
        )

    def _registry_error(self, exc: RegistryError) -> DockerPkgError:
        return DockerPkgError.single(self._config.registry or "Docker Hub", str(exc))

    def _tags(self, paths: tuple[str, ...]) -> RegistryAnswers:
        """The tags of the repositories at PATHS and each tag's digest."""
        if not paths:
            return RegistryAnswers()
        try:
            with self._client() as registry, ThreadPoolExecutor(self._config.scan_workers) as pool:
                try:
                    found = dict(zip(paths, pool.map(registry.tags, paths), strict=True))
                except BaseException as exc:
                    if not isinstance(exc, Exception):  # a signal: end the waits in flight
                        registry.interrupt()
                    raise
                refs = [(path, tag) for path, tags in found.items() for tag in tags]
                tags = {p: tuple(t) for p, t in found.items()}
                return RegistryAnswers(registry.digests_many(refs), tags=tags)
        except RegistryError as exc:
            raise self._registry_error(exc) from None

    def result(self, tree: Tree) -> Observed:
        """What the plan for TREE needs; references not asked yet are asked now."""
        try:
            local = () if self._local is None else self._local.result()
            answers = self._answers.result()
            bases = self._bases.result() if self._bases else BaseAnswers()
        except BaseException:
            self.cancel()
            raise
        finally:
            self._pool.shutdown()
        try:
            answers = self._completed(tree, answers)
            platforms, facts = self._platforms(tree, answers)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # a signal: end the waits in flight
                self._interrupter.interrupt()
            raise
        return fold_observed(
            tree,
            self._config,
            self._asked,
            answers,
            local=local,
            bases=bases,
            daemon_asked=self._local is not None,
            platforms=platforms,
            daemon=facts,
        )

    def _platforms(
        self, tree: Tree, answers: RegistryAnswers
    ) -> tuple[PlatformAnswers, DaemonFacts | None]:
        """For a tree with platforms, the platforms its published versions and their bases
        list and what the daemon says of itself; for any other, nothing (and nothing asked)."""
        if not platforms_of(tree, self._config):
            return PlatformAnswers(), None
        facts = None
        if self._facts is not None:
            facts = self._facts.result()
        elif self._local is not None:
            facts = daemon_facts(self._env, self._first_builder)
        asking_bases = self._registry or self._config.pin_bases
        reader = PlatformReader(
            self._config, self._credentials, self._env, self._interrupter, self.gates
        )
        try:
            platforms = reader.read(
                self._platform_versions(tree, answers) if self._registry else {},
                platform_base_questions(tree, self._config) if asking_bases else (),
                labels=self._asked.definitions,
                cancel=self._cancel,
            )
        except RegistryError as exc:
            raise self._registry_error(exc) from None
        return platforms, facts

    def _platform_versions(
        self, tree: Tree, answers: RegistryAnswers
    ) -> dict[Ref, tuple[str, ...]]:
        """The version references whose manifests are read, each with the platforms its image
        is built for (the only ones whose labels are read)."""
        built_for = platform_versions(tree, self._config)
        return {
            ref: built_for[ref] for ref in platform_questions(tree, self._config, answers.digests)
        }

    def _completed(self, tree: Tree, answers: RegistryAnswers) -> RegistryAnswers:
        """ANSWERS with what the background did not ask (the resolved tree's references not
        guessed), then the tags of the repositories whose `latest` moved."""
        if not self._registry:
            return answers
        wanted = tree_questions(
            tree, self._config, latest=self._latest, staging=self._asked.staging
        )
        missing = [ref for ref in wanted if ref not in answers.digests]
        if missing:
            answers = answers.merged(self._ask(missing, None))
        return answers.merged(self._tags(moved_repositories(tree, self._config, answers)))

    def cancel(self) -> None:
        """Stop asking (the run ends without a plan): every wait on the registry ends at once;
        then wait for the threads asking."""
        self._cancel.set()
        self._interrupter.interrupt()
        # Waits for both; their errors, if any, no longer matter.
        self._answers.exception()
        if self._bases is not None:
            self._bases.exception()
        if self._local is not None:
            self._local.exception()
        if self._facts is not None:
            self._facts.exception()
        self._pool.shutdown()


def _read_labels(
    registry: RegistryClient,
    reads: Mapping[Ref, str],
    cancel: threading.Event | None,
    workers: int,
) -> dict[Ref, Mapping[str, str]]:
    """The labels of the image at each of READS, read by the reference (tag or digest)
    each names, WORKERS at once; none for an image that has none."""
    if not reads:
        return {}

    def labels(ref: Ref) -> Mapping[str, str]:
        if cancel is not None and cancel.is_set():
            return {}
        return registry.image_labels(ref[0], reads[ref]) or {}

    wanted = list(reads)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        try:
            return dict(zip(wanted, pool.map(labels, wanted), strict=True))
        except BaseException as exc:
            if not isinstance(exc, Exception):  # a signal: end the waits in flight
                registry.interrupt()
            raise


def daemon_facts(env: Mapping[str, str], builder: Builder | None) -> DaemonFacts:
    """What the daemon (BUILDER's, else the one ENV names) says of its platform and, for one
    on this machine, the binfmt_misc handlers through which it emulates others."""
    try:
        daemon = _connect(env, builder)
    except imagestore.ImageStoreError as exc:
        raise DockerPkgError.single("docker", f"{exc} (use --offline to plan without it)") from None
    try:
        info = daemon.info()
    except imagestore.ImageStoreError as exc:
        raise DockerPkgError.single("docker", str(exc)) from None
    finally:
        daemon.close()
    handlers, unknown = daemon_emulation(
        _elsewhere(env, builder), str(info.get("KernelVersion") or "")
    )
    return DaemonFacts(
        str(info.get("OSType") or ""), str(info.get("Architecture") or ""), handlers, unknown
    )


def _elsewhere(env: Mapping[str, str], builder: Builder | None) -> str | None:
    """Why the daemon (BUILDER's, else the one ENV names) is not on this machine, whose
    binfmt_misc its builds would run under; None when it listens on a unix socket here."""
    if builder is not None and not builder.url.startswith("unix://"):
        return f"builder {builder.name} is on another machine"
    if builder is None and imagestore.socket_path(env) is None:
        return "DOCKER_HOST names a daemon on another machine"
    return None


def _connect(env: Mapping[str, str], builder: Builder | None) -> imagestore.ImageStore:
    if builder is None:
        return imagestore.connect(env)
    if builder.url.startswith("unix://"):
        return imagestore.connect({"DOCKER_HOST": builder.url})
    from dockerpkg.effects import daemon

    try:
        return imagestore.DockerPyImageStore(daemon.connect_to(builder, env))
    except daemon.DaemonError as exc:
        raise imagestore.ImageStoreError(str(exc)) from None


def observe(
    tree: Tree,
    config: Config,
    credentials: Credentials | None,
    env: Mapping[str, str],
    *,
    definitions: bool = False,
    gates: RegistryGates | None = None,
) -> Observed:
    """Local labels in one daemon call; published tags in concurrent kept-alive checks; with
    DEFINITIONS, the definitions recorded in published images' labels. GATES: the run's."""
    refs = tree_refs(tree, config).values()
    observation = Observation(config, credentials, env, refs, definitions=definitions, gates=gates)
    return observation.result(tree)
