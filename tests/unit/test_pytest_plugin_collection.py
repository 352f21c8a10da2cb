"""The plugin's collection next to the user's own tests (pytester, no Docker): the
`dockerpkg` marker only on the tree's items, a tree that cannot be read still lets the
user's tests run, a tree whose root is an image, where skips and messages name files, and
the structure checks' time bound read from its option and ini key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dockerpkg.pytestplugin.settings import Settings
from dockerpkg.pytestplugin.state import PluginState
from tests.support.plugintrees import IMAGES, PLUGIN_TREE, copy_tree

ITEMS = ("render", "lint")
DEAD_DOCKER = "unix:///nonexistent/dockerpkg-test.sock"
OWN = "def test_own():\n    pass\n"


@pytest.fixture
def tree(pytester: pytest.Pytester) -> Path:
    tree = copy_tree(pytester.path)
    (tree / "tests").mkdir()
    (tree / "tests" / "test_own.py").write_text(OWN)
    return tree


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In this process the package is imported already: pytest cannot rewrite its asserts.
    return pytester.runpytest("-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def with_tree(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run(pytester, "--dockerpkg", "tree", "--dockerpkg-config", "tree-config.yaml", *args)


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_the_users_tests_in_the_tree_do_not_carry_the_dockerpkg_marker(
    pytester: pytest.Pytester, tree: Path
) -> None:
    mine = with_tree(pytester, "--collect-only", "-q", "-m", "not dockerpkg")
    assert collected(mine) == ["tree/tests/test_own.py::test_own"]
    the_trees = with_tree(pytester, "--collect-only", "-q", "-m", "dockerpkg")
    assert collected(the_trees) == [f"tree::{i}::{item}" for i in IMAGES for item in ITEMS]


def test_the_trees_own_lint_item_carries_the_dockerpkg_marker(
    pytester: pytest.Pytester, tree: Path
) -> None:
    config = pytester.path / "tree-config.yaml"
    config.write_text(config.read_text() + "no_such_key: 1\n")
    result = with_tree(pytester, "--collect-only", "-q", "-m", "dockerpkg")
    assert "tree::lint" in collected(result)
    assert "tree/tests/test_own.py::test_own" not in collected(result)


def test_a_tree_that_cannot_be_read_is_one_failing_item_and_the_users_tests_run(
    pytester: pytest.Pytester, tree: Path
) -> None:
    (pytester.path / "tree-config.yaml").write_text("registry: [unclosed\n")
    result = with_tree(pytester, "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*tree::tree FAILED*", "*tree/tests/test_own.py::test_own PASSED*"], consecutive=False
    )
    result.stdout.fnmatch_lines(["tree-config.yaml:2: error: not valid YAML*"])
    assert "Traceback" not in result.stdout.str()
    mine = with_tree(pytester, "-m", "not dockerpkg")
    mine.assert_outcomes(passed=1)


def test_a_broken_tree_at_the_rootdir_does_not_block_one_test_of_the_users(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "pytest.ini").write_text(
        "[pytest]\ndockerpkg_tree = .\ndockerpkg_config = ../tree-config.yaml\n"
    )
    (pytester.path / "tree-config.yaml").write_text("registry: [unclosed\n")
    monkeypatch.chdir(tree)
    result = run(pytester, "-v", "tests/test_own.py::test_own")
    result.assert_outcomes(passed=1)
    assert "found no collectors" not in result.stdout.str()


def test_a_tree_whose_root_is_an_image_keeps_the_users_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pytester.path / "root"
    shutil.copytree(PLUGIN_TREE / "images" / "base", root)
    shutil.copy(PLUGIN_TREE / "config.yaml", pytester.path / "tree-config.yaml")
    (root / "tests").mkdir()
    (root / "tests" / "test_own.py").write_text(OWN)
    (root / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(root)
    options = ("--dockerpkg", ".", "--dockerpkg-config", "../tree-config.yaml")
    everything = run(pytester, *options, "-v")
    everything.assert_outcomes(passed=1 + len(ITEMS))
    everything.stdout.fnmatch_lines(["*tests/test_own.py::test_own PASSED*"])
    only_mine = run(pytester, *options, "tests")
    only_mine.assert_outcomes(passed=1)


def test_the_skip_of_an_image_without_test_sh_names_its_folder(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    assert not (tree / "child-a" / "test.sh").exists()
    result = with_tree(pytester, "--dockerpkg-build", "-rs", "-k", "child-a")
    result.stdout.fnmatch_lines(["SKIPPED [[]1] tree/child-a:1: cannot reach*"])
    assert "child-a/test.sh" not in result.stdout.str()


def test_messages_make_whole_paths_relative_only(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    settings = Settings(
        tree=tree,
        config_path=str(tmp_path / "config.yaml"),
        on_command_line=True,
        build=False,
        require_docker=False,
    )
    state = PluginState(settings, {}, str(tree))
    text = f"{tree}-other.yaml:1: x; {tree}/base/changelog:2: y; {tmp_path}/config.yaml: z"
    assert state.shown(text) == (
        f"{tree}-other.yaml:1: x; ./base/changelog:2: y; ../config.yaml: z"
    )
    assert state.shown(f"in '{tree}'") == "in '.'"


THE_TIMEOUT = """
from dockerpkg.pytestplugin.state import state_of

def test_timeout(request):
    print("check timeout:", state_of(request.config).settings.check_timeout)
"""


@pytest.mark.parametrize(
    ("ini", "args", "seen"),
    [
        ("", (), "300.0"),
        ("", ("--dockerpkg-check-timeout", "2.5"), "2.5"),
        ("dockerpkg_check_timeout = 7\n", (), "7.0"),
        ("dockerpkg_check_timeout = 7\n", ("--dockerpkg-check-timeout", "0"), "None"),
    ],
)
def test_the_structure_checks_time_bound_is_read_from_option_and_ini(
    pytester: pytest.Pytester, tree: Path, ini: str, args: tuple[str, ...], seen: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}")
    pytester.makepyfile(test_timeout=THE_TIMEOUT)
    result = with_tree(pytester, "-s", "-k", "test_timeout", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*check timeout: {seen}"])


def test_a_time_bound_that_is_not_a_number_is_a_usage_error(
    pytester: pytest.Pytester, tree: Path
) -> None:
    result = with_tree(pytester, "--dockerpkg-check-timeout", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dockerpkg-check-timeout soon: not a number of seconds*"])


# A worker's test session that says something (as one does after removing a killed
# session's leftovers): only the worker's state says it, not the controller's.
SAYING_WORKER = """
import pytest
from dockerpkg.pytestplugin.state import state_of

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if hasattr(config, "workerinput"):
        said = ["removed the leftovers of session dead-1"]
        state_of(config).session_warnings = lambda: said
"""


def test_the_session_summary_reaches_the_controller_under_xdist(
    pytester: pytest.Pytester, tree: Path
) -> None:
    pytester.makeconftest(SAYING_WORKER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dockerpkg", "tree",
        "--dockerpkg-config", "tree-config.yaml",
    )  # fmt: skip
    result.assert_outcomes(passed=1 + len(IMAGES) * len(ITEMS))
    result.stdout.fnmatch_lines(
        ["*= dockerpkg test session =*", "removed the leftovers of session dead-1"]
    )
    assert result.stdout.str().count("removed the leftovers of session dead-1") == 1
