"""The Executor: runs the steps of one plan on one daemon, as dockerpkg.effects.scheduler
asks; each kind of step is carried out by its own module (pulls, builds, verifies,
registrysteps), with what they share in `shared`."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from dockerpkg.core.plan import Op, Plan, PlannedImage, Step
from dockerpkg.core.report import Report
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.executor import builds, indexes, pulls, registrysteps, verifies
from dockerpkg.effects.executor.settings import Settings
from dockerpkg.effects.executor.shared import Shared
from dockerpkg.effects.ports import Daemon, Registry
from dockerpkg.effects.registry.errors import RegistryCancelledError
from dockerpkg.effects.scheduler import Scheduler, Worker
from dockerpkg.effects.tasks import Interrupt, Listener, TaskCancelledError, TaskFailedError

StepRun = Callable[[Shared, PlannedImage, Step], "str | None"]


def _stage(run: Shared, image: PlannedImage, step: Step) -> str | None:
    if step.label is None:
        raise TaskFailedError(f"the plan names no staging reference for {image.name}")
    return registrysteps.stage(run, image, step.label)


# What carries out each kind of step of an image (pulls go through Executor.pull).
_STEPS: dict[Op, StepRun] = {
    Op.BUILD_STAGE: builds.build_stage,
    Op.BUILD: builds.build,
    Op.VERIFY: verifies.verify,
    Op.PUBLISH: lambda run, image, step: (
        indexes.publish_platform(run, image)
        if image.platform is not None
        else registrysteps.publish(run, image)
    ),
    Op.STAGE: _stage,
    Op.PROMOTE: lambda run, image, step: registrysteps.promote(run, image, step.detail),
    Op.UNSTAGE: lambda run, image, step: registrysteps.unstage(run, image, step.label),
    Op.TAG_LATEST: lambda run, image, step: registrysteps.tag_latest(run, image),
    Op.INDEX: lambda run, image, step: indexes.put_index(run, image),
}


class Executor:
    """Runs the steps of one plan on DAEMON; one instance per run and daemon."""

    def __init__(
        self,
        daemon: Daemon,
        registry: Registry | None,
        settings: Settings,
        listener: Listener,
    ) -> None:
        self._run = Shared(daemon, registry, settings)
        self._listener = listener
        settings.registry_stop.watch(registry)

    def cancel(self) -> None:
        """Abort running work: streams end at their next chunk, verifications are killed
        (their whole process groups), and so does every wait of the registry client (a gate
        waiting out a registry's limit), unless promotions have started."""
        self._run.cancel.set()
        self._run.settings.registry_stop.stop()

    def step_runner(self, step: Step, image: PlannedImage | None) -> Callable[[], str | None]:
        """What runs STEP (of IMAGE) on this executor's daemon."""
        run = self._run
        if step.op is Op.PULL:
            # A pull's detail, when the plan gives one, is the name the image gets here (a
            # staged parent, pulled from its staging repository; one platform's image).
            label, platform = step.label or step.image, step.platform
            if platform is not None:
                return lambda: pulls.pull_for_platform(run, label, step.detail, platform)
            return lambda: pulls.pull(run, label, named=step.detail)
        assert image is not None, f"plan step for unknown image {step.image}"
        action = _STEPS[step.op]
        stop = run.settings.registry_stop
        if step.op is Op.PROMOTE:
            stop.promotion_starts()  # on the scheduling thread, before the step can start

        def go() -> str | None:
            try:
                return action(run, image, step)
            except (TaskFailedError, RegistryCancelledError):
                if stop.stopped and run.cancel.is_set():
                    # The registry's waits were cut by the cancellation, not by a fault.
                    raise TaskCancelledError("cancelled") from None
                raise

        return go

    def pull(
        self, label: str, log_name: str, named: str | None = None, platform: str | None = None
    ) -> str | None:
        """Pull LABEL, logging to LOG_NAME's log (an image's log, for its parents), and name
        it NAMED when given; from its staging repository when the run stages it. PLATFORM:
        that platform's image of LABEL, checked to be of it."""
        if platform is not None:
            return pulls.pull_for_platform(self._run, label, named, platform, log_name)
        staged = self._run.settings.staged.get(label)
        if staged is not None and named is None:
            return pulls.pull(self._run, staged, log_name, named=label)
        return pulls.pull(self._run, label, log_name, named=named)

    def reachable(self) -> bool:
        """Whether the daemon answers a ping (after a failure: is the builder lost?)."""
        return self._run.daemon.reachable()

    def credentials_for(self, label: str) -> Credentials | None:
        """The run's credentials if LABEL is in the config's registry (see Shared)."""
        return self._run.credentials_for(label)

    def finish(self) -> None:
        """The run is over: artifacts of stages whose build never ran (interrupted, or a
        parent failed) go."""
        run = self._run
        with run.lock:
            for folder in run.artifacts.values():
                shutil.rmtree(folder, ignore_errors=True)
            run.artifacts.clear()

    def run(self, plan: Plan, interrupt: Interrupt | None = None) -> Report:
        """Run PLAN on this executor's daemon alone: a fleet of one."""
        settings = self._run.settings
        worker = Worker("docker", self, settings.jobs, settings.push_jobs)
        scheduler = Scheduler(
            [worker], self._listener, settings.run_dir, settings.pull_jobs, gates=settings.gates
        )
        return scheduler.run(plan, interrupt)
