"""Every docker-pkg compatibility case renders byte for byte as docker-pkg 4.0.4 did."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.core.tree import analyze_tree
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import Severity
from tests.support.compat import case_config, cases, expected, fixed_renders

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
class TestCompatCase:
    """One docker-pkg case: names, labels, dependencies and rendered Dockerfiles."""

    def test_rendered_dockerfiles_match(self, case: Path) -> None:
        analysis = analyze_tree(read_snapshot(case / "images"), case_config(case))
        fixed = fixed_renders().get(case.name, {})
        for path, want in expected(case)["images"].items():
            got = analysis.rendered.get(path)
            if "error" not in want:
                assert got is not None, f"{path} did not render: {analysis.problems}"
                assert got.dockerfile == want["dockerfile"]
            elif path in fixed:
                # A docker-pkg defect: render what the user meant instead of refusing.
                assert got is not None, f"{path} did not render: {analysis.problems}"
                assert got.dockerfile == fixed[path]
            else:
                errors = [p for p in analysis.problems if p.severity is Severity.ERROR]
                assert got is None
                assert any(p.location.path.startswith(path + "/") for p in errors)

    def test_identity_matches(self, case: Path) -> None:
        analysis = analyze_tree(read_snapshot(case / "images"), case_config(case))
        specs = {spec.path: spec for spec in analysis.specs}
        want = expected(case)["images"]
        assert sorted(specs) == sorted(want)
        for path, spec in specs.items():
            assert spec.name == want[path]["name"]
            assert spec.version == want[path]["tag"]
            assert [d.name for d in spec.depends] == want[path]["depends"]
        if analysis.tree is not None:
            labels = {i.path: i.label for i in analysis.tree.images.values()}
            assert labels == {p: w["label"] for p, w in want.items()}


def _problems(name: str) -> list[str]:
    case = next(c for c in CASES if c.name == name)
    return [
        str(p) for p in analyze_tree(read_snapshot(case / "images"), case_config(case)).problems
    ]


class TestCompatProblems:
    """docker-pkg's refusals and crashes become clear, located messages."""

    def test_cycle_names_both_images(self) -> None:
        assert _problems("14-dependency-cycle") == [
            "a/control:3: error: dependency cycle: a -> b -> a"
        ]

    def test_incomplete_folders_are_warnings(self) -> None:
        assert _problems("12-incomplete-folders") == [
            "no-changelog: warning: skipped: the folder has no changelog",
            "no-template: warning: skipped: the folder has no Dockerfile.template",
        ]

    def test_undefined_variable_has_line(self) -> None:
        assert _problems("09-undefined-variable") == [
            "broken/Dockerfile.template:2: error: undefined variable: "
            "'not_defined_anywhere' is undefined"
        ]

    def test_unknown_image_and_user(self) -> None:
        problems = _problems("10-unknown-image")
        assert problems[0].startswith("orphan/Dockerfile.template:1: error: image_tag: unknown")
        assert "'does-not-exist'" in problems[0]
        assert problems[1] == (
            "unknown-user/Dockerfile.template:2: error: add_user: no uid is known for user "
            "'ghost' (known_uid_mappings)"
        )
