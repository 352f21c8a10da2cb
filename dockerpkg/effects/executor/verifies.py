"""Verify steps: an image's test, run as the config says within the verification's time;
skipped where the plan says the image has no test."""

from __future__ import annotations

from dockerpkg.core.plan import PlannedImage, Step
from dockerpkg.core.runrules import log_name, verification_call
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.tasks import TaskCancelledError, TaskFailedError


def verify(run: Shared, image: PlannedImage, step: Step) -> str | None:
    """Run IMAGE's verification (STEP: its verify step); None when it passed. A platform
    image's test runs against its platform label and is told its platform."""
    if step.missing_test is not None:
        return f"skipped: no {step.missing_test}"
    settings = run.settings
    folder = str((settings.directory / image.path).resolve())
    call = verification_call(
        settings.config,
        image.label,
        folder,
        (settings.env, settings.daemon_env),
        step.platform or image.platform,
    )
    timeout = settings.verify_timeout
    with run.log(image.name, f"verify {image.label}") as log:
        finished = run.daemon.verify(call.argv, call.env, log, run.cancel, timeout)
        if finished.timed_out:
            log.write(f"verification timed out after {timeout:g} s: stopped\n")
    if finished.cancelled or run.cancel.is_set():
        raise TaskCancelledError("cancelled")
    if finished.timed_out:
        raise TaskFailedError(f"verification timed out after {timeout:g} s")
    if finished.returncode != 0:
        raise TaskFailedError(
            f"verification failed (exit {finished.returncode}); see {log_name(image.name)}"
        )
    return None
