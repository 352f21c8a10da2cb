"""What a build plan decides for the run of its steps, so that `apply` only follows: whether a
failed pull may go on with the daemon's own copy, whether a verification runs or is skipped
for want of its test, and whether a build reuses the daemon's layers (`--use-cache`, which
`--cache registry` implies for builds: BuildKit imports a published image's layers only as
cache)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.plan import BuildOptions, CacheMode, Op, Plan, Step
from dockerpkg.core.runrules import local_copy_serves, missing_test, outside_files
from dockerpkg.core.staging import staged_labels
from dockerpkg.core.tree import Tree


class DaemonSeen(Protocol):
    """What the planner saw of the daemon, and of the test files outside the images'
    folders (dockerpkg.core.planner.Observed)."""

    @property
    def offline(self) -> bool: ...

    @property
    def local(self) -> frozenset[str]: ...

    @property
    def test_files(self) -> frozenset[str]: ...

    @property
    def daemon_asked(self) -> bool: ...


def decided_steps(
    steps: Iterable[Step], tree: Tree, config: Config, options: BuildOptions, seen: DaemonSeen
) -> list[Step]:
    """STEPS with what each one's run follows; SEEN: the labels the daemon was seen to hold
    (offline, or several builders: no daemon was asked, so any copy it holds may serve; the
    executor still looks for one when the pull fails)."""
    local = None if seen.offline or not seen.daemon_asked else seen.local
    return [_decided(step, tree, config, options, (local, seen.test_files)) for step in steps]


def test_files_to_look_for(tree: Tree, config: Config) -> frozenset[str]:
    """The files outside the images' folders of TREE that their verifications name, relative
    to the tree: whether each exists is observed when planning (Observed.test_files)."""
    return frozenset(f for image in tree.images.values() for f in outside_files(config, image.path))


def _decided(
    step: Step,
    tree: Tree,
    config: Config,
    options: BuildOptions,
    seen: tuple[frozenset[str] | None, frozenset[str]],
) -> Step:
    local, test_files = seen
    if step.op is Op.PULL and step.platform is not None:
        # A failed pull for one platform never goes on with the daemon's copy of its label:
        # that may be another platform's.
        return attrs.evolve(step, local_copy=False)
    if step.op is Op.PULL:
        label = step.label or step.image
        return attrs.evolve(step, local_copy=local is None or local_copy_serves(label, local))
    if step.op is Op.VERIFY and step.image in tree.images:
        image = tree.images[step.image]
        missing = missing_test(config, image.spec.source.names, image.path, test_files)
        return attrs.evolve(step, missing_test=missing)
    if step.op is Op.BUILD:
        use = options.use_cache or options.cache is CacheMode.REGISTRY
        return attrs.evolve(step, use_cache=use)
    if step.op is Op.BUILD_STAGE:
        return attrs.evolve(step, use_cache=options.use_cache)
    return step


def local_copies(plan: Plan) -> frozenset[str]:
    """The labels whose failed pull PLAN lets go on with the daemon's own copy: its pulls
    that say so and, with several builders, the parents each one fetches from the registry
    (built elsewhere, or staged): no daemon was asked, so each builder's own copy may serve."""
    pulls = {
        step.label or step.image for step in plan.steps if step.op is Op.PULL and step.local_copy
    }
    if len(plan.builders) < 2:
        return frozenset(pulls)
    fetched = {image.label for image in plan.images} | set(staged_labels(plan).values())
    return frozenset(pulls | fetched)


def cache_text(plan: Plan) -> str | None:
    """What the plan's text says of the cache its builds use (None: no build reuses any)."""
    if not any(step.use_cache for step in plan.steps if step.op is Op.BUILD):
        return None
    if plan.options.cache is CacheMode.REGISTRY:
        return "builds reuse the daemon's layers and import the registry's (cache registry)"
    return "builds reuse the daemon's layers (--use-cache)"


def step_text(step: Step) -> str:
    """What the plan's text says of what STEP's run follows ("" when nothing to say)."""
    if step.local_copy:
        return " [else the local copy]"
    if step.missing_test is not None:
        return f" [skipped: no {step.missing_test}]"
    return ""
