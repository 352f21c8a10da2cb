"""Library entry points for `graph` and `lint`: read the tree and config, call the core."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockerpkg.api.workspace import link_policy, load_workspace
from dockerpkg.core.config import Config, key_location
from dockerpkg.core.configkeys import unknown_key_problems
from dockerpkg.core.graph_render import Graph, select_graph
from dockerpkg.core.lint import Finding, RuleChoice, chosen_rules, lint_analysis, lint_tree
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.tree import Analysis
from dockerpkg.effects.changelogs import interrupted, leftover_warning
from dockerpkg.effects.configfile import read_config
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import Location, Problem

NO_CHOICE = RuleChoice()


def dependency_graph(
    directory: str, config_path: str | None, env: Mapping[str, str], select: str | None = None
) -> tuple[Graph, tuple[Problem, ...]]:
    """The graph of the images SELECT matches and everything they depend on, and the
    warnings reading the tree gave; raises DockerPkgError on bad input."""
    # The graph needs only which images each template names, not rendered Dockerfiles.
    workspace = load_workspace(directory, config_path, env, render=False)
    return select_graph(workspace.tree, select), workspace.warnings


@attrs.frozen
class TreeReview:
    """A tree read, rendered and linted once (for the pytest plugin, which makes items of
    each image's outcome): what `lint` reports and the Dockerfiles rendered on the way."""

    directory: str
    config: Config
    snapshot: Snapshot
    # Rendered without force_numeric_user, as lint renders (see core.lint.lint_analysis).
    analysis: Analysis
    findings: tuple[Finding, ...]


def review_tree(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    choice: RuleChoice = NO_CHOICE,
) -> TreeReview:
    """The tree's lint findings (as `lint` gives them) and its rendering, from one reading;
    a config or tree folder that cannot be read at all, or an unknown rule, raises
    DockerPkgError."""
    loaded = read_config(config_path, env)
    settings = loaded.config.lint
    configured = RuleChoice(settings.select, settings.extend_select, settings.ignore)
    rules = chosen_rules(
        [(configured, key_location(loaded.files, "lint")), (choice, Location("command line"))]
    )
    snapshot = read_snapshot(directory, link_policy(directory, loaded, env))
    keys = unknown_key_problems(loaded.files, loaded.config.extra, snapshot)
    left = leftover_warning(interrupted(directory, snapshot.working))
    analysis = lint_analysis(snapshot, loaded.config)
    findings = lint_tree(
        snapshot,
        loaded.config,
        directory=directory,
        extra=(*loaded.warnings, *keys, *left),
        rules=rules,
        analysis=analysis,
    )
    return TreeReview(directory, loaded.config, snapshot, analysis, findings)


def lint(
    directory: str,
    config_path: str | None,
    env: Mapping[str, str],
    choice: RuleChoice = NO_CHOICE,
) -> tuple[Finding, ...]:
    """Every lint finding for the tree, of the rules the config's `lint` key and CHOICE (the
    command line's) select; bad input in the tree is a finding, while a config or tree folder
    that cannot be read at all, or an unknown rule, raises DockerPkgError."""
    return review_tree(directory, config_path, env, choice).findings
