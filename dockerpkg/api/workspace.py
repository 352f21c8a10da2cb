"""A tree and its config, read once and resolved; and what the daemon and the registry
say about it (observed early, while the tree is parsed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from dockerpkg.core.builders import (
    DEFAULT_BUILDERS,
    BuilderSet,
    parse_builders_flag,
)
from dockerpkg.core.config import Config, key_location
from dockerpkg.core.configkeys import unknown_key_problems
from dockerpkg.core.imagelabels import NO_SOURCE, SourceFacts
from dockerpkg.core.plan import DEFAULT_OPTIONS, BuildOptions, Plan, PublishMode
from dockerpkg.core.planner import OFFLINE, Observed, inputs_digest, plan_build
from dockerpkg.core.registryrefs import guessed_refs
from dockerpkg.core.runenv import run_environment
from dockerpkg.core.secrets import (
    SecretKind,
    SecretSource,
    config_agents,
    config_sources,
    merged,
    source_problems,
)
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.stepchoices import test_files_to_look_for
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.changelogs import Interrupted, interrupted, leftover_warning
from dockerpkg.effects.configfile import LoadedConfig, read_config
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.gitfacts import source_facts
from dockerpkg.effects.homes import docker_config_folder, expand_user
from dockerpkg.effects.links import LinkPolicy
from dockerpkg.effects.secretvalues import source_facts as secret_facts
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.effects.workfiles import JOURNAL_NAME, REFS_JOURNAL
from dockerpkg.errors import DockerPkgError, Problem, Severity, error

if TYPE_CHECKING:
    from dockerpkg.effects.registry.gate import RegistryGates


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
    # The git checkout's commit and origin, for the images' labels.
    source: SourceFacts = NO_SOURCE
    # The config's build secrets and SSH agents: where each comes from (never a value).
    secrets: tuple[SecretSource, ...] = ()


def load_workspace(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    suffix: str = "",
    *,
    render: bool = True,
    builders: str | None = None,
    refs_journal: bool = False,
) -> Workspace:
    """Read config and tree and resolve them; raises DockerPkgError with every problem.

    render=False leaves Dockerfiles unrendered where the dependency graph does not need them
    (build_plan renders what it builds): for runs that build little or nothing. REFS_JOURNAL:
    the tree is read to finish an interrupted refs --apply, whose journal is no error then.
    """
    env = run_environment(env)  # the run's environment, as one typed value from here down
    directory, loaded, snapshot, links = _read_inputs(directory, config_path, env)
    chosen = builder_set(loaded, builders)
    return _resolve(
        directory,
        loaded,
        snapshot,
        links,
        suffix,
        env=env,
        render=render,
        builders=chosen,
        refs_journal=refs_journal,
    )


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
    private = [path for path, _ in loaded.files] + [docker_config_folder(env)]
    return LinkPolicy.for_tree(
        directory, [os.path.join(base, expand_user(root, env)) for root in roots], private
    )


def _resolve(
    directory: str,
    loaded: LoadedConfig,
    snapshot: Snapshot,
    links: LinkPolicy,
    suffix: str,
    *,
    env: Mapping[str, str],
    render: bool,
    builders: BuilderSet = DEFAULT_BUILDERS,
    refs_journal: bool = False,
) -> Workspace:
    analysis = analyze_tree(snapshot, loaded.config, suffix, render=render)
    keys = unknown_key_problems(loaded.files, loaded.config.extra, snapshot)
    left = interrupted(directory, snapshot.working)
    problems = loaded.warnings + tuple(keys) + tuple(leftover_warning(left)) + analysis.problems
    if REFS_JOURNAL in snapshot.working and not refs_journal:
        problems += (
            error(
                REFS_JOURNAL,
                "an interrupted refs --apply (or update --refs) is not finished: "
                f"`dockerpkg refs {directory}` finishes it",
            ),
        )
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
        source=source_facts(directory, env),
        secrets=_secret_sources(loaded),
    )


def _secret_sources(loaded: LoadedConfig) -> tuple[SecretSource, ...]:
    """The config's build secrets and SSH agents."""
    found: tuple[SecretSource, ...] = ()
    if loaded.config.secrets:
        origin = key_location(loaded.files, "secrets")
        found += config_sources(loaded.config.secrets, origin, os.path.dirname(origin.path))
    if loaded.config.ssh:
        origin = key_location(loaded.files, "ssh")
        found += config_agents(loaded.config.ssh, origin, os.path.dirname(origin.path))
    return found


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
    daemon: bool = True,
    publish: PublishMode | None = None,
    gates: RegistryGates | None = None,
) -> tuple[Workspace, Observed, Credentials | None]:
    """load_workspace, then observe_workspace, with the observation started early: the
    daemon and the registry answer while the tree is resolved. DEFINITIONS also reads the
    labels recorded in published images (definitions, for drift: needs render=True; bases)
    and the base images' digests; without DAEMON only the registry is asked. PUBLISH (else
    the config's `publish`) all_or_nothing asks for staged images too. BUILDERS is
    --builders: with several, no daemon is asked (only published images count); with one,
    that one is. GATES: the run's (see observe_tree)."""

    def options(config: Config) -> BuildOptions:
        return BuildOptions(suffix=suffix, publish=publish_mode(config, publish))

    workspace, observed, credentials, _, _ = observe_tree(
        directory,
        config_path,
        env,
        options,
        render=render,
        offline=offline,
        definitions=definitions,
        builders=builders,
        daemon=daemon,
        gates=gates,
    )
    return workspace, observed, credentials


