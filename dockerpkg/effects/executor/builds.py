"""Build steps: an image from its rendered Dockerfile, labelled as the plan says, and an
image's build stage, whose /build goes into the image's build context."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from dockerpkg.core.bases import BASES_LABEL, bases_label, chosen_digest, pinned
from dockerpkg.core.config import proxy_args
from dockerpkg.core.imagelabels import labelled_build
from dockerpkg.core.plan import PlannedImage, Step
from dockerpkg.effects import scratch
from dockerpkg.effects.buildcontext import build_context
from dockerpkg.effects.buildsession import Sources
from dockerpkg.effects.executor.platformcheck import BUILT, require_platform
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.ports import BuildRequest
from dockerpkg.effects.tasks import TaskCancelledError, TaskFailedError
from dockerpkg.effects.tree import BUILD_TEMPLATE
from dockerpkg.effects.waits import DaemonError, Patience, TimedOutError


def build(run: Shared, image: PlannedImage, step: Step) -> str | None:
    """Build IMAGE (STEP: its build step); its ID, and the digests of what it was built on
    where its bases label records them. A platform image is built for its platform, and the
    image made is checked to be of it."""
    settings = run.settings
    platform = step.platform or image.platform
    timeout = settings.build_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    with run.log(image.name, f"build {image.label}") as log, _context(run, image) as context:
        if image.build_dockerfile is not None:
            _take_artifacts(run, image, context)
        try:
            if image.dockerfile is None:
                raise TaskFailedError(f"the plan holds no rendered Dockerfile for {image.name}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimedOutError("timed out")
            bases = _bases(run, image)
            labels = dict(image.labels)
            if image.records is not None:
                labels[BASES_LABEL] = bases_label(bases)
                log.write(f"{BASES_LABEL}: {labels[BASES_LABEL]}\n")
            made = labelled_build(image.dockerfile, labels, settings.build_engine)
            (context / "Dockerfile").write_text(made.dockerfile, encoding="utf-8")
            with _session(run, image, Patience(run.cancel, deadline)) as session:
                request = BuildRequest(
                    engine=settings.build_engine,
                    use_cache=step.use_cache,
                    buildargs={**proxy_args(settings.config), **_inline_cache(image)},
                    container_limits=settings.config.container_limits,
                    labels=made.labels or None,
                    deadline=deadline,
                    session=session,
                    cache_from=image.cache_from,
                    registry_auth=_registry_auth(run),
                    platform=platform,
                )
                image_id = run.daemon.build(context, image.label, request, log, run.cancel)
            if platform is not None:
                require_platform(run, image.label, platform, BUILT, log)
        except TimedOutError:
            log.write(f"build timed out after {timeout:g} s: stopped\n")
            raise TaskFailedError(f"build timed out after {timeout:g} s") from None
        except DaemonError as exc:
            raise run.failed(exc) from None
    if not bases:
        return image_id
    return f"{image_id} on " + ", ".join(f"{ref}@{digest}" for ref, digest in bases.items())


def build_stage(run: Shared, image: PlannedImage, step: Step) -> str | None:
    """Build STEP's stage image from the rendered build template, in a context of its own,
    and keep its /build for the image's build; the container and the stage image go
    whatever happens."""
    where = BUILD_TEMPLATE if image.path == "." else f"{image.path}/{BUILD_TEMPLATE}"
    stage = step.label
    if stage is None:
        raise TaskFailedError(f"the plan names no stage image for {where}")
    if image.build_dockerfile is None:
        raise TaskFailedError(f"the plan holds no rendered {where}")
    settings = run.settings
    artifacts = Path(scratch.make_folder(f"stage-{image.name}"))
    kept = False
    try:
        with (
            run.log(image.name, f"build stage {stage} from {where}") as log,
            _context(run, image) as context,
        ):
            (context / "Dockerfile.build").write_text(image.build_dockerfile, encoding="utf-8")
            request = BuildRequest(
                engine=settings.build_engine,
                use_cache=step.use_cache,
                buildargs=proxy_args(settings.config),
                container_limits=settings.config.container_limits,
                dockerfile="Dockerfile.build",
                platform=step.platform,
            )
            try:
                built = run.daemon.build_stage(
                    context, stage, artifacts, request, log=log, cancel=run.cancel
                )
            except DaemonError as exc:
                if run.cancel.is_set():
                    raise TaskCancelledError("cancelled") from None
                raise TaskFailedError(f"build stage from {where} failed: {exc}") from None
            if built.left is not None:
                raise TaskFailedError(f"build stage from {where}: {built.left}")
        with run.lock:
            run.artifacts[image.name] = artifacts
        kept = True
    finally:
        if not kept:
            shutil.rmtree(artifacts, ignore_errors=True)
    return built.image_id


def _context(run: Shared, image: PlannedImage) -> contextlib.AbstractContextManager[Path]:
    """A temporary copy of IMAGE's folder, checked against the plan."""
    settings = run.settings
    links = settings.links or LinkPolicy.for_tree(str(settings.directory))
    return build_context(settings.directory, image.path, image.name, links, image)


def _take_artifacts(run: Shared, image: PlannedImage, context: Path) -> None:
    """Copy build/ from the image's build stage into its CONTEXT; the stage's folder goes."""
    with run.lock:
        artifacts = run.artifacts.pop(image.name, None)
    if artifacts is None:
        raise TaskFailedError(
            f"{image.name} has a {BUILD_TEMPLATE} but its build stage did not run; "
            "make the plan again"
        )
    try:
        shutil.copytree(artifacts / "build", context / "build", symlinks=True, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise TaskFailedError(f"cannot copy build/ into the build context: {exc}") from None
    finally:
        shutil.rmtree(artifacts, ignore_errors=True)


def _registry_auth(run: Shared) -> dict[str, dict[str, str]] | None:
    """The run's login for its registry, for the cache imports of a build."""
    credentials = run.settings.credentials
    registry = run.settings.config.registry
    if credentials is None or not registry:
        return None
    return {registry: {"username": credentials.username, "password": credentials.password}}


def _session(
    run: Shared, image: PlannedImage, patience: Patience
) -> contextlib.AbstractContextManager[str | None]:
    settings = run.settings
    logins = {
        host: (login["username"], login["password"])
        for host, login in (_registry_auth(run) or {}).items()
    }
    return run.daemon.session(
        image,
        settings.build_engine,
        Sources(settings.secrets, settings.ssh, logins),
        (settings.env, {**settings.env, **settings.daemon_env}),
        settings.builder_tls,
        patience=patience,
    )


def _bases(run: Shared, image: PlannedImage) -> dict[str, str]:
    """The manifest digest of each image IMAGE's build records, as the daemon holds it now
    (what the build will use), the one its tag resolved to when pulled in this run where
    the daemon holds several; one the daemon holds by no digest (made locally) is left out."""
    found: dict[str, str] = {}
    for ref in image.records or ():
        pin = image.pins.get(ref)
        held = run.daemon.repo_digests(ref if pin is None else pinned(ref, pin))
        with run.lock:
            pulled = run.pulled.get(ref)
        digest = chosen_digest(held, pin, pulled)
        if digest is not None:
            found[ref] = digest
    return found


def _inline_cache(image: PlannedImage) -> dict[str, str]:
    """A build that imports cache from the registry also writes its own into the image, so
    the next build on any machine can import it (BuildKit's inline cache)."""
    return {"BUILDKIT_INLINE_CACHE": "1"} if image.cache_from else {}
