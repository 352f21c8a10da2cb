"""Carry out a build run (`apply_run`): its plan, with the run's ApplyOptions and nothing
else read then, on the environment's daemon or on several builders, a fleet of one or many
(dockerpkg.effects.scheduler), with a saved plan checked against the registry again first."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from dockerpkg.api.workspace import Workspace, left_behind, run_gates
from dockerpkg.core.applyoptions import ApplyOptions, resolved_options
from dockerpkg.core.builders import (
    Builder,
    BuilderSet,
    parse_builders_flag,
    several_builders_problem,
)
from dockerpkg.core.config import Config, engine_for
from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.plan import BuildEngine, Plan
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.report import Report
from dockerpkg.core.runenv import run_environment
from dockerpkg.core.secrets import SecretSource
from dockerpkg.core.staging import staged_labels
from dockerpkg.core.stepchoices import local_copies
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.homes import expand_user
from dockerpkg.effects.tasks import Interrupt, Listener
from dockerpkg.errors import DockerPkgError

if TYPE_CHECKING:
    from dockerpkg.effects.executor import Settings
    from dockerpkg.effects.registry.gate import RegistryGates


@attrs.frozen
class PlannedRun:
    """A build plan ready to carry out, with what carrying it out needs of its making: the
    tree it was made from, the credentials it publishes with, the run's environment (read
    once by the caller: the daemon's address, the registry's proxies and CA, the `env:`
    secrets, what a verification inherits). Made by api.plan_run or saved_run."""

    plan: Plan
    workspace: Workspace
    credentials: Credentials | None
    env: Mapping[str, str]
    # --builders given with a saved plan: they replace the plan's (None: the plan's).
    builders: BuilderSet | None = None
    # A plan read from a file: the registry is asked again before anything starts.
    saved: bool = False
    # The run's registry gates, one per host, shared by its observation, its recheck, its
    # registry client and its executors (None: apply_run makes them from the config).
    gates: RegistryGates | None = attrs.field(default=None, eq=False, repr=False)


def apply_run(
    planned: PlannedRun,
    options: ApplyOptions,
    listener: Listener,
    *,
    interrupt: Interrupt | None = None,
    echo: IO[str] | None = None,
) -> Report:
    """Carry out PLANNED's plan with OPTIONS (api.apply_options), all that the run adds to
    it; failures are in the report (which shows OPTIONS), not raised. LISTENER hears of
    each step; INTERRUPT stops or cancels the run; ECHO also gets the build output.

    A saved plan (PLANNED.saved) is checked against the registry first: the images
    published since it was made are neither built nor pushed (`recheck`). The plan's engine
    (options.engine) builds every image, whatever DOCKER_BUILDKIT says now.
    """
    plan, workspace = planned.plan, planned.workspace
    if workspace.interrupted is not None:
        raise left_behind(workspace.interrupted)
    chosen = _run_builders(plan, workspace, planned.builders)
    if planned.gates is None:
        planned = attrs.evolve(planned, gates=run_gates(workspace.config))
    published_since: tuple[str, ...] = ()
    if planned.saved:
        plan, published_since = recheck(
            plan, workspace.config, planned.credentials, planned.env, gates=planned.gates
        )
    settings = _settings(attrs.evolve(planned, plan=plan), options, echo)
    report = _run_on_builders(
        plan,
        chosen,
        settings,
        planned.credentials,
        planned.env,
        listener=listener,
        interrupt=interrupt,
    )
    return attrs.evolve(report, published_since=published_since, options=options)


def apply_build_plan(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    credentials: Credentials | None,
    *,
    run_dir: Path,
    listener: Listener,
    jobs: int | None = None,
    echo: IO[str] | None = None,
    interrupt: Interrupt | None = None,
    build_timeout: float | None = None,
    log_limit: int | None = None,
    builders: BuilderSet | None = None,
    saved: bool = False,
    verify_timeout: float | None = None,
    transfer_timeout: float | None = None,
) -> Report:
    """apply_run of PLAN made of WORKSPACE, with CREDENTIALS and ENV (see PlannedRun); the
    keywords are apply_options' (each None: the config's or the default) and apply_run's.

    SAVED (a plan read from a file): carry it out through saved_run instead, which runs the
    plan the tree gives, never PLAN as read. BUILDERS (--builders given with a saved plan)
    replace the plan's builders.
    """
    if workspace.interrupted is not None:
        raise left_behind(workspace.interrupted)
    planned = PlannedRun(plan, workspace, credentials, env, builders, saved)
    options = options_for(
        planned,
        str(run_dir),
        jobs=jobs,
        build_timeout=build_timeout,
        verify_timeout=verify_timeout,
        transfer_timeout=transfer_timeout,
        log_limit=log_limit,
    )
    return apply_run(planned, options, listener, interrupt=interrupt, echo=echo)


def apply_saved_build_plan(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    where: str,
    *,
    builders: str | None = None,
    secrets: tuple[SecretSource, ...] = (),
    **run: Any,
) -> Report:
    """Carry out a saved build PLAN (from the file WHERE) on its tree, as apply_build_plan
    with SAVED (see saved_run; RUN: apply_build_plan's keywords)."""
    return saved_build_run(plan, workspace, env, where, builders=builders, secrets=secrets)(**run)


def saved_build_run(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    where: str,
    *,
    builders: str | None = None,
    secrets: tuple[SecretSource, ...] = (),
) -> Callable[..., Report]:
    """What carries out a saved build PLAN given apply_build_plan's keywords: saved_run's
    run, checked before it is returned."""
    planned = saved_run(plan, workspace, env, where, builders=builders, secrets=secrets)
    return functools.partial(
        apply_build_plan,
        planned.plan,
        workspace,
        env,
        planned.credentials,
        builders=planned.builders,
        saved=True,
    )


def saved_run(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    where: str,
    *,
    builders: str | None = None,
    secrets: tuple[SecretSource, ...] = (),
) -> PlannedRun:
    """The run of a saved build PLAN (from the file WHERE) on its tree, checked, so a
    refusal comes before anything starts. The plan carried out is the one the tree and the
    config give for the state PLAN claims, and PLAN is refused unless it is that plan
    (api.saved.derived_build_plan); then the credentials it publishes with are found.
    BUILDERS: a --builders flag replacing the plan's builders; SECRETS: this run's --secret
    and --ssh sources, over the config's."""
    from dockerpkg.api.saved import derived_build_plan
    from dockerpkg.effects.credentials import credentials_for

    chosen = None if builders is None else parse_builders_flag(builders, workspace.config.builders)
    if chosen is not None and chosen.builders:
        _check_several(plan, chosen)
    derived = derived_build_plan(plan, workspace, where, secrets, chosen)
    credentials = credentials_for(workspace.config, env) if derived.publish else None
    if derived.publish and credentials is None:
        raise DockerPkgError.single(where, "the plan publishes but no credentials are found")
    return PlannedRun(derived, workspace, credentials, env, chosen, saved=True)


def recheck(
    plan: Plan,
    config: Config,
    credentials: Credentials | None,
    env: Mapping[str, str],
    *,
    gates: RegistryGates | None = None,
) -> tuple[Plan, tuple[str, ...]]:
    """PLAN without the images it would publish that are published now (one pipelined round
    of checks), and their labels. GATES: the run's (none: the client's own)."""
    from dockerpkg.effects.observe import registry_client
    from dockerpkg.effects.registry import RegistryError

    labels = publishing_labels(plan)
    if not labels or credentials is None:
        return plan, ()
    refs = {}
    for label in labels:
        repository, tag = split_label(label)
        refs[label] = (repository_path(repository, config.registry), tag or "latest")
    try:
        with registry_client(config, credentials, env, gates=gates) as registry:
            digests = registry.digests_many(refs.values())
    except RegistryError as exc:
        where = config.registry or "Docker Hub"
        raise DockerPkgError.single(
            where, f"{exc} (asked before applying the saved plan)"
        ) from None
    published = frozenset(label for label, ref in refs.items() if digests.get(ref) is not None)
    return without_published(plan, published)


def options_for(planned: PlannedRun, run_dir: str, **given: Any) -> ApplyOptions:
    """The options of PLANNED's run in RUN_DIR (see resolved_options): GIVEN (jobs, the
    timeouts, log_limit), else the config's, else the defaults."""
    return resolved_options(planned.workspace.config, _engine(planned.plan), run_dir, **given)


def _engine(plan: Plan) -> BuildEngine:
    if plan.options.engine is None:
        raise DockerPkgError.single(plan.directory, "the plan names no build engine")
    return plan.options.engine


def _settings(planned: PlannedRun, options: ApplyOptions, echo: IO[str] | None) -> Settings:
    """The executors' settings: the plan's decisions, OPTIONS, and nothing else."""
    from dockerpkg.effects.executor import Settings

    plan, workspace = planned.plan, planned.workspace
    return Settings(
        directory=Path(workspace.directory),
        run_dir=Path(options.run_dir),
        config=workspace.config,
        credentials=planned.credentials,
        jobs=options.jobs,
        push_jobs=options.push_jobs,
        pull_jobs=options.pull_jobs,
        echo=echo,
        links=workspace.links,
        build_timeout=options.build_timeout,
        verify_timeout=options.verify_timeout,
        transfer_timeout=options.transfer_timeout,
        log_limit=options.log_limit,
        build_engine=_engine(plan),
        env=planned.env,
        staged=staged_labels(plan),
        identities={i.label: i.definition for i in plan.images if i.definition is not None},
        secrets={secret.id: secret for secret in plan.secrets},
        ssh={agent.id: agent for agent in plan.ssh},
        local_copies=local_copies(plan),
        # One object for every builder's executor and the run's registry client.
        gates=planned.gates if planned.gates is not None else run_gates(workspace.config),
    )


def build_engine(
    config: Config, env: Mapping[str, str], given: BuildEngine | None = None
) -> BuildEngine:
    """The engine a plan records (BuildOptions.engine): GIVEN (--engine), else
    DOCKER_BUILDKIT in ENV, else the config's (`Config.engine`). Only planning asks: a plan
    is carried out with the engine it records."""
    return engine_for(config, run_environment(env).docker_buildkit, given)


def builder_env(
    builder: Builder, env: Mapping[str, str], cert_path: str | None = None
) -> dict[str, str]:
    """What a verification's `docker` needs to reach BUILDER: DOCKER_HOST, and for TLS
    CERT_PATH, the folder holding its files as the docker CLI names them (ca.pem, cert.pem,
    key.pem; see effects/certfolder; None: the client certificate's folder, `~` the home
    of ENV, the run's environment)."""
    given = {"DOCKER_HOST": builder.url}
    if builder.tls is not None:
        given["DOCKER_TLS_VERIFY"] = "1"
        cert = expand_user(builder.tls.cert, env)
        given["DOCKER_CERT_PATH"] = cert_path or os.path.dirname(cert)
    return given


def _run_builders(plan: Plan, workspace: Workspace, given: BuilderSet | None) -> list[Builder]:
    """The builders to run PLAN on: GIVEN (--builders with a saved plan), else the plan's,
    with their TLS files from the config (a plan holds no paths of them)."""
    if given is not None and given.builders:
        _check_several(plan, given)
        return list(given.builders)
    configured = {b.name: b for b in workspace.config.builders}
    chosen = []
    for planned in plan.builders:
        found = configured.get(planned.url)
        if planned.tls and (found is None or found.tls is None):
            raise DockerPkgError.single(
                planned.url, "the plan uses TLS for this builder, but the config names no TLS files"
            )
        chosen.append(Builder(planned.url, planned.slots, found.tls if found else None))
    return chosen


def _check_several(plan: Plan, given: BuilderSet) -> None:
    """--builders GIVEN with a saved plan: one builder for a plan made for one, several for
    one made for several (what counts as built differs)."""
    if given.several != (len(plan.builders) > 1):
        raise DockerPkgError.single(
            given.origin.path,
            f"the plan was made for {len(plan.builders) or 'the default'} builder(s); "
            "make it again with these builders",
        )


def _run_on_builders(
    plan: Plan,
    builders: list[Builder],
    settings: Settings,
    credentials: Credentials | None,
    env: Mapping[str, str],
    *,
    listener: Listener,
    interrupt: Interrupt | None,
) -> Report:
    """Run PLAN on BUILDERS (none: the environment's daemon), a fleet of one or several;
    of several, those that do not answer at the start are left out."""
    from dockerpkg.effects import daemon, scratch
    from dockerpkg.effects.certfolder import cert_folder
    from dockerpkg.effects.dockerdaemon import DockerDaemon
    from dockerpkg.effects.executor import Executor
    from dockerpkg.effects.observe import registry_client
    from dockerpkg.effects.scheduler import Scheduler, Worker

    several = len(builders) > 1
    problem = several_builders_problem(len(builders), publish=plan.publish)
    if problem is not None:
        raise DockerPkgError.single("--builders", problem)
    scratch.remove_abandoned()  # what runs killed by SIGKILL left
    registry = None
    if plan.publish:
        registry = registry_client(settings.config, credentials, env, gates=settings.gates)
    workers: list[Worker] = []
    clients: list[Any] = []
    held = contextlib.ExitStack()  # what lasts as long as the run (TLS file folders)
    lost: list[tuple[str, str]] = []
    try:
        targets: list[Builder | None] = [*builders] or [None]
        for builder in targets:
            try:
                client = daemon.connect(env) if builder is None else daemon.connect_to(builder, env)
            except daemon.DaemonError as exc:
                if not several:
                    raise DockerPkgError.single("docker", str(exc)) from None
                lost.append((builder.name if builder else "docker", str(exc)))
                continue
            clients.append(client)
            certs = None
            if builder is not None and builder.tls is not None:
                certs = held.enter_context(cert_folder(builder.tls, env))
            mine = (
                settings
                if builder is None
                else attrs.evolve(
                    settings, daemon_env=builder_env(builder, env, certs), builder_tls=builder.tls
                )
            )
            slots = settings.jobs if builder is None else builder.slots or settings.jobs
            workers.append(
                Worker(
                    name="docker" if builder is None else builder.name,
                    runner=Executor(
                        DockerDaemon(client), registry, attrs.evolve(mine, jobs=slots), listener
                    ),
                    slots=slots,
                    push_slots=settings.push_jobs,
                )
            )
        if not workers:
            raise DockerPkgError.single(
                "docker", "no builder answers: " + "; ".join(why for _, why in lost)
            )
        scheduler = Scheduler(
            workers, listener, settings.run_dir, settings.pull_jobs, several, lost, settings.gates
        )
        return scheduler.run(plan, interrupt)
    finally:
        if registry is not None:
            registry.close()
        for client in clients:
            client.close()
        held.close()
