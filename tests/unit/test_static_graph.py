"""Reading the graph without rendering gives the same tree; builds still get their Dockerfiles."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dockerpkg.core.plan import Op
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.render import static_image_tags
from dockerpkg.core.tree import analyze_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.compat import COMPAT, case_config, cases

CASES = [c for c in cases() if analyze_tree(read_snapshot(c / "images"), case_config(c)).tree]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_graph_as_rendering(case: Path) -> None:
    snapshot, config = read_snapshot(case / "images"), case_config(case)
    full = analyze_tree(snapshot, config).tree
    light = analyze_tree(snapshot, config, render=False).tree
    assert full is not None
    assert light is not None
    assert light.order == full.order
    for name, image in full.images.items():
        assert light.images[name].parents == image.parents
        assert light.images[name].bases == image.bases
        assert light.images[name].label == image.label


def test_plan_renders_only_what_it_builds() -> None:
    case = COMPAT / "11-versions"
    snapshot, config = read_snapshot(case / "images"), case_config(case)
    full = analyze_tree(snapshot, config).tree
    light = analyze_tree(snapshot, config, render=False).tree
    assert full is not None
    assert light is not None
    assert all(image.dockerfile is None for image in light.images.values())
    published = frozenset(full.images[n].label for n in ("native", "security", "debian-rev"))
    observed = Observed(offline=False, published=published, credentials=True)
    plan = plan_build(light, config, observed, directory="images", digest="d")
    rendered = {i.name: i.dockerfile for i in plan.images if i.dockerfile is not None}
    built = sorted({s.image for s in plan.steps if s.op is Op.BUILD})
    assert built == ["dated", "leaf"]
    # What is built, and what it is built from (part of its definition): nothing else.
    ancestors: set[str] = set()
    pending = list(built)
    while pending:
        parents = set(full.images[pending.pop()].parents) - ancestors
        ancestors |= parents
        pending.extend(parents)
    assert sorted(rendered) == sorted({*built, *ancestors})
    assert rendered == {n: full.images[n].dockerfile for n in rendered}
    assert all(plan.image(n).definition is not None for n in built)
    # A no-op renders nothing.
    everything = frozenset(image.label for image in full.images.values())
    noop = plan_build(
        light, config, attrs.evolve(observed, published=everything), directory="i", digest="d"
    )
    assert not noop.steps
    assert all(i.dockerfile is None for i in noop.images)


class TestStaticImageTags:
    """Constant names are read from the syntax; anything else asks for a real render."""

    def test_statements_and_comments_are_parsed(self) -> None:
        assert static_image_tags('{% set x = "a" | image_tag %}{{ x }}') == ("a",)
        assert static_image_tags('{# {{ "ghost" | image_tag }} #}FROM scratch') == ()

    def test_constant_names(self) -> None:
        text = 'FROM {{ "a" | image_tag }}\nCOPY --from={{ "b" | image_tag | upstream_version }} x'
        assert static_image_tags(text) == ("a", "b")
        assert static_image_tags("FROM scratch") == ()

    @pytest.mark.parametrize(
        "text",
        [
            "FROM {{ base | image_tag }}",
            '{% include "x" %}{{ "a" | image_tag }}',
            '{{ ("a" ~ suffix) | image_tag }}',
        ],
    )
    def test_unknowable(self, text: str) -> None:
        assert static_image_tags(text) is None
