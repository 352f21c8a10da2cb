"""Execute a build plan against the daemon and the registry. No decisions: the plan has them.

An Executor runs the steps of one plan on one daemon, as dockerpkg.effects.scheduler asks: the
scheduler follows each step's `needs` and chooses where each runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, cast

import attrs
import docker

from dockerpkg.core.bases import BASES_LABEL, bases_label, chosen_digest, pinned
from dockerpkg.core.builders import TLSFiles
from dockerpkg.core.config import Config, proxy_args
from dockerpkg.core.imagelabels import labelled_build
from dockerpkg.core.labels import repository_path, same_registry, split_label
from dockerpkg.core.plan import BuildEngine, Op, Plan, PlannedImage, PlannedSecret, Step
from dockerpkg.core.report import Outcome, Report
from dockerpkg.core.runrules import local_copy_serves, verification, verification_paths
from dockerpkg.core.staging import staged_reference
from dockerpkg.effects import daemon, imagebuild, scratch
from dockerpkg.effects import stage as stage_effects
from dockerpkg.effects.buildcontext import build_context
from dockerpkg.effects.buildsession import Sources, image_session
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.logs import DEFAULT_LOG_LIMIT, CappedLog, Tee
from dockerpkg.effects.registry import RegistryClient, RegistryError
from dockerpkg.effects.scheduler import Scheduler, Worker
from dockerpkg.effects.stagedidentity import require_identity
from dockerpkg.effects.tasks import Interrupt, Listener, TaskCancelledError, TaskFailedError
from dockerpkg.effects.tree import BUILD_TEMPLATE
from dockerpkg.effects.verify import run_verification
from dockerpkg.effects.waits import Patience


@attrs.frozen
class Settings:
    """Where and how to run: fixed before the run, never changed by it."""

    directory: Path  # the image tree
    run_dir: Path  # per-image logs go here
    config: Config
    credentials: Credentials | None
    use_cache: bool = False
    jobs: int = 1
    echo: IO[str] | None = None  # --info: build output to the terminal as well
    push_jobs: int = 4
    pull_jobs: int = 4
    # Where links in image folders may lead (None: inside the tree's repository only); its
    # private paths (config files holding secrets) are never copied into a build context.
    links: LinkPolicy | None = None
    build_timeout: float | None = None  # seconds one image's build may take
    verify_timeout: float | None = None  # seconds one image's verification may take
    # Seconds a pull or a push may wait for a word from the daemon.
    transfer_timeout: float = daemon.TRANSFER_TIMEOUT
    build_engine: BuildEngine = BuildEngine.BUILDKIT
    log_limit: int = DEFAULT_LOG_LIMIT  # characters each step may write to its image's log
    # For verifications: DOCKER_HOST (and TLS variables) of the builder, over the environment's.
    daemon_env: Mapping[str, str] = attrs.field(factory=dict)
    builder_tls: TLSFiles | None = None  # the builder's TLS files, for its BuildKit sessions
    # The run's environment, read once by the caller: what a verification inherits of it.
    env: Mapping[str, str] = attrs.field(factory=dict)
    # all_or_nothing: label -> its staging reference, for the images the run stages or
    # promotes (a builder needing one pulls it from there: nothing is at the label yet).
    staged: Mapping[str, str] = attrs.field(factory=dict)
    # Label -> the build identity the plan gives the image (what a staged one must record).
    identities: Mapping[str, str] = attrs.field(factory=dict)
    # Build secret id -> its source (the plan's).
    secrets: Mapping[str, PlannedSecret] = attrs.field(factory=dict)
    # SSH agent id -> its socket, key file or the run's agent (the plan's).
    ssh: Mapping[str, PlannedSecret] = attrs.field(factory=dict)


class Executor:
    """Runs the steps of one plan; one instance per run."""

    def __init__(
        self,
        client: docker.APIClient,
        registry: RegistryClient | None,
        settings: Settings,
        listener: Listener,
    ) -> None:
        self._client = client
        self._registry = registry
        self._settings = settings
        self._listener = listener
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        # Image name -> folder holding build/ from its build stage, until its build takes it.
        self._artifacts: dict[str, Path] = {}
        # Image name -> the manifest digest this run pushed to its staging reference (after
        # its verification): what its promotion moves, whatever the staging tag holds then.
        self._staged: dict[str, str] = {}
        # Label -> the manifest digest the daemon said its pull in this run resolved it to.
        self._pulled: dict[str, str] = {}

    def cancel(self) -> None:
        """Abort running work: streams end at their next chunk, verifications are killed
        (their whole process groups)."""
        self._cancel.set()

    def _failed(self, exc: Exception) -> TaskFailedError:
        if self._cancel.is_set():
            return TaskCancelledError("cancelled")
        return TaskFailedError(str(exc))

    # -- what the scheduler asks of a builder ----------------------------------------------

    def step_runner(self, step: Step, image: PlannedImage | None) -> Callable[[], str | None]:
        """What runs STEP (of IMAGE) on this executor's daemon."""
        if step.op is Op.PULL:
            # A pull's detail, when the plan gives one, is the name the image gets here (a
            # staged parent, pulled from its staging repository).
            return lambda: self._pull(step.label or step.image, named=step.detail)
        assert image is not None, f"plan step for unknown image {step.image}"
        if step.op is Op.BUILD_STAGE:
            return lambda: self._build_stage(image, step.label)
        if step.op is Op.PUBLISH:
            return lambda: self._publish(image, step.label or image.label)
        if step.op is Op.PROMOTE:
            return lambda: self._promote(image, step.detail)
        if step.op is Op.UNSTAGE:
            return lambda: self._unstage(image, step.label)
        actions: dict[Op, Callable[[PlannedImage], str | None]] = {
            Op.BUILD: self._build,
            Op.VERIFY: self._verify,
            Op.TAG_LATEST: self._tag_latest,
            Op.STAGE: lambda planned: self._stage(planned, step.label or planned.label),
        }
        action = actions[step.op]
        return lambda: action(image)

    def pull(self, label: str, log_name: str, named: str | None = None) -> str | None:
        """Pull LABEL, logging to LOG_NAME.log (an image's log, for its parents), and name it
        NAMED when given; from its staging repository when the run stages it."""
        staged = self._settings.staged.get(label)
        if staged is not None and named is None:
            return self._pull(staged, log_name, named=label)
        return self._pull(label, log_name, named=named)

    def reachable(self) -> bool:
        """Whether the daemon answers a ping (after a failure: is the builder lost?)."""
        return daemon.reachable(self._client)

    def finish(self) -> None:
        """The run is over: artifacts of stages whose build never ran (interrupted, or a
        parent failed) go."""
        with self._lock:
            for folder in self._artifacts.values():
                shutil.rmtree(folder, ignore_errors=True)
            self._artifacts.clear()

    def run(self, plan: Plan, interrupt: Interrupt | None = None) -> Report:
        """Run PLAN on this executor's daemon alone: a fleet of one."""
        settings = self._settings
        worker = Worker("docker", self, settings.jobs, settings.push_jobs)
        scheduler = Scheduler([worker], self._listener, settings.run_dir, settings.pull_jobs)
        return scheduler.run(plan, interrupt)

    # -- steps -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _log(self, name: str, title: str) -> Iterator[IO[str]]:
        path = self._settings.run_dir / f"{name}.log"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"== {title} ({time.strftime('%Y-%m-%d %H:%M:%S')}) ==\n")
            capped = CappedLog(handle, self._settings.log_limit)
            echo = self._settings.echo
            try:
                # Both write, flush and give a file descriptor: all the log users need of IO.
                yield cast("IO[str]", capped if echo is None else Tee(capped, echo, name))
            finally:
                capped.close()

    def _pull(self, label: str, log_name: str = "pulls", *, named: str | None = None) -> str | None:
        if named is not None:
            # An earlier run's staged parent, held to the digest the plan names.
            expected = self._settings.identities.get(named)
            require_identity(self._registry, self._settings.config.registry, label, expected)
        with self._log(log_name, f"pull {label}") as log:
            try:
                pulled = daemon.pull(
                    self._client,
                    label,
                    self.credentials_for(label),
                    log,
                    self._cancel,
                    timeout=self._settings.transfer_timeout,
                )
            except daemon.DaemonError as exc:
                if self._cancel.is_set():
                    raise self._failed(exc) from None
                local = daemon.local_labels(daemon.list_images(self._client))
                if local_copy_serves(label, local):
                    log.write(f"{exc}; using the local copy\n")
                    return "local copy"
                raise TaskFailedError(str(exc)) from None
            if pulled is not None:
                with self._lock:
                    self._pulled[label] = pulled
            if named is not None:
                repository, tag = split_label(named)
                # Pulled by digest, the image has no tag of LABEL's: it is named by the digest.
                name, _, digest = label.partition("@")
                source = f"{split_label(name)[0]}@{digest}" if digest else label
                try:
                    daemon.tag(self._client, source, repository, tag or "latest")
                except daemon.DaemonError as exc:
                    raise self._failed(exc) from None
                log.write(f"{label} is {named} here\n")
        return None

    def credentials_for(self, label: str) -> Credentials | None:
        """The run's credentials if LABEL is in the config's registry: a base image from
        another registry gets the Docker client's own login for it, never this password."""
        repository, _ = split_label(label)
        if same_registry(repository, self._settings.config.registry):
            return self._settings.credentials
        return None

    def _context(self, image: PlannedImage) -> contextlib.AbstractContextManager[Path]:
        """A temporary copy of IMAGE's folder (see `_context` below)."""
        settings = self._settings
        links = settings.links or LinkPolicy.for_tree(str(settings.directory))
        return build_context(settings.directory, image.path, image.name, links, image)

    def _build(self, image: PlannedImage) -> str | None:
        config = self._settings.config
        timeout = self._settings.build_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with (
            self._log(image.name, f"build {image.label}") as log,
            self._context(image) as context,
        ):
            if image.build_dockerfile is not None:
                self._take_artifacts(image, context)
            try:
                if image.dockerfile is None:
                    raise TaskFailedError(f"the plan holds no rendered Dockerfile for {image.name}")
                if deadline is not None and time.monotonic() >= deadline:
                    raise daemon.TimedOutError("timed out")
                bases = self._bases(image)
                labels = dict(image.labels)
                if image.records is not None:
                    labels[BASES_LABEL] = bases_label(bases)
                    log.write(f"{BASES_LABEL}: {labels[BASES_LABEL]}\n")
                build = labelled_build(image.dockerfile, labels, self._settings.build_engine)
                (context / "Dockerfile").write_text(build.dockerfile, encoding="utf-8")
                session = self._session(image, Patience(self._cancel, deadline))
                with session as session_id:
                    image_id = imagebuild.build(
                        self._client,
                        str(context),
                        image.label,
                        use_cache=self._settings.use_cache or bool(image.cache_from),
                        buildargs={**proxy_args(config), **_inline_cache(image)},
                        container_limits=config.container_limits,
                        log_file=log,
                        cancel=self._cancel,
                        labels=build.labels or None,
                        deadline=deadline,
                        engine=self._settings.build_engine,
                        session=session_id,
                        cache_from=image.cache_from,
                        registry_auth=self._registry_auth(),
                    )
            except daemon.TimedOutError:
                log.write(f"build timed out after {timeout:g} s: stopped\n")
                raise TaskFailedError(f"build timed out after {timeout:g} s") from None
            except daemon.DaemonError as exc:
                raise self._failed(exc) from None
        if not bases:
            return image_id
        return f"{image_id} on " + ", ".join(f"{ref}@{digest}" for ref, digest in bases.items())

    def _registry_auth(self) -> dict[str, dict[str, str]] | None:
        """The run's login for its registry, for the cache imports of a build."""
        credentials = self._settings.credentials
        registry = self._settings.config.registry
        if credentials is None or not registry:
            return None
        return {registry: {"username": credentials.username, "password": credentials.password}}

    def _session(
        self, image: PlannedImage, patience: Patience
    ) -> contextlib.AbstractContextManager[str | None]:
        settings = self._settings
        logins = {
            host: (login["username"], login["password"])
            for host, login in (self._registry_auth() or {}).items()
        }
        return image_session(
            image,
            settings.build_engine,
            Sources(settings.secrets, settings.ssh, logins),
            settings.env,
            ({**settings.env, **settings.daemon_env}, settings.builder_tls),
            patience=patience,
        )

    def _bases(self, image: PlannedImage) -> dict[str, str]:
        """The manifest digest of each image IMAGE's build records, as the daemon holds it
        now (what the build will use), the one its tag resolved to when pulled in this run
        where the daemon holds several; one the daemon holds by no digest (made locally) is
        left out."""
        found: dict[str, str] = {}
        for ref in image.records or ():
            pin = image.pins.get(ref)
            held = daemon.repo_digests(self._client, ref if pin is None else pinned(ref, pin))
            with self._lock:
                pulled = self._pulled.get(ref)
            digest = chosen_digest(held, pin, pulled)
            if digest is not None:
                found[ref] = digest
        return found

    def _build_stage(self, image: PlannedImage, stage: str | None) -> str | None:
        """Build STAGE from the rendered build template, in a context of its own, and keep its
        /build for the image's build; the container and the stage image go whatever happens."""
        where = BUILD_TEMPLATE if image.path == "." else f"{image.path}/{BUILD_TEMPLATE}"
        if stage is None:
            raise TaskFailedError(f"the plan names no stage image for {where}")
        if image.build_dockerfile is None:
            raise TaskFailedError(f"the plan holds no rendered {where}")
        config = self._settings.config
        artifacts = Path(scratch.make_folder(f"stage-{image.name}"))
        kept = False
        try:
            with (
                self._log(image.name, f"build stage {stage} from {where}") as log,
                self._context(image) as context,
            ):
                (context / "Dockerfile.build").write_text(image.build_dockerfile, encoding="utf-8")
                output = stage_effects.BuildOutput(log, self._cancel)
                failure = None
                try:
                    stage_id = stage_effects.build_stage(
                        self._client,
                        context,
                        stage,
                        artifacts,
                        output,
                        use_cache=self._settings.use_cache,
                        buildargs=proxy_args(config),
                        container_limits=config.container_limits,
                        cancel=self._cancel,
                        engine=self._settings.build_engine,
                    )
                except daemon.DaemonError as exc:
                    # Only the text: the error's traceback holds the build's stream open.
                    failure = str(exc)
                finally:
                    left = stage_effects.remove_stage(self._client, stage, output)
                if failure is not None and self._cancel.is_set():
                    raise TaskCancelledError("cancelled")
                if failure is not None:
                    raise TaskFailedError(f"build stage from {where} failed: {failure}")
                if left is not None:
                    raise TaskFailedError(f"build stage from {where}: {left}")
            with self._lock:
                self._artifacts[image.name] = artifacts
            kept = True
        finally:
            if not kept:
                shutil.rmtree(artifacts, ignore_errors=True)
        return stage_id

    def _take_artifacts(self, image: PlannedImage, context: Path) -> None:
        """Copy build/ from the image's build stage into its CONTEXT; the stage's folder goes."""
        with self._lock:
            artifacts = self._artifacts.pop(image.name, None)
        if artifacts is None:
            raise TaskFailedError(
                f"{image.name} has a {BUILD_TEMPLATE} but its build stage did not run; "
                "make the plan again"
            )
        try:
            shutil.copytree(
                artifacts / "build", context / "build", symlinks=True, dirs_exist_ok=True
            )
        except (OSError, shutil.Error) as exc:
            raise TaskFailedError(f"cannot copy build/ into the build context: {exc}") from None
        finally:
            shutil.rmtree(artifacts, ignore_errors=True)

    def _verify(self, image: PlannedImage) -> str | None:
        settings = self._settings
        folder = str((settings.directory / image.path).resolve())
        paths = verification_paths(settings.config, folder)
        present = frozenset(path for path in paths if os.path.exists(path))
        call = verification(
            settings.config,
            image.label,
            (folder, image.path),
            present,
            (settings.env, settings.daemon_env),
        )
        if call.skipped is not None:
            return call.skipped
        timeout = self._settings.verify_timeout
        with self._log(image.name, f"verify {image.label}") as log:
            finished = run_verification(
                call.argv, call.env, log, cancel=self._cancel, timeout=timeout
            )
            if finished.timed_out:
                log.write(f"verification timed out after {timeout:g} s: stopped\n")
        if finished.cancelled or self._cancel.is_set():
            raise TaskCancelledError("cancelled")
        if finished.timed_out:
            raise TaskFailedError(f"verification timed out after {timeout:g} s")
        if finished.returncode != 0:
            raise TaskFailedError(
                f"verification failed (exit {finished.returncode}); see {image.name}.log"
            )
        return None

    def _publish(self, image: PlannedImage, target: str) -> str | None:
        """Push the version tag, then point `latest` at the same manifest in the registry (a
        second `docker push` would check every layer again), which confirms the push too;
        a TARGET other than the image's label is its staging reference: pushed alone."""
        if target != image.label:
            return self._stage(image, target)
        registry = self._registry_for("publishing")
        repository, tag, path = self._reference(image.label)
        with self._log(image.name, f"publish {image.label}") as log:
            try:
                daemon.tag(self._client, image.label, repository, "latest")
                if self._already_published(registry, image, (path, tag), log):
                    log.write(f"{image.label} is published with this content: not pushed again\n")
                else:
                    self._push(repository, tag, log)
            except daemon.DaemonError as exc:
                raise self._failed(exc) from None
            try:
                digest = registry.copy_tag(path, tag, "latest")
            except RegistryError as exc:
                raise TaskFailedError(
                    f"pushed, but cannot confirm it or tag it latest: {exc}"
                ) from None
            if digest is None:
                raise TaskFailedError(f"pushed, but the registry does not have {image.label}")
            log.write(f"latest: {digest} (set in the registry to the manifest of {tag})\n")
        return digest

    def _stage(self, image: PlannedImage, target: str) -> str | None:
        """Push IMAGE as TARGET, its staging reference; nothing users pull moves."""
        registry = self._registry_for("staging")
        repository, tag, path = self._reference(target)
        with self._log(image.name, f"stage {image.label} as {target}") as log:
            try:
                daemon.tag(self._client, image.label, repository, tag)
                pushed = self._push(repository, tag, log)
            except daemon.DaemonError as exc:
                raise self._failed(exc) from None
            try:
                # By the digest pushed: the tag may hold someone else's push by now.
                digest = registry.manifest_digest(path, pushed or tag)
            except RegistryError as exc:
                raise TaskFailedError(f"staged, but cannot confirm it: {exc}") from None
            if digest is None:
                raise TaskFailedError(f"staged, but the registry does not have {target}")
            log.write(f"staged: {digest}\n")
        self._staged[image.name] = digest  # one dict write: atomic
        return digest

    def _promote(self, image: PlannedImage, detail: str | None) -> str | None:
        """Move IMAGE's version tag and `latest` to the manifest staged (by its digest: the
        one this run pushed after verifying it, or the one the plan observed), then delete
        the staged manifest; one the registry keeps is named, not failed. A failure after
        the version tag moved says so (its detail is the digest)."""
        registry = self._registry_for("promoting")
        if detail is None:
            raise TaskFailedError(f"the plan names no staging reference for {image.name}")
        staged, held = staged_reference(detail)
        digest = held or self._staged.get(image.name)
        if digest is None:
            raise TaskFailedError(f"this run staged no image of {image.name} to promote")
        require_identity(registry, self._settings.config.registry, detail, image.definition)
        _, tag, staging_path = self._reference(staged)
        _, _, path = self._reference(image.label)
        with self._log(image.name, f"promote {staged}@{digest} to {image.label}") as log:
            try:
                moved = registry.promote(staging_path, path, tag, digest)
            except RegistryError as exc:
                raise TaskFailedError(f"cannot promote {staged}: {exc}") from None
            if moved is None:
                raise TaskFailedError(f"the registry no longer has {staged}@{digest}")
            log.write(f"{image.label}: {moved}\n")
            try:
                registry.copy_tag(path, moved, "latest")
            except RegistryError as exc:
                why = f"{image.label} moved to {moved[:19]}, but cannot tag it latest: {exc}"
                raise TaskFailedError(why, detail=moved) from None
            log.write(f"latest: {moved}\n")
            left = registry.delete_manifest(staging_path, moved)
            if left is not None:
                log.write(f"{staged} left: {left}\n")
                return f"{moved}; staging kept: {left}"
            log.write(f"{staged} deleted\n")
        return f"{moved}; staging deleted"

    def _unstage(self, image: PlannedImage, held: str | None) -> str | None:
        """Delete the staged manifest an earlier run promoted and left (HELD: its staging
        reference, held to its digest); one the registry keeps is named, not failed."""
        registry = self._registry_for("removing staged images")
        staged, digest = staged_reference(held or "")
        if digest is None:
            raise TaskFailedError(f"the plan names no staged digest for {image.name}")
        _, _, staging_path = self._reference(staged)
        with self._log(image.name, f"unstage {staged}@{digest}") as log:
            left = registry.delete_manifest(staging_path, digest)
            log.write(f"{staged} {'left: ' + left if left else 'deleted'}\n")
        return f"staging kept: {left}" if left else "staging deleted"

    def _reference(self, label: str) -> tuple[str, str, str]:
        """LABEL's repository, tag (`latest` when it names none) and path in the registry."""
        repository, tag = split_label(label)
        return (
            repository,
            tag or "latest",
            repository_path(repository, self._settings.config.registry),
        )

    def _registry_for(self, what: str) -> RegistryClient:
        if self._registry is None:
            # The API gives every publishing run its registry client: this is a caller's bug.
            raise TaskFailedError(f"{what} needs the registry client of the run")
        return self._registry

    def _already_published(
        self, registry: RegistryClient, image: PlannedImage, ref: tuple[str, str], log: IO[str]
    ) -> bool:
        """Whether the registry has IMAGE's version (REF: repository path and tag) with the
        content built here; a version published with other content is never pushed over
        (the step fails)."""
        path, tag = ref
        try:
            published = registry.config_digest(path, tag)
        except RegistryError as exc:
            raise TaskFailedError(f"cannot check {image.label} before pushing: {exc}") from None
        if published is None:
            return False
        built = daemon.image_id(self._client, image.label)
        if published == built:
            return True
        why = (
            f"{image.label} is already published with other content (image {published[:19]}, "
            f"built here {built[:19]}): a published version is never pushed over; give the "
            f"image a new version (dockerpkg update {image.name})"
        )
        log.write(why + "\n")
        raise TaskFailedError(why)

    def _tag_latest(self, image: PlannedImage) -> str | None:
        """Point `latest` at the published version's manifest (the plan found it elsewhere)."""
        registry = self._registry_for("moving latest")
        _, tag, path = self._reference(image.label)
        with self._log(image.name, f"tag-latest {image.label}") as log:
            try:
                digest = registry.copy_tag(path, tag, "latest")
            except RegistryError as exc:
                raise TaskFailedError(f"cannot tag it latest: {exc}") from None
            if digest is None:
                raise TaskFailedError(f"the registry no longer has {image.label}")
            log.write(f"latest: {digest} (set in the registry to the manifest of {tag})\n")
        return digest

    def _push(self, repository: str, tag: str, log: IO[str]) -> str | None:
        return daemon.push(
            self._client,
            repository,
            tag,
            self._settings.credentials,
            log_file=log,
            cancel=self._cancel,
            timeout=self._settings.transfer_timeout,
        )


def _inline_cache(image: PlannedImage) -> dict[str, str]:
    """A build that imports cache from the registry also writes its own into the image, so
    the next build on any machine can import it (BuildKit's inline cache)."""
    return {"BUILDKIT_INLINE_CACHE": "1"} if image.cache_from else {}


__all__ = ["Executor", "Outcome", "Settings"]
