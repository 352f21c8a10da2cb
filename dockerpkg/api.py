"""The library's entry points: read inputs, call the pure core, hand back values.

Each function reads the files it needs (through dockerpkg.effects) and otherwise defers to
the core, so tests can use the core directly and tools can use these without the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from dockerpkg.core.builders import (
    DEFAULT_BUILDERS,
    Builder,
    BuilderSet,
    parse_builders_flag,
)
from dockerpkg.core.config import DEFAULT_JOBS, BuildEngine, Config, key_location
from dockerpkg.core.configkeys import unknown_key_problems
from dockerpkg.core.labels import repository_path, split_label
from dockerpkg.core.plan import DEFAULT_OPTIONS, BuildOptions, Plan
from dockerpkg.core.planner import OFFLINE, Observed, inputs_digest, plan_build
from dockerpkg.core.recheck import publishing_labels, without_published
from dockerpkg.core.refs import guessed_refs
from dockerpkg.core.report import Report
from dockerpkg.core.serialize import plan_from_json
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.changelogs import Interrupted, interrupted, leftover_warning
from dockerpkg.effects.configfile import LoadedConfig, read_config
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.tasks import Interrupt, Listener
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.effects.workfiles import JOURNAL_NAME
from dockerpkg.errors import DockerPkgError, Problem, Severity, error

if TYPE_CHECKING:
    from dockerpkg.effects.apply import Settings


@attrs.frozen
class Workspace:
    """A tree and its config, read once and resolved."""

    directory: str
    config: Config
    snapshot: Snapshot
    tree: Tree
    digest: str
    warnings: tuple[Problem, ...]
    # Where links in image folders may lead; the build context follows the same rules.
    links: LinkPolicy
    config_files: tuple[str, ...] = ()  # the files the config was read from
    builders: BuilderSet = DEFAULT_BUILDERS  # the config's, or --builders
    # What an interrupted update left in the tree, if anything (a warning says so too).
    interrupted: Interrupted | None = None


def load_workspace(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    suffix: str = "",
    *,
    render: bool = True,
    builders: str | None = None,
) -> Workspace:
    """Read config and tree and resolve them; raises DockerPkgError with every problem.

    render=False leaves Dockerfiles unrendered where the dependency graph does not need them
    (build_plan renders what it builds): for runs that build little or nothing.
    """
    directory, loaded, snapshot, links = _read_inputs(directory, config_path, env)
    chosen = builder_set(loaded, builders)
    return _resolve(directory, loaded, snapshot, links, suffix, render=render, builders=chosen)


def builder_set(loaded: LoadedConfig, flag: str | None) -> BuilderSet:
    """The builders of a run: --builders (FLAG) if given, else the config's."""
    if flag is not None:
        return parse_builders_flag(flag, loaded.config.builders)
    if not loaded.config.builders:
        return DEFAULT_BUILDERS
    return BuilderSet(loaded.config.builders, key_location(loaded.files, "builders"))


def _read_inputs(
    directory: str, config_path: str | None, env: Mapping[str, str]
) -> tuple[str, LoadedConfig, Snapshot, LinkPolicy]:
    # Plans record the tree relative to the current folder: no absolute path in their JSON.
    directory = os.path.relpath(directory)
    loaded = read_config(config_path, env)
    links = link_policy(directory, loaded, env)
    return directory, loaded, read_snapshot(directory, links), links


def link_policy(directory: str, loaded: LoadedConfig, env: Mapping[str, str]) -> LinkPolicy:
    """Where links in DIRECTORY's image folders may lead: its repository, the config's
    `context_roots` (relative to the config file naming them), never to the config files or
    the Docker client's folder (they may hold credentials)."""
    roots = loaded.config.context_roots
    base = os.path.dirname(key_location(loaded.files, "context_roots").path) if roots else ""
    docker_folder = env.get("DOCKER_CONFIG") or os.path.join(
        env.get("HOME") or str(Path.home()), ".docker"
    )
    private = [path for path, _ in loaded.files] + [docker_folder]
    return LinkPolicy.for_tree(
        directory, [os.path.join(base, os.path.expanduser(root)) for root in roots], private
    )


def _resolve(
    directory: str,
    loaded: LoadedConfig,
    snapshot: Snapshot,
    links: LinkPolicy,
    suffix: str,
    *,
    render: bool,
    builders: BuilderSet = DEFAULT_BUILDERS,
) -> Workspace:
    analysis = analyze_tree(snapshot, loaded.config, suffix, render=render)
    keys = unknown_key_problems(loaded.files, loaded.config.extra, snapshot)
    left = interrupted(directory, snapshot.working)
    problems = loaded.warnings + tuple(keys) + tuple(leftover_warning(left)) + analysis.problems
    if not snapshot.images:
        # Most likely the wrong folder: doing nothing successfully would hide that.
        problems += (
            error(
                directory,
                "no images here: no folder holds both a Dockerfile.template and a changelog",
            ),
        )
    if analysis.tree is None or any(p.severity is Severity.ERROR for p in problems):
        raise DockerPkgError(problems)
    return Workspace(
        directory=directory,
        config=loaded.config,
        snapshot=snapshot,
        tree=analysis.tree,
        digest=inputs_digest(snapshot, loaded.config),
        warnings=problems,
        config_files=tuple(path for path, _ in loaded.files),
        builders=builders,
        links=links,
        interrupted=left,
    )


