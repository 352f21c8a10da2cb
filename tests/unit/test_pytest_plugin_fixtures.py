"""The pytest plugin's fixtures that need no Docker (dockerpkg_tree, dockerpkg_plan,
rendered), the dockerpkg_images marker, dockerpkg_image without a daemon, and runs under
xdist (each worker its own session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.plugintrees import IMAGES, copy_tree
from tests.unit.test_pytest_plugin import DEAD_DOCKER, run, with_tree

OWN_TESTS = """
import pytest

def test_tree(dockerpkg_tree):
    assert dockerpkg_tree.tree.order == ("plugin-base", "plugin-child-a", "plugin-child-b")
    assert dockerpkg_tree.config.namespace == "plugin"
    assert dockerpkg_tree.tree.images["plugin-child-a"].parents == ("plugin-base",)

def test_plan(dockerpkg_plan):
    built = [s.image for s in dockerpkg_plan.steps if s.op.value == "build"]
    assert built == ["plugin-base", "plugin-child-a", "plugin-child-b"]

def test_rendered(rendered):
    assert sorted(rendered) == ["plugin-base", "plugin-child-a", "plugin-child-b"]
    assert rendered["plugin-child-b"].splitlines() == [
        "FROM registry.example.org/plugin/plugin-base:1.0", "ENV CHILD=b",
    ]

@pytest.mark.dockerpkg_images("plugin-child-*")
def test_each_child(image_name, rendered):
    assert "ENV CHILD=" in rendered[image_name]
"""


@pytest.fixture
def tree(pytester: pytest.Pytester) -> Path:
    return copy_tree(pytester.path)


def test_fixtures_without_docker(pytester: pytest.Pytester, tree: Path) -> None:
    pytester.makepyfile(test_own=OWN_TESTS)
    result = with_tree(pytester, "-v", "-m", "not dockerpkg", "test_own.py")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_each_child?plugin-child-a? PASSED*",
            "*test_each_child?plugin-child-b? PASSED*",
        ]
    )


def test_fixtures_fail_with_dockerpkg_messages(pytester: pytest.Pytester, tree: Path) -> None:
    (tree / "child-a" / "control").write_text("Package: plugin-child-a\nDepends: nowhere\n")
    pytester.makepyfile(test_own=OWN_TESTS)
    result = with_tree(pytester, "-m", "not dockerpkg", "test_own.py::test_tree")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["child-a/control:2: error: *nowhere*"])
    assert "Traceback" not in result.stdout.str()


def test_the_image_marker_matches_all_by_default(pytester: pytest.Pytester, tree: Path) -> None:
    pytester.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.dockerpkg_images(argname="name")
        def test_each(name):
            pass
        """
    )
    result = with_tree(pytester, "--collect-only", "-q", "test_own.py")
    assert [line for line in result.outlines if "::" in line][:3] == [
        f"test_own.py::test_each[{image}]" for image in IMAGES
    ]


def test_dockerpkg_image_is_skipped_without_docker(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    pytester.makepyfile(
        test_own="""
        def test_run(dockerpkg_image):
            dockerpkg_image("plugin-base")
        """
    )
    result = with_tree(pytester, "--dockerpkg-build", "-rs", "-m", "not dockerpkg", "test_own.py")
    result.assert_outcomes(skipped=1)
    # At the test, not in the plugin.
    result.stdout.fnmatch_lines(["SKIPPED [[]1] test_own.py:1: cannot reach the Docker daemon*"])


def test_under_xdist_each_worker_collects_the_tree(pytester: pytest.Pytester, tree: Path) -> None:
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dockerpkg", "tree", "--dockerpkg-config", "tree-config.yaml"
    )
    result.assert_outcomes(passed=2 * len(IMAGES))
    # The lint items' warnings reach the controller's summary through their reports.
    result.stdout.fnmatch_lines(["*= dockerpkg lint warnings =*", "child-?: warning: *"])