def publish_mode(config: Config, given: PublishMode | None) -> PublishMode:
    """The run's publish mode: GIVEN (--publish), else CONFIG's `publish`. The one place it
    is worked out, for a build's plan and for the observation of an update alike."""
    return config.publish if given is None else given


def observe_tree(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    options: Callable[[Config], BuildOptions],
    *,
    render: bool = True,
    offline: bool = False,
    definitions: bool = False,
    builders: str | None = None,
    daemon: bool = True,
    registry: bool = True,
    gates: RegistryGates | None = None,
) -> tuple[Workspace, Observed, Credentials | None, BuildOptions, RegistryGates | None]:
    """load_and_observe, with the run's OPTIONS decided once from the config as soon as it
    is read: their suffix names the versions, their publish mode says whether staged images
    are asked for; returned with the rest, for the plan. Last, the run's registry gates:
    GATES, else new ones with the config's limits (offline: GATES, none made, so an offline
    plan loads no registry client)."""
    from dockerpkg.effects.credentials import credentials_for

    env = run_environment(env)  # the run's environment, as one typed value from here down
    directory, loaded, snapshot, links = _read_inputs(directory, config_path, env)
    chosen = builder_set(loaded, builders)
    credentials = credentials_for(loaded.config, env)
    wanted = options(loaded.config)
    suffix = wanted.suffix
    if offline:
        workspace = _resolve(
            directory, loaded, snapshot, links, suffix, env=env, render=render, builders=chosen
        )
        observed = Observed(offline=True, credentials=credentials is not None)
        return workspace, observed, credentials, wanted, gates
    # Loaded only to observe: the registry client brings requests in.
    from dockerpkg.effects.observe import Observation

    if gates is None:
        gates = run_gates(loaded.config)

    guesses = guessed_refs(snapshot, loaded.config, suffix)
    observation = Observation(
        loaded.config,
        credentials,
        env,
        guesses,
        definitions=definitions,
        builders=chosen.builders,
        daemon=daemon,
        staging=wanted.publish is PublishMode.ALL_OR_NOTHING,
        registry=registry,
        gates=gates,
    )
    try:
        workspace = _resolve(
            directory, loaded, snapshot, links, suffix, env=env, render=render, builders=chosen
        )
    except BaseException:
        observation.cancel()
        raise
    try:
        observed = observation.result(workspace.tree)
    except DockerPkgError as exc:
        raise DockerPkgError([*workspace.warnings, *exc.problems]) from None
    return workspace, observed, credentials, wanted, gates


def run_gates(config: Config) -> RegistryGates:
    """New registry gates for one command run, with CONFIG's `registries` limits: every
    registry client, reader, observation and executor of the run is given these."""
    # Loaded only here: the gates come with the registry client's package (requests).
    from dockerpkg.effects.registry.gate import RegistryGates

    return RegistryGates(config.registries)


def build_plan(
    workspace: Workspace,
    observed: Observed = OFFLINE,
    options: BuildOptions = DEFAULT_OPTIONS,
    secrets: tuple[SecretSource, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Plan:
    """The build plan of a workspace for the observed state (offline: nothing exists);
    SECRETS (--secret, --ssh) over the config's. The sources of the secrets it uses must be
    regular files (or, with ENV, variables) of at most 500 KiB: else an error where each
    was given."""
    sources = merged(workspace.secrets, secrets)
    plan = plan_build(
        workspace.tree,
        workspace.config,
        with_test_files(observed, workspace),
        directory=workspace.directory,
        digest=workspace.digest,
        options=options,
        builders=workspace.builders,
        source=workspace.source,
        secrets=sources,
    )
    # Only what the plan uses: a source named in the config for other trees is no error.
    used = {(s.id, s.kind, s.where) for s in plan.secrets}
    checked = [s for s in sources if (s.id, s.kind, s.where) in used]
    if env is None:
        checked = [s for s in checked if s.kind is SecretKind.FILE]
    problems = source_problems(checked, secret_facts(checked, env or {}))
    if problems:
        raise DockerPkgError(problems)
    return plan


def with_test_files(observed: Observed, workspace: Workspace) -> Observed:
    """OBSERVED with the files outside the images' folders that WORKSPACE's verifications
    name (`{path}/../x`) found on disk now: the tree's snapshot does not hold them, and the
    plan decides from them whether those verifications run."""
    wanted = test_files_to_look_for(workspace.tree, workspace.config)
    found = {f for f in wanted if os.path.exists(os.path.join(workspace.directory, f))}
    return attrs.evolve(observed, test_files=observed.test_files | found)


def observe_workspace(
    workspace: Workspace,
    env: Mapping[str, str],
    *,
    offline: bool,
    gates: RegistryGates | None = None,
) -> tuple[Observed, Credentials | None]:
    """Credentials (local files only), then, unless offline, the daemon and the registry
    (GATES: the run's; none: new ones for this observation)."""
    # docker-py is loaded only by the runs that build: planning starts faster without it.
    from dockerpkg.effects.credentials import credentials_for

    credentials = credentials_for(workspace.config, env)
    if offline:
        return Observed(offline=True, credentials=credentials is not None), credentials
    from dockerpkg.effects.observe import observe

    observed = observe(workspace.tree, workspace.config, credentials, env, gates=gates)
    return observed, credentials
