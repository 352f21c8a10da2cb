"""Plans of random trees: parents first, and the JSON does not depend on input order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dockerpkg.core.config import Config
from dockerpkg.core.planner import OFFLINE, plan_build
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.core.spec import ImageSource, Snapshot
from dockerpkg.core.tree import load_tree

CONFIG = Config(registry="registry.example.org", base_images=("registry.example.org/base:1",))


def source(name: str, parents: list[str]) -> ImageSource:
    template = "\n".join(
        [f'FROM {{{{ "{parents[0] if parents else "base"}" | image_tag }}}}']
        + [f'COPY --from={{{{ "{p}" | image_tag }}}} /x /x' for p in parents[1:]]
    )
    control = f"Package: {name}\nDepends: {', '.join(parents)}\n" if parents else None
    changelog = (
        f"{name} (1.0-1) wikimedia; urgency=medium\n\n  * x\n\n"
        " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )
    return ImageSource(path=f"dir-{name}", template=template, changelog=changelog, control=control)


@st.composite
def trees(draw: st.DrawFn) -> list[ImageSource]:
    """A random DAG of images: image i may only depend on images before it."""
    count = draw(st.integers(min_value=1, max_value=25))
    names = [f"img{i}" for i in range(count)]
    sources = []
    for index, name in enumerate(names):
        parents = (
            draw(st.lists(st.sampled_from(names[:index]), max_size=3, unique=True)) if index else []
        )
        sources.append(source(name, parents))
    return sources


@settings(max_examples=60, deadline=None)
@given(trees(), st.randoms())
def test_parents_first_and_order_independent(
    sources: list[ImageSource], rnd: random.Random
) -> None:
    shuffled = list(sources)
    rnd.shuffle(shuffled)
    plans = []
    for images in (sources, shuffled):
        tree = load_tree(Snapshot(images=tuple(images)), CONFIG)
        plans.append(plan_build(tree, CONFIG, OFFLINE, directory="t", digest="d"))
    assert plan_to_json(plans[0]) == plan_to_json(plans[1])
    builds = [s.image for s in plans[0].steps if s.op.value == "build"]
    position = {name: i for i, name in enumerate(builds)}
    for image in plans[0].images:
        assert all(position[p] < position[image.name] for p in image.parents)
