"""A snapshot plus config -> a resolved Tree: labels, rendered Dockerfiles, dependency order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.graph import CycleError, children_of, topological_order
from dockerpkg.core.labels import (
    is_docker_tag,
    join_repository,
    make_label,
    path_problem,
    repository_length_problem,
    split_label,
    stage_repository,
)
from dockerpkg.core.platforms import Platform, rewrite_froms
from dockerpkg.core.render import (
    FilterError,
    KnownImages,
    Rendered,
    render_template,
    static_image_tags,
)
from dockerpkg.core.spec import ImageSpec, Snapshot, parse_image
from dockerpkg.errors import Concern, DockerPkgError, Problem, error, warning


@attrs.frozen
class Image:
    """One image of the tree, fully resolved."""

    spec: ImageSpec
    tag: str
    label: str
    repository: str
    dockerfile: str | None  # None: not rendered (see analyze_tree's `render`)
    build_dockerfile: str | None
    parents: tuple[str, ...]  # names of tree images this one needs, sorted
    bases: tuple[str, ...]  # labels of base images it uses, sorted
    # Several platforms (dockerpkg.core.platformtree): a platform image's PLATFORM, rendered
    # with that platform's variables and its FROM lines naming what REWRITES maps them to;
    # an index image's PLATFORMS (never rendered, never built).
    platform: str | None = None
    platforms: tuple[str, ...] = ()
    rewrites: Mapping[str, str] = attrs.field(factory=dict)
    # A platform image's own name (`php:arm64`); None: the image's (its spec's).
    named: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name if self.named is None else self.named

    @property
    def path(self) -> str:
        return self.spec.path


@attrs.frozen
class Tree:
    """Every image by name, and the order they must be built in."""

    images: Mapping[str, Image]
    order: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()
    known: KnownImages | None = None

    @property
    def children(self) -> dict[str, tuple[str, ...]]:
        return children_of({name: image.parents for name, image in self.images.items()})


@attrs.frozen
class Analysis:
    """Per-image outcome of reading a tree: what rendered, and every problem found."""

    specs: tuple[ImageSpec, ...]
    rendered: Mapping[str, Rendered]  # by image path
    problems: tuple[Problem, ...]
    tree: Tree | None


def _parse_all(snapshot: Snapshot) -> tuple[list[ImageSpec], list[Problem]]:
    specs: list[ImageSpec] = []
    problems: list[Problem] = []
    for source in snapshot.images:
        try:
            specs.append(parse_image(source))
        except DockerPkgError as exc:
            problems.extend(exc.problems)
    by_name: dict[str, ImageSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            first = by_name[spec.name]
            problems.append(
                error(
                    spec.source.file("changelog"),
                    f"image '{spec.name}' is also defined in {first.source.file('changelog')}; "
                    "image names must be unique",
                    1,
                )
            )
        else:
            by_name[spec.name] = spec
    return [s for s in specs if by_name[s.name] is s], problems


def known_images(specs: list[ImageSpec], config: Config, suffix: str) -> KnownImages:
    """Labels image_tag can resolve: base images as written, tree images with the suffix."""
    labels: dict[str, str] = {}
    base: set[str] = set()
    for label in config.base_images:
        repository, _ = split_label(label)
        labels[repository] = label
        base.add(repository)
    for spec in specs:
        repository = join_repository(config.registry, config.namespace, spec.name)
        labels[repository] = make_label(
            config.registry, config.namespace, spec.name, spec.version + suffix
        )
    return KnownImages(
        labels=MappingProxyType(labels),
        base=frozenset(base),
        registry=config.registry,
        namespace=config.namespace,
    )


def _render(
    spec: ImageSpec,
    config: Config,
    known: KnownImages,
    variables: Mapping[str, str] | None = None,
) -> tuple[Rendered, str | None]:
    files = dict(spec.source.files)
    problems: list[Problem] = []
    main = build = None
    if variables is None:
        variables = first_platform_variables(spec, config)
    try:
        main = render_template(
            spec.source.template,
            files,
            config,
            known,
            where=spec.source.file("Dockerfile.template"),
            names=spec.source.names,
            variables=variables,
        )
    except DockerPkgError as exc:
        problems.extend(exc.problems)
    if spec.source.build_template is not None:
        try:
            build = render_template(
                spec.source.build_template,
                files,
                config,
                known,
                where=spec.source.file("Dockerfile.build.template"),
                names=spec.source.names,
                variables=variables,
            )
        except DockerPkgError as exc:
            problems.extend(exc.problems)
    if problems or main is None:
        raise DockerPkgError(problems)
    if build is not None:
        used = tuple(dict.fromkeys(main.used + build.used))
        main = attrs.evolve(main, used=used, warnings=main.warnings + build.warnings)
    return main, build.dockerfile if build is not None else None


def first_platform_variables(spec: ImageSpec, config: Config) -> Mapping[str, str] | None:
    """The variables of the first of SPEC's platforms (its control's, else the config's),
    which the tree as written is rendered with (lint, graph, update see one rendering of a
    template that knows its platform); None without platforms."""
    platforms = spec.platforms or config.platforms
    return Platform.parse(platforms[0]).variables() if platforms else None


def _static(spec: ImageSpec, config: Config, known: KnownImages) -> tuple[Rendered, str | None]:
    """The image_tag lookups of an image read from its templates' syntax, without rendering;
    rendered after all when the syntax cannot tell."""
    texts = [("Dockerfile.template", spec.source.template)]
    if spec.source.build_template is not None:
        texts.append(("Dockerfile.build.template", spec.source.build_template))
    names: list[tuple[str, str]] = []
    for filename, text in texts:
        found = static_image_tags(text)
        if found is None:
            return _render(spec, config, known)
        names += [(filename, name) for name in found]
    used: list[str] = []
    for filename, name in names:
        try:
            used.append(known.lookup(name))
        except FilterError as exc:
            raise DockerPkgError([error(spec.source.file(filename), str(exc))]) from None
    return Rendered(dockerfile=None, used=tuple(dict.fromkeys(used))), None


def render_images(tree: Tree, config: Config, names: Iterable[str]) -> Tree:
    """TREE with the Dockerfiles of NAMES rendered (those not rendered yet); an index
    image has none, a platform image's is its platform's (see Image.platform)."""
    missing = [
        n for n in names if tree.images[n].dockerfile is None and not tree.images[n].platforms
    ]
    if not missing or tree.known is None:
        return tree
    images = dict(tree.images)
    problems: list[Problem] = []
    for name in missing:
        image = images[name]
        platform = None if image.platform is None else Platform.parse(image.platform)
        variables = None if platform is None else platform.variables()
        try:
            main, build = _render(image.spec, config, tree.known, variables)
        except DockerPkgError as exc:
            problems.extend(exc.problems)
            continue
        rewrites = image.rewrites
        images[name] = attrs.evolve(
            image,
            dockerfile=None
            if main.dockerfile is None
            else rewrite_froms(main.dockerfile, rewrites),
            build_dockerfile=None if build is None else rewrite_froms(build, rewrites),
        )
    if problems:
        raise DockerPkgError(problems)
    return attrs.evolve(tree, images=MappingProxyType(images))


def undeclared_warning(spec: ImageSpec, parent: str) -> Problem:
    """The warning for SPEC using tree image PARENT through image_tag without declaring it
    (`lint` reports these itself, with the line, under a rule of their own)."""
    found = warning(
        spec.source.file("Dockerfile.template"),
        f"uses image '{parent}' through image_tag but does not declare it in control "
        "(Depends); it is built first anyway",
    )
    return attrs.evolve(found, concern=Concern.STYLE)


def _dependencies(
    spec: ImageSpec, rendered: Rendered, known: KnownImages, tree_repos: Mapping[str, str]
) -> tuple[set[str], set[str], list[Problem]]:
    """Tree parents and base labels of one image, from control and from image_tag lookups."""
    parents: set[str] = set()
    bases: set[str] = set()
    problems: list[Problem] = []
    declared: set[str] = set()
    control = spec.source.file("control")
    for dep in spec.depends:
        repository = known.resolve(dep.name)
        if repository is None:
            problems.append(
                error(
                    control,
                    f"image '{spec.name}' depends on '{dep.name}', which is neither in the tree "
                    "nor in base_images",
                    dep.line,
                )
            )
        elif tree_repos.get(repository) == spec.name:
            problems.append(error(control, f"image '{spec.name}' depends on itself", dep.line))
        elif repository in tree_repos:
            parents.add(tree_repos[repository])
            declared.add(repository)
        else:
            bases.add(known.labels[repository])
            declared.add(repository)
    for repository in rendered.used:
        if tree_repos.get(repository) == spec.name:
            continue  # its own label (in a LABEL, say): not something to build first
        if repository in tree_repos:
            parents.add(tree_repos[repository])
            if repository not in declared:
                problems.append(undeclared_warning(spec, tree_repos[repository]))
        else:
            bases.add(known.labels[repository])
    return parents, bases, problems


def _stage_clashes(specs: Iterable[ImageSpec], config: Config, known: KnownImages) -> list[Problem]:
    """Build stages tagged like an image of the tree or a base image: building the stage
    would replace that image, and removing the stage would remove it."""
    found = []
    for spec in specs:
        if spec.source.build_template is None:
            continue
        stage = stage_repository(join_repository(config.registry, config.namespace, spec.name))
        if stage in known.labels:
            found.append(
                error(
                    spec.source.file("Dockerfile.build.template"),
                    f"the build stage of '{spec.name}' would be tagged {stage}, the name of "
                    f"image {known.labels[stage]}, and remove it afterwards; rename one of them",
                )
            )
    return found


def _edge_problem(
    image: Image, parent: str, known: KnownImages, tree_repos: Mapping[str, str], message: str
) -> Problem:
    """An error about IMAGE needing PARENT, at the control line declaring it, else at the
    template using it through image_tag."""
    source = image.spec.source
    for dep in image.spec.depends:
        if tree_repos.get(known.resolve(dep.name) or "") == parent:
            return error(source.file("control"), message, dep.line)
    where = source.file("Dockerfile.template")
    return error(where, f"{message} ('{parent}' is used through image_tag)")


def analyze_tree(
    snapshot: Snapshot, config: Config, suffix: str = "", *, render: bool = True
) -> Analysis:
    """Parse, render and order every image; collect every problem instead of stopping.

    With render=False the dependency graph comes from the templates' syntax where it can
    (image_tag of a constant name), and Dockerfiles are left for `render_images`: runs that
    build little or nothing (a no-op build, update, prune) need not render every image.
    """
    specs, problems = _parse_all(snapshot)
    problems = list(snapshot.warnings) + problems
    known = known_images(specs, config, suffix)
    tree_repos = {join_repository(config.registry, config.namespace, s.name): s.name for s in specs}
    rendered: dict[str, Rendered] = {}
    images: dict[str, Image] = {}
    for spec in specs:
        tag = spec.version + suffix
        name_problem = path_problem(spec.name, "image name") or repository_length_problem(
            join_repository(config.registry, config.namespace, spec.name)
        )
        if name_problem:
            problems.append(error(spec.source.file("changelog"), name_problem, 1))
            continue
        if not is_docker_tag(tag):
            problems.append(
                warning(
                    spec.source.file("changelog"),
                    f"version '{tag}' is not a valid Docker tag; building it will fail",
                    1,
                )
            )
        try:
            main, build = (_render if render else _static)(spec, config, known)
        except DockerPkgError as exc:
            problems.extend(exc.problems)
            continue
        if main.dockerfile is not None:
            rendered[spec.path] = main
        problems.extend(main.warnings)
        parents, bases, dep_problems = _dependencies(spec, main, known, tree_repos)
        problems.extend(dep_problems)
        repository = join_repository(config.registry, config.namespace, spec.name)
        images[spec.name] = Image(
            spec=spec,
            tag=tag,
            label=known.labels[repository],
            repository=repository,
            dockerfile=main.dockerfile,
            build_dockerfile=build,
            parents=tuple(sorted(parents)),
            bases=tuple(sorted(bases)),
        )
    problems.extend(_stage_clashes(specs, config, known))
    tree = None
    errors = [p for p in problems if p.severity.value == "error"]
    if not errors:
        try:
            order = topological_order({n: i.parents for n, i in images.items()})
            tree = Tree(
                images=MappingProxyType(images),
                order=order,
                warnings=tuple(problems),
                known=known,
            )
        except CycleError as exc:
            first, second = images[exc.cycle[0]], exc.cycle[1]
            message = "dependency cycle: " + " -> ".join(exc.cycle)
            problems.append(_edge_problem(first, second, known, tree_repos, message))
    return Analysis(
        specs=tuple(specs),
        rendered=MappingProxyType(rendered),
        problems=tuple(problems),
        tree=tree,
    )


def load_tree(snapshot: Snapshot, config: Config, suffix: str = "", *, render: bool = True) -> Tree:
    """The resolved tree, or DockerPkgError with every problem (warnings included)."""
    analysis = analyze_tree(snapshot, config, suffix, render=render)
    if analysis.tree is None:
        raise DockerPkgError(analysis.problems)
    return analysis.tree