def test_the_plugin_needs_no_tree_for_its_help(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--dockerpkg=DIRECTORY*", "*dockerpkg_tree (string)*"])


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_tests_pass_without_docker(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLES / "tree", pytester.path / "tree")
    shutil.copy(EXAMPLES / "config.yaml", pytester.path / "tree-config.yaml")
    shutil.copy(EXAMPLES / "tests" / "test_images.py", pytester.path / "test_images.py")
    result = with_tree(pytester, "-m", "not dockerpkg", "-rs", "test_images.py")
    # Four images for the marker; the tests needing Docker are skipped without --dockerpkg-build.
    result.assert_outcomes(passed=2 + 4, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED * needs Docker: --dockerpkg-build runs it"])


def test_a_test_changing_folder_does_not_change_the_tree_read(
    pytester: pytest.Pytester, tree: Path
) -> None:
    pytester.makepyfile(
        test_moves="""
        import os

        def test_a_moves_away(tmp_path):
            os.chdir(tmp_path)  # not restored: the next test runs from there

        def test_b_plan(dockerpkg_plan, dockerpkg_tree):
            built = [s.image for s in dockerpkg_plan.steps if s.op.value == "build"]
            assert built == ["plugin-base", "plugin-child-a", "plugin-child-b"]
            assert os.path.isabs(dockerpkg_tree.directory)
        """
    )
    # A subprocess: the folder the test moves to must not leak into this run.
    result = pytester.runpytest_subprocess(
        "--dockerpkg",
        "tree",
        "--dockerpkg-config",
        "tree-config.yaml",
        "-m",
        "not dockerpkg",
        "test_moves.py",
    )
    result.assert_outcomes(passed=2)


# Writes what the run (or each xdist worker) would build, once collected and deselected.
WANTED_CONFTEST = """
from dockerpkg.pytestplugin.state import STATE

def pytest_sessionfinish(session):
    # Not the environment: this test's own run may be an xdist worker's.
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    wanted = session.config.stash[STATE].wanted
    with open(f"wanted-{worker}.txt", "w") as handle:
        handle.write(" ".join(wanted))
"""

WANTING_TESTS = """
import pytest

@pytest.mark.dockerpkg_images("plugin-child-b")
def test_uses(dockerpkg_image, image_name):
    dockerpkg_image(image_name)

def test_plain():
    pass
"""


def wanted(pytester: pytest.Pytester) -> dict[str, list[str]]:
    return {
        path.stem.removeprefix("wanted-"): path.read_text().split()
        for path in pytester.path.glob("wanted-*.txt")
    }


def test_deselected_images_are_not_built(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    pytester.makeconftest(WANTED_CONFTEST)
    pytester.makepyfile(test_wanting=WANTING_TESTS)
    with_tree(pytester, "--dockerpkg-build", "-k", "plugin-child-a and build", "tree")
    # Only the selected item's image (its parent is the session's to add).
    assert wanted(pytester) == {"main": ["plugin-child-a"]}
    with_tree(pytester, "--dockerpkg-build", "-m", "not dockerpkg", "test_wanting.py")
    # A dockerpkg_image test's parameter counts; a test without the fixture does not.
    assert wanted(pytester) == {"main": ["plugin-child-b"]}
    with_tree(pytester, "--dockerpkg-build", "--collect-only")
    assert sorted(wanted(pytester)["main"]) == sorted(IMAGES)


def test_an_xdist_worker_builds_only_what_it_runs(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    pytester.makeconftest(WANTED_CONFTEST)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dockerpkg", "tree", "--dockerpkg-config", "tree-config.yaml",
        "--dockerpkg-build",
    )  # fmt: skip
    result.assert_outcomes(passed=2 * len(IMAGES), skipped=2 * len(IMAGES))
    # Each worker builds on demand, for the items it is given; the controller builds nothing.
    found = wanted(pytester)
    assert sorted(found) == ["gw0", "gw1", "main"]
    assert found["gw0"] == found["gw1"] == []