def interrupted_update(
    directory: str, config_path: str | None, env: Mapping[str, str]
) -> Interrupted | None:
    """What an interrupted update left in DIRECTORY (see dockerpkg.effects.changelogs), read
    without resolving the tree (which may not resolve)."""
    return interrupted(directory, _read_inputs(directory, config_path, env)[2].working)


def left_behind(found: Interrupted) -> DockerPkgError:
    """A run refused until the interrupted update FOUND is finished or undone (an update
    would write on top of it, a build publish half of it, a prune choose by it): its
    summary, then every file it left."""
    problems = [error(JOURNAL_NAME if found.journal else found.staged[0], found.summary())]
    problems += [
        error(path, "staged by the interrupted update; not read as part of the tree")
        for path in found.staged
    ]
    return DockerPkgError(problems)


def load_and_observe(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    suffix: str = "",
    *,
    render: bool = True,
    offline: bool = False,
    definitions: bool = False,
    builders: str | None = None,
) -> tuple[Workspace, Observed, Credentials | None]:
    """load_workspace, then observe_workspace, with the observation started early: the
    daemon and the registry answer while the tree is resolved. DEFINITIONS also reads the
    definitions recorded in published images (for drift: needs render=True). BUILDERS is
    --builders: with several, no daemon is asked (only published images count); with one,
    that one is."""
    from dockerpkg.effects.observe import Observation, credentials_for

    directory, loaded, snapshot, links = _read_inputs(directory, config_path, env)
    chosen = builder_set(loaded, builders)
    credentials = credentials_for(loaded.config, env)
    if offline:
        workspace = _resolve(
            directory, loaded, snapshot, links, suffix, render=render, builders=chosen
        )
        return workspace, Observed(offline=True, credentials=credentials is not None), credentials
    guesses = guessed_refs(snapshot, loaded.config, suffix)
    observation = Observation(
        loaded.config,
        credentials,
        env,
        guesses,
        definitions=definitions,
        builders=chosen.builders,
    )
    try:
        workspace = _resolve(
            directory, loaded, snapshot, links, suffix, render=render, builders=chosen
        )
    except BaseException:
        observation.cancel()
        raise
    try:
        observed = observation.result(workspace.tree)
    except DockerPkgError as exc:
        raise DockerPkgError([*workspace.warnings, *exc.problems]) from None
    return workspace, observed, credentials


def build_plan(
    workspace: Workspace, observed: Observed = OFFLINE, options: BuildOptions = DEFAULT_OPTIONS
) -> Plan:
    """The build plan of a workspace for the observed state (offline: nothing exists)."""
    return plan_build(
        workspace.tree,
        workspace.config,
        observed,
        directory=workspace.directory,
        digest=workspace.digest,
        options=options,
        builders=workspace.builders,
    )


def observe_workspace(
    workspace: Workspace, env: Mapping[str, str], *, offline: bool
) -> tuple[Observed, Credentials | None]:
    """Credentials (local files only), then, unless offline, the daemon and the registry."""
    # docker-py is loaded only by the runs that build: planning starts faster without it.
    from dockerpkg.effects.observe import credentials_for, observe

    credentials = credentials_for(workspace.config, env)
    if offline:
        return Observed(offline=True, credentials=credentials is not None), credentials
    return observe(workspace.tree, workspace.config, credentials, env), credentials


def load_saved_plan(
    path: str, config_path: str | None, env: Mapping[str, str]
) -> tuple[Plan, Workspace]:
    """A saved plan and its tree, refused when anything it was made from has changed."""
    plan = read_saved_plan(path)
    return plan, saved_plan_workspace(plan, path, config_path, env)


