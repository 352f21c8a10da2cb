"""Pull steps: an image from the registry onto the daemon, named as the plan says; a failed
pull goes on with the daemon's own copy where the plan lets it. A pull for one platform
takes that platform's image, names it as the plan says and checks it is of that platform."""

from __future__ import annotations

from typing import IO

from dockerpkg.core.labels import split_label
from dockerpkg.core.runrules import local_copy_serves
from dockerpkg.effects.executor.platformcheck import LOCAL_COPY, PULLED, require_platform
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.executor.transfers import gated
from dockerpkg.effects.stagedidentity import require_identity
from dockerpkg.effects.tasks import TaskFailedError
from dockerpkg.effects.waits import DaemonError


def pull(
    run: Shared, label: str, log_name: str = "pulls", *, named: str | None = None
) -> str | None:
    """Pull LABEL, logging to LOG_NAME.log, and name it NAMED when given (an earlier run's
    staged parent, held to the digest the plan names); "local copy" when the pull failed and
    the plan lets the daemon's own copy serve."""
    settings = run.settings
    if named is not None:
        expected = settings.identities.get(named)
        require_identity(run.registry, settings.config.registry, label, expected)
    # Not beside a pull of LABEL for a platform, which moves LABEL's tag (see below).
    with run.log(log_name, f"pull {label}") as log, run.pull_lock(label):
        try:
            pulled = _daemon_pull(run, label, log)
        except DaemonError as exc:
            if _local_copy(run, label):
                log.write(f"{exc}; using the local copy\n")
                return "local copy"
            raise TaskFailedError(str(exc)) from None
        if pulled is not None:
            with run.lock:
                run.pulled[label] = pulled
        if named is not None:
            _name(run, label, named)
            log.write(f"{label} is {named} here\n")
    return None


def _daemon_pull(run: Shared, label: str, log: IO[str], platform: str | None = None) -> str | None:
    """The daemon's pull of LABEL (for PLATFORM when given), through its registry's gate
    (retried as the host's limits say); a pull the run's cancellation stopped fails the
    step, any other failure is the caller's DaemonError to judge."""
    try:
        return gated(
            run,
            label,
            log,
            lambda: run.daemon.pull(
                label,
                run.credentials_for(label),
                log,
                run.cancel,
                timeout=run.settings.transfer_timeout,
                platform=platform,
            ),
        )
    except DaemonError as exc:
        if run.cancel.is_set():
            raise run.failed(exc) from None
        raise


def _local_copy(run: Shared, label: str, held: str | None = None) -> bool:
    """Whether the plan lets LABEL's failed pull go on with the daemon's copy, and the daemon
    still holds one (HELD: the name that copy has here, when not LABEL)."""
    if label not in run.settings.local_copies:
        return False
    try:
        return local_copy_serves(held or label, run.daemon.local_labels())
    except DaemonError:
        return False


def _held(run: Shared, label: str) -> str | None:
    """The ID of the image the daemon holds under LABEL's tag, if any (None for a
    reference by digest, which a pull does not move)."""
    if "@" in label:
        return None
    try:
        return run.daemon.image_id(label)
    except DaemonError:
        return None


def _name(run: Shared, label: str, named: str) -> None:
    repository, tag = split_label(named)
    # Pulled by digest, the image has no tag of LABEL's: it is named by the digest.
    name, _, digest = label.partition("@")
    source = f"{split_label(name)[0]}@{digest}" if digest else label
    try:
        run.daemon.tag(source, repository, tag or "latest")
    except DaemonError as exc:
        raise run.failed(exc) from None


def pull_for_platform(
    run: Shared, label: str, named: str | None, platform: str, log_name: str = "pulls"
) -> str | None:
    """Pull LABEL's image for PLATFORM and name it NAMED (the plan's per-platform local
    name: no build ever uses a tag shared by platforms); "local copy" when the pull failed,
    the plan lets the daemon's own copy serve and the daemon holds NAMED.

    The daemon moves LABEL's own tag while it pulls (to whatever platform it pulled last):
    pulls of one label never overlap on a daemon, and each is named before the next starts.
    """
    target = named or label
    with run.log(log_name, f"pull {label} for {platform}") as log:
        with run.pull_lock(label):
            held = _held(run, label) if named is not None else None
            try:
                pulled = _daemon_pull(run, label, log, platform)
            except DaemonError as exc:
                if named is None or not _local_copy(run, label, named):
                    raise TaskFailedError(str(exc)) from None
                log.write(f"{exc}; using the local copy {named}\n")
                require_platform(run, named, platform, LOCAL_COPY, log)
                return "local copy"
            if named is not None:
                _name(run, label, named)
                log.write(f"{label} for {platform} is {named} here\n")
            # Within the lock: unnamed, TARGET is LABEL, which the next pull moves.
            require_platform(run, target, platform, PULLED, log)
            if held is not None:
                # LABEL's own tag back where it was, for builds of images without
                # platforms that use it (a pull by tag moved it to PLATFORM's image).
                _name(run, held, label)
        if pulled is not None:
            with run.lock:
                run.pulled[target] = pulled
    return None
