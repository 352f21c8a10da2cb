"""Several platforms published all or nothing (`--publish all_or_nothing`).

Each platform image is staged (pushed to the staging repository of its index image, under
its platform tag: `NAMESPACE/dockerpkg-staging/php:8.2-arm64`); no index is put during the
run. Each index image gets one promotion, after the barrier as every promotion: it copies
each staged platform's manifest into the image's repository by digest (no tag) and then
puts the index under the version tag and `latest`. So nothing users pull by tag shows one
platform of a new version without the others.

A platform image an earlier (killed) run staged is built again: its staging is not reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dockerpkg.core.builders import BuilderSet
from dockerpkg.core.config import Config
from dockerpkg.core.plan import Op, PublishMode, Reason, Step
from dockerpkg.core.platformtree import Expansion
from dockerpkg.core.staging import staging_label
from dockerpkg.core.tree import Image, Tree
from dockerpkg.errors import DockerPkgError


def staging_target(config: Config, image: Image) -> str:
    """Where IMAGE is staged: a platform image in its index image's staging repository,
    under its platform tag; any other image in its own."""
    return staging_label(config.registry, config.namespace, image.spec.name, image.tag)


def is_platform_related(image: Image) -> bool:
    """Whether IMAGE is a platform image or an index image: never judged as staged by an
    earlier run (see the module's docstring)."""
    return image.platform is not None or bool(image.platforms)


def index_promotions(tree: Tree, steps: Sequence[Step]) -> list[Step]:
    """STEPS (a plan's promotions) with those of platform images replaced by one promotion
    per index image whose platform images the run stages, in build order (parents first):
    it moves the version tag and `latest` to the index of every platform."""
    staged = {tree.images[s.image].spec.name for s in steps if tree.images[s.image].platform}
    kept = {s.image: s for s in steps if tree.images[s.image].platform is None}
    for name in staged:
        kept[name] = Step(Op.PROMOTE, name, Reason.ALL_PUBLISHED, tree.images[name].label)
    return [kept[name] for name in tree.order if name in kept]


def staged_children(steps: Iterable[Step]) -> dict[str, str]:
    """Platform image -> the staging reference the run pushes it to (its stage step's)."""
    return {s.image: s.label for s in steps if s.op is Op.STAGE and s.label is not None}


def one_builder(
    expansion: Expansion | None, builders: BuilderSet, publish: PublishMode
) -> Expansion | None:
    """EXPANSION (a tree with platforms, or None), or DockerPkgError for all_or_nothing with
    platforms on several builders: a promotion takes each platform's manifest by the digest
    its own builder staged."""
    if expansion is not None and builders.several and publish is PublishMode.ALL_OR_NOTHING:
        raise DockerPkgError.single(
            builders.origin.path,
            f"--publish all_or_nothing with platforms needs one builder, not "
            f"{len(builders.builders)}: publish per_image (each image's index is put once all "
            "its platforms are pushed)",
            builders.origin.line,
        )
    return expansion
