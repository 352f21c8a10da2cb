"""The secrets and SSH agents a plan's builds mount: which ids each image to build uses, which
given sources serve them, and the errors for an id without one (at its template line)."""

from __future__ import annotations

import re

import attrs

from dockerpkg.core.config import Config
from dockerpkg.core.plan import Op, Plan, PlannedSecret
from dockerpkg.core.secrets import MountType, SecretSource, secret_problems, secret_uses
from dockerpkg.core.tree import Tree
from dockerpkg.errors import DockerPkgError


def with_secrets(plan: Plan, tree: Tree, config: Config, sources: tuple[SecretSource, ...]) -> Plan:
    """PLAN with the secrets and SSH agents each image to build mounts, and their sources; an
    id no source is given for, or such mounts with the classic engine, is an error at its
    template line."""
    built = {step.image for step in plan.steps if step.op is Op.BUILD}
    problems = []
    images = []
    used: set[tuple[MountType, str]] = set()
    for image in plan.images:
        if image.name not in built or image.dockerfile is None:
            images.append(image)
            continue
        template = tree.images[image.name].spec.source
        lines = template.template.split("\n")
        ids: dict[MountType, tuple[str, ...]] = {}
        for mount in MountType:
            uses = secret_uses(image.dockerfile, mount)
            for secret_id, line in uses:
                # The template's line naming the id; else the rendered Dockerfile's.
                named_id = re.compile(rf"\bid={re.escape(secret_id)}(?![\w.-])")
                named = (n for n, text in enumerate(lines, 1) if named_id.search(text))
                problems += secret_problems(
                    template.file("Dockerfile.template"),
                    f"RUN --mount=type={mount.value},id={secret_id}",
                    sources,
                    plan.options.engine or config.engine,
                    line=next(named, line),
                    mount=mount,
                )
            ids[mount] = tuple(sorted({secret_id for secret_id, _ in uses}))
            used.update((mount, secret_id) for secret_id in ids[mount])
        images.append(attrs.evolve(image, secrets=ids[MountType.SECRET], ssh=ids[MountType.SSH]))
    if problems:
        raise DockerPkgError(problems)

    def planned(mount: MountType) -> tuple[PlannedSecret, ...]:
        return tuple(
            PlannedSecret(s.id, s.kind, s.where)
            for s in sources
            if (s.mount, s.id) in used and s.mount is mount
        )

    return attrs.evolve(
        plan,
        images=tuple(images),
        secrets=planned(MountType.SECRET),
        ssh=planned(MountType.SSH),
    )
