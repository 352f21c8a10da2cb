"""Carry out a build plan: on the environment's daemon or on several builders, a fleet
of one or many (dockerpkg.effects.scheduler), with a saved plan checked against the
registry again first."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from dockerpkg.api.workspace import Workspace, left_behind
from dockerpkg.core.builders import (
    Builder,
    BuilderSet,
    parse_builders_flag,
    several_builders_problem,
)
from dockerpkg.core.config import DEFAULT_JOBS, Config, engine_for
from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.plan import BuildEngine, Plan
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.report import Report
from dockerpkg.core.secrets import SecretSource
from dockerpkg.core.staging import staged_labels
from dockerpkg.core.stepchoices import local_copies
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.tasks import Interrupt, Listener
from dockerpkg.errors import DockerPkgError

if TYPE_CHECKING:
    from dockerpkg.effects.executor import Settings


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
    """Execute the plan's steps; failures are in the report, not raised.

    SAVED (a plan read from a file, maybe hours old): the registry is asked again first, and
    the images published since the plan are neither built nor pushed (`recheck`). A plan read
    from a file is a claim: carry it out through saved_build_run (or apply_saved_build_plan),
    which runs the plan the tree gives, never PLAN as read.

    The plan's engine (options.engine) builds every image: DOCKER_BUILDKIT in ENV counted
    when the plan was made, not now.

    JOBS (builds at once; default: the engine's, `DEFAULT_JOBS`) is each builder's number of
    slots when the builders do not say.

    BUILDERS (--builders given with a saved plan) replace the plan's builders.

    BUILD_TIMEOUT (seconds; default: the config's `build_timeout`, else none) bounds each
    image's build, VERIFY_TIMEOUT its verification (`verify_timeout`), TRANSFER_TIMEOUT each
    wait of a pull or push for the daemon (`transfer_timeout`, 300 s); LOG_LIMIT
    (characters) bounds what each step writes to its log.
    """
    if workspace.interrupted is not None:
        raise left_behind(workspace.interrupted)
    chosen = _run_builders(plan, workspace, builders)
    published_since: tuple[str, ...] = ()
    if saved:
        plan, published_since = recheck(plan, workspace.config, credentials, env)
    report = _run_plan(
        plan,
        workspace,
        env,
        credentials,
        chosen,
        run_dir=run_dir,
        listener=listener,
        jobs=jobs,
        echo=echo,
        interrupt=interrupt,
        limits=(build_timeout, verify_timeout, transfer_timeout),
        log_limit=log_limit,
    )
    return attrs.evolve(report, published_since=published_since)


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
    with SAVED (see saved_build_run; RUN: apply_build_plan's keywords)."""
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
    """What carries out a saved build PLAN (from the file WHERE) on its tree, given
    apply_build_plan's keywords: checked before it is returned, so a refusal comes before
    anything starts. The plan carried out is the one the tree and the config give for the
    state PLAN claims, and PLAN is refused unless it is that plan
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
    return functools.partial(
        apply_build_plan, derived, workspace, env, credentials, builders=chosen, saved=True
    )


def recheck(
    plan: Plan, config: Config, credentials: Credentials | None, env: Mapping[str, str]
) -> tuple[Plan, tuple[str, ...]]:
    """PLAN without the images it would publish that are published now (one pipelined round
    of checks), and their labels."""
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
        with registry_client(config, credentials, env) as registry:
            digests = registry.digests_many(refs.values())
    except RegistryError as exc:
        where = config.registry or "Docker Hub"
        raise DockerPkgError.single(
            where, f"{exc} (asked before applying the saved plan)"
        ) from None
    published = frozenset(label for label, ref in refs.items() if digests.get(ref) is not None)
    return without_published(plan, published)


def _run_plan(
    plan: Plan,
    workspace: Workspace,
    env: Mapping[str, str],
    credentials: Credentials | None,
    chosen: list[Builder],
    *,
    run_dir: Path,
    listener: Listener,
    jobs: int | None,
    echo: IO[str] | None,
    interrupt: Interrupt | None,
    limits: tuple[float | None, float | None, float | None],
    log_limit: int | None,
) -> Report:
    """Run PLAN; LIMITS: the build, verify and transfer timeouts given (None: the config's)."""
    from dockerpkg.effects.executor import Settings

    engine = plan.options.engine
    if engine is None:
        raise DockerPkgError.single(plan.directory, "the plan names no build engine")
    jobs = DEFAULT_JOBS[engine] if jobs is None else jobs
    settings = Settings(
        directory=Path(workspace.directory),
        run_dir=run_dir,
        config=workspace.config,
        credentials=credentials,
        jobs=jobs,
        echo=echo,
        links=workspace.links,
        build_timeout=_given_or(limits[0], workspace.config.build_timeout),
        verify_timeout=_given_or(limits[1], workspace.config.verify_timeout),
        transfer_timeout=workspace.config.transfer_timeout if limits[2] is None else limits[2],
        build_engine=engine,
        env=env,
        staged=staged_labels(plan),
        identities={i.label: i.definition for i in plan.images if i.definition is not None},
        secrets={secret.id: secret.source for secret in plan.secrets},
        ssh={agent.id: agent.source for agent in plan.ssh},
        local_copies=local_copies(plan),
    )
    if log_limit is not None:
        settings = attrs.evolve(settings, log_limit=log_limit)
    return _run_on_builders(
        plan, chosen, settings, credentials, env, listener=listener, interrupt=interrupt
    )


def _given_or(given: float | None, configured: float | None) -> float | None:
    return configured if given is None else given


def build_engine(
    config: Config, env: Mapping[str, str], given: BuildEngine | None = None
) -> BuildEngine:
    """The builder a plan records (BuildOptions.engine): GIVEN (--engine), else
    DOCKER_BUILDKIT in ENV, else the config's (`Config.engine`). Only planning asks: a plan
    is carried out with the engine it records."""
    return engine_for(config, env.get("DOCKER_BUILDKIT"), given)


def builder_env(builder: Builder, cert_path: str | None = None) -> dict[str, str]:
    """What a verification's `docker` needs to reach BUILDER: DOCKER_HOST, and for TLS
    CERT_PATH, the folder holding its files as the docker CLI names them (ca.pem, cert.pem,
    key.pem; see effects/certfolder; None: the client certificate's folder)."""
    env = {"DOCKER_HOST": builder.url}
    if builder.tls is not None:
        env["DOCKER_TLS_VERIFY"] = "1"
        env["DOCKER_CERT_PATH"] = cert_path or os.path.dirname(os.path.expanduser(builder.tls.cert))
    return env


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
    registry = registry_client(settings.config, credentials, env) if plan.publish else None
    workers: list[Worker] = []
    clients: list[Any] = []
    held = contextlib.ExitStack()  # what lasts as long as the run (TLS file folders)
    lost: list[tuple[str, str]] = []
    try:
        targets: list[Builder | None] = [*builders] or [None]
        for builder in targets:
            try:
                client = daemon.connect(env) if builder is None else daemon.connect_to(builder)
            except daemon.DaemonError as exc:
                if not several:
                    raise DockerPkgError.single("docker", str(exc)) from None
                lost.append((builder.name if builder else "docker", str(exc)))
                continue
            clients.append(client)
            certs = None
            if builder is not None and builder.tls is not None:
                certs = held.enter_context(cert_folder(builder.tls))
            mine = (
                settings
                if builder is None
                else attrs.evolve(
                    settings, daemon_env=builder_env(builder, certs), engine_tls=builder.tls
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
            workers, listener, settings.run_dir, settings.pull_jobs, several=several, lost=lost
        )
        return scheduler.run(plan, interrupt)
    finally:
        if registry is not None:
            registry.close()
        for client in clients:
            client.close()
        held.close()
