"""Pull steps: an image from the registry onto the daemon, named as the plan says; a failed
pull goes on with the daemon's own copy where the plan lets it."""

from __future__ import annotations

from dockerpkg.core.labels import split_label
from dockerpkg.core.runrules import local_copy_serves
from dockerpkg.effects.executor.shared import Shared
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
    with run.log(log_name, f"pull {label}") as log:
        try:
            pulled = run.daemon.pull(
                label,
                run.credentials_for(label),
                log,
                run.cancel,
                timeout=settings.transfer_timeout,
            )
        except DaemonError as exc:
            if run.cancel.is_set():
                raise run.failed(exc) from None
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


def _local_copy(run: Shared, label: str) -> bool:
    """Whether the plan lets LABEL's failed pull go on with the daemon's copy, and the daemon
    still holds one."""
    if label not in run.settings.local_copies:
        return False
    try:
        return local_copy_serves(label, run.daemon.local_labels())
    except DaemonError:
        return False


def _name(run: Shared, label: str, named: str) -> None:
    repository, tag = split_label(named)
    # Pulled by digest, the image has no tag of LABEL's: it is named by the digest.
    name, _, digest = label.partition("@")
    source = f"{split_label(name)[0]}@{digest}" if digest else label
    try:
        run.daemon.tag(source, repository, tag or "latest")
    except DaemonError as exc:
        raise run.failed(exc) from None
