"""Build planning: tree + config + observed state -> Plan. docker-pkg's rules, made explicit.

What each image's state is and which steps bring the selection to published live here; the
plan's other parts have modules of their own: `core.latest` (moving `latest`),
`core.findings` (drift, moved bases), `core.plansecrets` (secret and SSH mounts), and
`core.observed` (the facts planning starts from, still importable from here).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping

import attrs

from dockerpkg.core.bases import absent_base_notes, pin_plan, pins_of, with_records
from dockerpkg.core.builders import DEFAULT_BUILDERS, BuilderSet, publishing_required
from dockerpkg.core.changelog import versions_newest_first
from dockerpkg.core.config import Config, public_values
from dockerpkg.core.definition import Definitions, definitions
from dockerpkg.core.graph import reachable
from dockerpkg.core.imagelabels import NO_SOURCE, SourceFacts, image_labels
from dockerpkg.core.imagestate import State, image_state, state_of
from dockerpkg.core.labels import is_docker_tag, stage_repository
from dockerpkg.core.latest import latest_steps
from dockerpkg.core.needs import with_needs
from dockerpkg.core.observed import OFFLINE, Observed
from dockerpkg.core.plan import (
    DEFAULT_OPTIONS,
    Action,
    BuildOptions,
    CacheMode,
    Op,
    Plan,
    PlannedBuilder,
    PlannedImage,
    PublishMode,
    Reason,
    Step,
)
from dockerpkg.core.plansecrets import with_secrets
from dockerpkg.core.platforms import Platform
from dockerpkg.core.platformstaging import (
    index_promotions,
    is_platform_related,
    one_builder,
    staging_target,
)
from dockerpkg.core.platformsteps import (
    missing_base_platforms,
    pin_platforms,
    platform_findings,
    platform_notes,
    platform_pulls,
    with_children,
)
from dockerpkg.core.platformtree import (
    Expansion,
    expanded,
    index_states,
    with_indexes,
    with_platform_images,
)
from dockerpkg.core.secrets import SecretSource
from dockerpkg.core.spec import Snapshot
from dockerpkg.core.staging import (
    Staged,
    by_digest,
    promotions,
    staging_label,
    staging_repository,
    unstaging,
)
from dockerpkg.core.stepchoices import decided_steps
from dockerpkg.core.tree import Image, Tree, render_images
from dockerpkg.errors import DockerPkgError

__all__ = [
    "OFFLINE",
    "Observed",
    "State",
    "image_state",
    "inputs_digest",
    "plan_build",
    "planned_image",
    "selected_names",
    "unknown_names",
]


def inputs_digest(snapshot: Snapshot, config: Config) -> str:
    """A digest of everything a plan was made from: tree contents and config values.

    The config enters by its values, without the password (see public_values): credentials
    are read again when a plan is applied, and a plan file must not help guess them.
    """
    digest = hashlib.sha256()
    digest.update(f"config\0{public_values(config)}\0".encode())
    for source in snapshot.images:
        digest.update(f"image\0{source.path}\0".encode())
        for name, content in source.hashes:
            digest.update(f"file\0{name}\0{content}\0".encode())
    return "sha256:" + digest.hexdigest()


def planned_image(
    image: Image,
    defined: Definitions | None = None,
    labelled: tuple[Config, SourceFacts] | None = None,
) -> PlannedImage:
    """IMAGE as a plan records it; with LABELLED (the config and the checkout's facts), the
    labels its build sets, when its Dockerfile was rendered."""
    names = image.spec.source.names
    own = defined.own.get(image.name) if defined else None
    labels: Mapping[str, str] = {}
    if labelled is not None and image.dockerfile is not None:
        config, source = labelled
        labels = image_labels(
            name=image.spec.name,
            version=image.spec.version,
            changelog=image.spec.source.changelog,
            own_definition=own,
            config=config,
            source=source,
            identity=defined.full.get(image.name) if defined else None,
        )
    return PlannedImage(
        path=image.path,
        name=image.name,
        tag=image.tag,
        label=image.label,
        repository=image.repository,
        depends=tuple(d.name for d in image.spec.depends),
        parents=image.parents,
        bases=image.bases,
        dockerfile=image.dockerfile,
        build_dockerfile=image.build_dockerfile,
        has_test="test.sh" in names,
        has_dockerignore=".dockerignore" in names,
        definition=defined.full.get(image.name) if defined else None,
        own_definition=own,
        labels=labels,
        platform=image.platform,
        platforms=image.platforms,
    )


def selected_names(
    tree: Tree, select: str | None, names: tuple[str, ...] | None = None
) -> list[str]:
    """Images whose full label matches the glob (fnmatch, as docker-pkg) and, with NAMES,
    that are named there, in build order."""
    wanted = None if names is None else frozenset(names)
    return [
        n
        for n in tree.order
        if (select is None or fnmatch.fnmatch(tree.images[n].label, select))
        and (wanted is None or n in wanted)
    ]


def unknown_names(tree: Tree, names: tuple[str, ...] | None, directory: str) -> None:
    """Raise DockerPkgError when NAMES (a selection by name) holds one TREE has no image of."""
    unknown = sorted(set(names or ()) - tree.images.keys())
    if unknown:
        raise DockerPkgError.single(
            directory, f"no image named {', '.join(repr(n) for n in unknown)} in the tree"
        )


def _selected(
    tree: Tree, options: BuildOptions, directory: str, expansion: Expansion | None = None
) -> list[str]:
    """The images OPTIONS select (a glob, names or both), in build order; with platforms,
    the index images selected with their platform images."""
    unknown_names(tree, options.names, directory)
    selected = selected_names(tree, options.select, options.names)
    return selected if expansion is None else with_platform_images(expansion, selected)


def _run_notes(
    config: Config, options: BuildOptions, builders: BuilderSet, *, publish: bool, selected: bool
) -> list[str]:
    """What the plan says about the run as a whole: publishing off, an empty selection,
    several builders."""
    notes = []
    if options.no_publish:
        notes.append("publishing is off: the run asked not to publish (nothing is pushed)")
    elif not publish:
        where = config.registry or "Docker Hub"
        notes.append(
            f"publishing is off: no credentials for {where} "
            "(DOCKERPKG_USERNAME/DOCKERPKG_PASSWORD, config or Docker config)"
        )
    if publish and options.publish is PublishMode.ALL_OR_NOTHING:
        where = staging_repository(config.registry, config.namespace, "NAME")
        notes.append(
            f"publish all_or_nothing: images are pushed to {where}:TAG; their version tags "
            "and latest move (promote) only once every image of the run is built, "
            "verified and pushed"
        )
    if not selected:
        asked = f"--select {options.select}" if options.names is None else "the names asked for"
        notes.append(f"no image matches {asked}")
    if builders.several:
        notes.append(
            f"{len(builders.builders)} builders: images move between them through the "
            "registry, so only published images count as built; which builder builds which "
            "image is decided during the run"
        )
    return notes


def plan_build(
    tree: Tree,
    config: Config,
    observed: Observed,
    *,
    directory: str,
    digest: str,
    options: BuildOptions = DEFAULT_OPTIONS,
    builders: BuilderSet = DEFAULT_BUILDERS,
    source: SourceFacts = NO_SOURCE,
    secrets: tuple[SecretSource, ...] = (),
) -> Plan:
    """Steps to bring the selected images (and the unbuilt images they need) to published.

    With several BUILDERS the registry is the only store they share: an image counts as
    built only when published, and a plan that cannot publish is refused.

    OPTIONS.engine (None: the config's) is recorded in the plan: its secret checks and
    `apply` both go by it. A tree with platforms is planned expanded (core.platformtree).
    """
    options = attrs.evolve(options, engine=options.engine or config.engine)
    if builders.several:
        observed = _for_several_builders(config, observed, options, builders)
    written = tree
    expansion = one_builder(expanded(tree, config, options, directory), builders, options.publish)
    tree, states = _states(expansion.tree if expansion else tree, config, observed, options)
    if expansion is not None:
        expansion = attrs.evolve(expansion, tree=tree)
        states = index_states(expansion, observed, states)
    selected = _selected(tree, options, directory, expansion)
    unbuilt_parents = {
        n: [p for p in tree.images[n].parents if states[p][0] is State.TO_BUILD] for n in tree.order
    }
    to_build = reachable(unbuilt_parents, [n for n in selected if states[n][0] is State.TO_BUILD])
    if expansion is not None:
        to_build = with_indexes(expansion, to_build)
        missing_base_platforms(expansion, sorted(to_build), observed, directory)
    # A tree read without rendering gets the Dockerfiles of what is built and of what that
    # is built from (their definitions are part of its own), and only those.
    parents = {n: tree.images[n].parents for n in tree.order}
    tree = render_images(tree, config, sorted(reachable(parents, to_build)))
    expansion = None if expansion is None else attrs.evolve(expansion, tree=tree)
    publish = bool(observed.credentials) and not options.no_publish
    steps = _steps(
        (tree, expansion),
        config,
        observed,
        states,
        (to_build, selected),
        options=options,
        publish=publish,
    )
    published = [n for n in selected if states[n][0] is State.PUBLISHED]
    defined = definitions(tree)
    notes: list[str] = []
    if publish:
        latest, notes = latest_steps(tree, observed, published, options.suffix, steps)
        steps += latest
    notes += _run_notes(config, options, builders, publish=publish, selected=bool(selected))
    if expansion is not None:
        notes += platform_notes(steps, builders, observed, directory, expansion.tree)
    findings, finding_notes = platform_findings(
        (tree, expansion), observed, defined, published, directory
    )
    notes += finding_notes
    built = to_build if expansion is None else {expansion.index_of(n) for n in to_build}
    notes += absent_base_notes(written, observed.bases_absent, built, pull=options.pull)
    plan = _plan(
        (tree, expansion),
        (config, source),
        observed,
        (defined, decided_steps(steps, tree, config, options, observed)),
        directory=directory,
        digest=digest,
        options=options,
        builders=builders,
    )
    plan = attrs.evolve(plan, notes=tuple(notes), publish=publish, findings=tuple(findings))
    plan = with_secrets(_finished(plan, (tree, expansion), config, observed), tree, config, secrets)
    return _with_cache(plan, tree) if options.cache is CacheMode.REGISTRY else plan


def _plan(
    trees: tuple[Tree, Expansion | None],
    made: tuple[Config, SourceFacts],
    observed: Observed,
    parts: tuple[Definitions, list[Step]],
    *,
    directory: str,
    digest: str,
    options: BuildOptions,
    builders: BuilderSet,
) -> Plan:
    """The plan of STEPS for TREE's images (as MADE from the config and the checkout)."""
    tree, expansion = trees
    config, source = made
    defined, steps = parts
    images = tuple(
        planned_image(tree.images[n], defined, (config, source))
        for n in sorted(tree.images, key=lambda n: tree.images[n].path)
    )
    if expansion is not None:
        images = with_children(images, steps, observed)
    return Plan(
        action=Action.BUILD,
        directory=directory,
        digest=digest,
        images=images,
        steps=with_needs(steps, images),
        options=options,
        registry=config.registry,
        builders=tuple(
            PlannedBuilder(
                b.name, b.slots, b.tls is not None, b.platforms if expansion is not None else ()
            )
            for b in builders.builders
        ),
    )


def _states(
    tree: Tree, config: Config, observed: Observed, options: BuildOptions
) -> tuple[Tree, dict[str, tuple[State, Reason]]]:
    """Each image's state, reuse judged by identity (see _judged), and TREE with what that
    rendered."""
    states = {
        n: state_of(
            tree.images[n].label,
            observed,
            options.pull,
            published=_published(tree.images[n], tree, observed),
        )
        for n in tree.order
    }
    all_or_nothing = options.publish is PublishMode.ALL_OR_NOTHING
    return _judged(tree, config, observed, states, staging=all_or_nothing)


def _published(image: Image, tree: Tree, observed: Observed) -> bool:
    """Whether IMAGE counts as published: its label in the registry, or for a platform
    image, its platform in the index of its image's version (an index image's state is
    judged from its platform images': see index_states)."""
    if image.platform is None:
        return image.label in observed.published
    index = tree.images[image.spec.name].label
    return image.platform in observed.platform_digests.get(index, {})


def _steps(
    trees: tuple[Tree, Expansion | None],
    config: Config,
    observed: Observed,
    states: dict[str, tuple[State, Reason]],
    chosen: tuple[frozenset[str], list[str]],
    *,
    options: BuildOptions,
    publish: bool,
) -> list[Step]:
    """The pulls, builds, verifications, pushes, index steps and (all_or_nothing)
    promotions of the plan, in order."""
    tree, expansion = trees
    to_build, selected = chosen
    staging = publish and options.publish is PublishMode.ALL_OR_NOTHING
    steps: list[Step] = []
    if options.pull:
        plain = frozenset(
            n for n in to_build if tree.images[n].platform is None and not tree.images[n].platforms
        )
        steps.extend(_pulls(tree, plain, states, (config, observed.staged) if staging else None))
        if expansion is not None:
            steps += platform_pulls(expansion, sorted(to_build), states, observed)
    steps += _image_steps(tree, config, states, chosen, publish=publish, staging=staging)
    if staging:
        staged = [n for n in selected if states[n][0] is State.STAGED]
        published = [n for n in tree.order if states[n][0] is State.PUBLISHED]
        promoted = promotions(tree, config, steps, (staged, observed.staged))
        steps += promoted if expansion is None else index_promotions(tree, promoted)
        steps += unstaging(tree, config, published, observed.staged)
    return steps


def _with_cache(plan: Plan, tree: Tree) -> Plan:
    """cache registry: each image to build imports layers from its previous version and its
    `latest` in the registry (those that exist; BuildKit skips the others)."""
    built = {step.image for step in plan.steps if step.op is Op.BUILD}
    images = []
    for image in plan.images:
        if image.name not in built:
            images.append(image)
            continue
        older = [
            v
            for v in versions_newest_first(tree.images[image.name].spec.source.changelog)[1:2]
            if is_docker_tag(v)
        ]
        sources = [f"{image.repository}:{v}" for v in older] + [f"{image.repository}:latest"]
        if image.platform is not None:  # the platform's own image, not an index
            suffix = Platform.parse(image.platform).suffix
            sources = [f"{image.repository}:{v}-{suffix}" for v in older]
        images.append(attrs.evolve(image, cache_from=tuple(sources)))
    return attrs.evolve(plan, images=tuple(images))


def _finished(
    plan: Plan, trees: tuple[Tree, Expansion | None], config: Config, observed: Observed
) -> Plan:
    """PLAN with what its builds record of their bases, and held to their digests when the
    config pins them (a platform image's to its platform's, see pin_platforms)."""
    tree, expansion = trees
    # The bases label goes with the definition label: both are dockerpkg's own records.
    plan = with_records(plan) if config.definition_labels else plan
    if not config.pin_bases:
        return plan
    bases = [
        base for image in tree.images.values() if image.platform is None for base in image.bases
    ]
    pins, notes = pins_of(bases, observed.base_digests, observed.offline, observed.bases_unknown)
    plan = pin_plan(plan, pins)
    if expansion is not None:
        plan, more = pin_platforms(plan, expansion, observed)
        notes += more
    return attrs.evolve(plan, notes=plan.notes + tuple(notes))


def _image_steps(
    tree: Tree,
    config: Config,
    states: dict[str, tuple[State, Reason]],
    chosen: tuple[frozenset[str], list[str]],
    *,
    publish: bool,
    staging: bool,
) -> list[Step]:
    """Build, verify and publish steps of CHOSEN (what is built, what is selected), in build
    order; with STAGING (all_or_nothing) the push is a stage step, to the staging repository."""
    to_build, selected = chosen
    push = Op.STAGE if staging else Op.PUBLISH
    steps: list[Step] = []
    for name in tree.order:
        image = tree.images[name]
        state, reason = states[name]
        if image.platforms:  # an index image: put once its platforms are pushed
            # (all_or_nothing: by its promotion, see core.platformstaging)
            if name in to_build and publish and not staging:
                steps.append(Step(Op.INDEX, name, reason, image.label))
            continue
        on = image.platform
        target = staging_target(config, image) if staging else image.label
        if name in to_build:
            if image.spec.source.build_template is not None:
                stage = f"{stage_repository(image.repository)}:{image.tag}"
                steps.append(Step(Op.BUILD_STAGE, name, Reason.BUILD_TEMPLATE, stage, platform=on))
            steps.append(Step(Op.BUILD, name, reason, image.label, platform=on))
            steps.append(Step(Op.VERIFY, name, Reason.BUILT_IN_THIS_RUN, image.label, platform=on))
            if publish:
                steps.append(Step(push, name, Reason.BUILT_IN_THIS_RUN, target, platform=on))
        elif state is State.BUILT and publish and name in selected:
            steps.append(Step(Op.VERIFY, name, reason, image.label, platform=on))
            steps.append(Step(push, name, reason, target, platform=on))
    return steps


def _judged(
    tree: Tree,
    config: Config,
    observed: Observed,
    states: dict[str, tuple[State, Reason]],
    *,
    staging: bool,
) -> tuple[Tree, dict[str, tuple[State, Reason]]]:
    """STATES with reuse judged by identity (the definition, own and parents'): an image the
    daemon holds with another identity recorded is built again; with STAGING, one not
    published that an earlier all_or_nothing run staged (so built and verified) with the
    tree's identity is STAGED, promoted without being built or verified again. TREE with
    those judged, and what they are built from, rendered (identities need it).

    A daemon's image without an identity label (built by docker-pkg, or with
    `definition_labels` off) cannot be judged and is reused, as docker-pkg did; a staged one
    without it is built again."""
    local = [
        n
        for n in tree.order
        if states[n][0] is State.BUILT and tree.images[n].label in observed.local_identities
    ]
    staged = [
        n
        for n in tree.order
        if staging
        and states[n][0] in (State.TO_BUILD, State.BUILT)
        and tree.images[n].label in observed.staged
        # An earlier run's staged platform image is built again (core.platformstaging).
        and not is_platform_related(tree.images[n])
    ]
    if not local and not staged:
        return tree, states
    parents = {n: tree.images[n].parents for n in tree.order}
    tree = render_images(tree, config, sorted(reachable(parents, [*local, *staged])))
    identity = definitions(tree).full
    states = dict(states)
    for name in local:
        if observed.local_identities[tree.images[name].label] != identity.get(name):
            states[name] = (State.TO_BUILD, Reason.IDENTITY_CHANGED)
    for name in staged:
        recorded = observed.staged[tree.images[name].label].identity
        if recorded and recorded == identity.get(name):
            states[name] = (State.STAGED, Reason.STAGED_IN_EARLIER_RUN)
        elif states[name][0] is State.TO_BUILD:
            states[name] = (State.TO_BUILD, Reason.IDENTITY_CHANGED)
    return tree, states


def _for_several_builders(
    config: Config, observed: Observed, options: BuildOptions, builders: BuilderSet
) -> Observed:
    """What several builders can count on: the registry's images, never one daemon's."""
    if options.no_publish:
        raise DockerPkgError.single(
            builders.origin.path,
            f"{len(builders.builders)} builders need publishing (images move between them "
            "through the registry), but this run publishes nothing: use one builder",
            builders.origin.line,
        )
    if not observed.credentials:
        raise publishing_required(builders, config.registry or "Docker Hub")
    if not options.pull:
        raise DockerPkgError.single(
            builders.origin.path,
            "--no-pull cannot be used with several builders: they get base images and each "
            "other's images from the registry",
            builders.origin.line,
        )
    return attrs.evolve(observed, local=frozenset())


def _pulls(
    tree: Tree,
    to_build: frozenset[str],
    states: dict[str, tuple[State, Reason]],
    staging: tuple[Config, Mapping[str, Staged]] | None,
) -> list[Step]:
    """Base images and published (or, with STAGING's config and what was staged, staged)
    parents of what will be built, each once, sorted; a staged parent is pulled by the digest
    whose identity was read, and named as its label."""
    bases: set[str] = set()
    parents: set[str] = set()
    staged: set[str] = set()
    for name in to_build:
        image = tree.images[name]
        bases.update(image.bases)
        parents.update(p for p in image.parents if states[p][0] is State.PUBLISHED)
        staged.update(p for p in image.parents if states[p][0] is State.STAGED)
    steps = [Step(Op.PULL, label, Reason.BASE_IMAGE, label) for label in sorted(bases)]
    steps += [
        Step(Op.PULL, p, Reason.PUBLISHED_DEPENDENCY, tree.images[p].label) for p in sorted(parents)
    ]
    if staging is not None:
        config, found = staging
        steps += [
            Step(
                Op.PULL,
                p,
                Reason.STAGED_DEPENDENCY,
                by_digest(
                    staging_label(config.registry, config.namespace, p, tree.images[p].tag),
                    found[tree.images[p].label].digest,
                ),
                tree.images[p].label,
            )
            for p in sorted(staged)
        ]
    return steps