def read_saved_plan(path: str) -> Plan:
    """The plan saved in PATH, not yet checked against its tree (see saved_plan_workspace)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DockerPkgError.single(path, f"cannot read plan: {exc.strerror}") from None
    return plan_from_json(text, path)


def saved_plan_workspace(
    plan: Plan, path: str, config_path: str | None, env: Mapping[str, str]
) -> Workspace:
    """The tree PLAN (saved in PATH) was made from, read now; refused if anything changed.

    Separate from read_saved_plan so a caller can lock the plan's tree in between.
    """
    workspace = load_workspace(plan.directory, config_path, env, plan.options.suffix, render=False)
    if workspace.digest != plan.digest:
        stale = error(
            path,
            f"stale plan: the tree in {plan.directory} or the config changed since the plan "
            "was made; make a new plan",
        )
        raise DockerPkgError([stale, *_changed_changelogs(plan, workspace)])
    return workspace


def _changed_changelogs(plan: Plan, workspace: Workspace) -> list[Problem]:
    """The changelogs an update plan would edit whose newest version is no longer the one the
    plan was made from (someone else updated them meanwhile)."""
    versions = {
        image.spec.source.file("changelog"): image.spec.version
        for image in workspace.tree.images.values()
    }
    problems = []
    for edit in plan.edits:
        now = versions.get(edit.path)
        if now is None:
            problems.append(error(edit.path, "no longer the changelog of an image of the tree"))
        elif now != edit.old_version:
            message = f"changed since the plan was made: version {now}, not {edit.old_version}"
            problems.append(error(edit.path, message, 1))
    return problems


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
    the images published since the plan are neither built nor pushed (`recheck`).

    JOBS (builds at once; default: the builder's, `DEFAULT_JOBS`) is each engine's number of
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
        plan, published_since = recheck(plan, workspace.config, credentials)
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


def recheck(
    plan: Plan, config: Config, credentials: Credentials | None
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
        with registry_client(config, credentials) as registry:
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
    from dockerpkg.effects.apply import Settings

    engine = build_engine(workspace.config, env)
    jobs = DEFAULT_JOBS[engine] if jobs is None else jobs
    settings = Settings(
        directory=Path(workspace.directory),
        run_dir=run_dir,
        config=workspace.config,
        credentials=credentials,
        use_cache=plan.options.use_cache,
        jobs=jobs,
        echo=echo,
        links=workspace.links,
        build_timeout=_given_or(limits[0], workspace.config.build_timeout),
        verify_timeout=_given_or(limits[1], workspace.config.verify_timeout),
        transfer_timeout=workspace.config.transfer_timeout if limits[2] is None else limits[2],
        build_engine=engine,
    )
    if log_limit is not None:
        settings = attrs.evolve(settings, log_limit=log_limit)
    return _run_on_builders(
        plan, chosen, settings, credentials, env, listener=listener, interrupt=interrupt
    )


def _given_or(given: float | None, configured: float | None) -> float | None:
    return configured if given is None else given


def build_engine(config: Config, env: Mapping[str, str]) -> BuildEngine:
    """The config's builder (`Config.engine`), unless DOCKER_BUILDKIT (the docker CLI's
    switch) says."""
    switch = env.get("DOCKER_BUILDKIT", "").strip().lower()
    if switch in ("0", "false"):
        return BuildEngine.CLASSIC
    if switch in ("1", "true"):
        return BuildEngine.BUILDKIT
    return config.engine


def builder_env(builder: Builder) -> dict[str, str]:
    """What a verification's `docker` needs to reach BUILDER: DOCKER_HOST, and for TLS the
    folder of the client certificate (the docker CLI wants ca.pem, cert.pem, key.pem)."""
    env = {"DOCKER_HOST": builder.url}
    if builder.tls is not None:
        env["DOCKER_TLS_VERIFY"] = "1"
        env["DOCKER_CERT_PATH"] = os.path.dirname(os.path.expanduser(builder.tls.cert))
    return env


def _run_builders(plan: Plan, workspace: Workspace, given: BuilderSet | None) -> list[Builder]:
    """The builders to run PLAN on: GIVEN (--builders with a saved plan), else the plan's,
    with their TLS files from the config (a plan holds no paths of them)."""
    if given is not None and given.builders:
        if given.several != (len(plan.builders) > 1):
            raise DockerPkgError.single(
                given.origin.path,
                f"the plan was made for {len(plan.builders) or 'the default'} builder(s); "
                "make it again with these builders",
            )
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
    from dockerpkg.effects import daemon
    from dockerpkg.effects.apply import Executor
    from dockerpkg.effects.observe import registry_client
    from dockerpkg.effects.scheduler import Scheduler, Worker

    several = len(builders) > 1
    if several and not plan.publish:
        raise DockerPkgError.single(
            "--builders", "several builders need a plan that publishes; make the plan again"
        )
    registry = registry_client(settings.config, credentials) if plan.publish else None
    workers: list[Worker] = []
    clients: list[Any] = []
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
            mine = (
                settings
                if builder is None
                else attrs.evolve(settings, daemon_env=builder_env(builder))
            )
            slots = settings.jobs if builder is None else builder.slots or settings.jobs
            workers.append(
                Worker(
                    name="docker" if builder is None else builder.name,
                    runner=Executor(client, registry, attrs.evolve(mine, jobs=slots), listener),
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
