"""The pytest plugin without Docker, tested the standard way (pytester): collection of a tree
(under the rootdir and outside it, by option and by ini key), selection, render and lint
failures with dockerpkg's messages, JUnit XML, Docker items collected only with
--dockerpkg-build and skipped or failed without a daemon, a config that cannot be read."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.plugintrees import IMAGES, copy_tree

ITEMS = ("render", "lint")
DOCKER_ITEMS = ("build", "test.sh")
DEAD_DOCKER = "unix:///nonexistent/dockerpkg-test.sock"


@pytest.fixture
def tree(pytester: pytest.Pytester) -> Path:
    return copy_tree(pytester.path)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In this process the package is imported already: pytest cannot rewrite its asserts.
    return pytester.runpytest("-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def with_tree(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run(pytester, "--dockerpkg", "tree", "--dockerpkg-config", "tree-config.yaml", *args)


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_every_image_is_a_node_holding_its_items(pytester: pytest.Pytester, tree: Path) -> None:
    result = with_tree(pytester, "--collect-only", "-q")
    assert result.ret == 0
    assert collected(result) == [f"tree::{image}::{item}" for image in IMAGES for item in ITEMS]


@pytest.mark.parametrize("option", ["--dockerpkg-build", "--dockerpkg-require-docker"])
def test_the_docker_items_are_collected_with_the_build_option(
    pytester: pytest.Pytester, tree: Path, option: str
) -> None:
    result = with_tree(pytester, "--collect-only", "-q", option)
    assert result.ret == 0
    assert collected(result) == [
        f"tree::{image}::{item}" for image in IMAGES for item in (*ITEMS, *DOCKER_ITEMS)
    ]


def test_images_are_nodes_named_after_them_with_their_folders(
    pytester: pytest.Pytester, tree: Path
) -> None:
    result = with_tree(pytester, "--collect-only")
    # Named after the image (its changelog), whatever its folder is called.
    result.stdout.fnmatch_lines(
        ["*<TreeNode tree>", "*<ImageNode plugin-base>", "*<RenderItem render>", "*<LintItem lint>"]
    )


def test_a_tree_outside_the_rootdir_is_collected(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    tree = copy_tree(elsewhere)
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = run(
        pytester,
        "--dockerpkg",
        str(tree),
        "--dockerpkg-config",
        str(elsewhere / "tree-config.yaml"),
        "-v",
    )
    assert result.ret == 0
    result.assert_outcomes(passed=1 + 2 * len(IMAGES))
    result.stdout.fnmatch_lines(
        ["*test_own.py::test_own PASSED*", "*tree::plugin-child-b::lint PASSED*"]
    )


def test_a_tree_given_as_an_argument_is_collected_once(
    pytester: pytest.Pytester, tree: Path
) -> None:
    result = with_tree(pytester, "--collect-only", "-q", "tree")
    assert len(collected(result)) == len(IMAGES) * len(ITEMS)


def test_an_argument_inside_the_tree_selects_an_image(
    pytester: pytest.Pytester, tree: Path
) -> None:
    result = with_tree(pytester, "--collect-only", "-q", "tree/child-a")
    assert collected(result) == [f"tree::plugin-child-a::{item}" for item in ITEMS]


def test_the_ini_keys_name_the_tree_and_its_config(pytester: pytest.Pytester, tree: Path) -> None:
    pytester.makeini("[pytest]\ndockerpkg_tree = tree\ndockerpkg_config = tree-config.yaml\n")
    result = run(pytester, "--collect-only", "-q")
    assert len(collected(result)) == len(IMAGES) * len(ITEMS)


def test_with_the_ini_key_explicit_arguments_leave_the_tree_out(
    pytester: pytest.Pytester, tree: Path
) -> None:
    pytester.makeini("[pytest]\ndockerpkg_tree = tree\ndockerpkg_config = tree-config.yaml\n")
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = run(pytester, "--collect-only", "-q", "test_own.py")
    assert collected(result) == ["test_own.py::test_own"]


def test_off_without_a_tree(pytester: pytest.Pytester, tree: Path) -> None:
    pytester.makepyfile(test_own="def test_tree(dockerpkg_tree):\n    pass\n")
    result = run(pytester, "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the dockerpkg plugin is off: name a tree with --dockerpkg*"])
    assert "tree::" not in result.stdout.str()


def test_off_it_imports_nothing_of_dockerpkg(pytester: pytest.Pytester) -> None:
    # A process of its own: this one has long imported the library.
    pytester.makepyfile(
        test_own="""
        import sys

        def test_nothing_loaded():
            loaded = sorted(m for m in sys.modules if m.startswith("dockerpkg"))
            assert loaded == [
                "dockerpkg", "dockerpkg.pytestplugin", "dockerpkg.pytestplugin.options",
                "dockerpkg.pytestplugin.plugin",
            ]
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_missing_tree_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--dockerpkg", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dockerpkg nowhere: no such folder*"])


def test_k_selects_images_and_items(pytester: pytest.Pytester, tree: Path) -> None:
    result = with_tree(pytester, "-v", "-k", "child-a and lint")
    result.assert_outcomes(passed=1, deselected=len(IMAGES) * len(ITEMS) - 1)
    result.stdout.fnmatch_lines(["*tree::plugin-child-a::lint PASSED*"])


def test_m_leaves_the_docker_items_out(pytester: pytest.Pytester, tree: Path) -> None:
    result = with_tree(pytester, "--dockerpkg-build", "-m", "not dockerpkg_docker")
    result.assert_outcomes(passed=2 * len(IMAGES), deselected=2 * len(IMAGES))


def break_template(tree: Path) -> None:
    (tree / "child-a" / "Dockerfile.template").write_text(
        'FROM {{ "plugin-base" | image_tag }}\nRUN echo {{ missing | nofilter }}\n'
    )


def test_a_template_that_does_not_render_fails_render_with_its_line(
    pytester: pytest.Pytester, tree: Path
) -> None:
    break_template(tree)
    result = with_tree(pytester, "-k", "render")
    result.assert_outcomes(passed=len(IMAGES) - 1, failed=1, deselected=len(IMAGES))
    result.stdout.fnmatch_lines(
        [
            "*_ plugin-child-a render _*",
            "child-a/Dockerfile.template:2: error: *nofilter*",
            "FAILED tree::plugin-child-a::render - *",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "dockerpkg/pytestplugin" not in result.stdout.str()


def test_lint_errors_fail_and_warnings_go_to_the_summary(
    pytester: pytest.Pytester, tree: Path
) -> None:
    config = pytester.path / "tree-config.yaml"
    config.write_text(config.read_text() + "force_numeric_user: true\n")
    template = tree / "child-b" / "Dockerfile.template"
    template.write_text(template.read_text() + "USER nobody\n")
    result = with_tree(pytester)
    # The build's rendering refuses the USER, and lint says why.
    result.assert_outcomes(passed=2 * len(IMAGES) - 2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ plugin-child-b lint _*",
            "child-b/Dockerfile.template:3: error: ?non-numeric-user? *'USER nobody'*",
            "*= dockerpkg lint warnings =*",
            "child-a: warning: ?missing-test? image 'plugin-child-a' has no test.sh*",
            "child-b: warning: ?missing-test? image 'plugin-child-b' has no test.sh*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["child-b/Dockerfile.template: error: last USER instruction 'USER nobody' is not numeric*"]
    )


def test_findings_about_no_image_are_the_trees_own_lint_item(
    pytester: pytest.Pytester, tree: Path
) -> None:
    config = pytester.path / "tree-config.yaml"
    config.write_text(config.read_text() + "no_such_key: 1\n")
    result = with_tree(pytester, "-v")
    result.stdout.fnmatch_lines(["*tree::lint PASSED*", "tree-config.yaml:*no_such_key*"])


def test_a_config_that_cannot_be_read_is_one_failing_item(
    pytester: pytest.Pytester, tree: Path
) -> None:
    (pytester.path / "tree-config.yaml").write_text("registry: [unclosed\n")
    result = with_tree(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*tree tree*", "tree-config.yaml:2: error: not valid YAML*", "FAILED tree::tree*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_junit_xml_names_each_item_and_carries_the_messages(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    break_template(tree)
    with_tree(pytester, "--junitxml=report.xml", "--dockerpkg-build")
    cases = {
        (case.get("classname"), case.get("name")): case
        for case in ET.parse(pytester.path / "report.xml").getroot().iter("testcase")
    }
    assert len(cases) == len(IMAGES) * len((*ITEMS, *DOCKER_ITEMS))
    failure = cases["tree.plugin-child-a", "render"].find("failure")
    assert failure is not None
    assert "child-a/Dockerfile.template:2: error:" in (failure.text or "")
    skipped = cases["tree.plugin-base", "build"].find("skipped")
    assert skipped is not None
    assert "cannot reach the Docker daemon" in (skipped.get("message") or "")
    warning = cases["tree.plugin-child-b", "lint"].find("properties/property")
    assert warning is not None
    assert "[missing-test]" in (warning.get("value") or "")


def test_lf_reruns_only_what_failed(pytester: pytest.Pytester, tree: Path) -> None:
    break_template(tree)
    with_tree(pytester)
    result = with_tree(pytester, "--lf", "-v")
    result.assert_outcomes(failed=2, deselected=len(IMAGES) * len(ITEMS) - 2)
    result.stdout.fnmatch_lines(
        ["*plugin-child-a::render FAILED*", "*plugin-child-a::lint FAILED*"]
    )


def test_x_stops_at_the_first_failure(pytester: pytest.Pytester, tree: Path) -> None:
    break_template(tree)
    result = with_tree(pytester, "-x")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_without_docker_the_docker_items_are_skipped_with_the_reason(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    result = with_tree(pytester, "--dockerpkg-build", "-rs")
    result.assert_outcomes(passed=2 * len(IMAGES), skipped=2 * len(IMAGES))
    result.stdout.fnmatch_lines(
        [f"SKIPPED * cannot reach the Docker daemon (DOCKER_HOST={DEAD_DOCKER})*"]
    )
    # Each skip is reported at its item (the file it runs), not where the plugin raises it.
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] tree/base/Dockerfile.template:1: cannot reach*",
            "SKIPPED [[]1] tree/base/test.sh:1: cannot reach*",
        ],
        consecutive=False,
    )
    assert "state.py" not in result.stdout.str()


def test_require_docker_fails_the_docker_items(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    result = with_tree(pytester, "--dockerpkg-require-docker")
    result.assert_outcomes(passed=2 * len(IMAGES), failed=2 * len(IMAGES))
    result.stdout.fnmatch_lines(
        [
            "*_ plugin-base build _*",
            f"cannot reach the Docker daemon (DOCKER_HOST={DEAD_DOCKER}): *"
            "(--dockerpkg-require-docker)",
        ]
    )


CHECKS = """\
schemaVersion: 2.0.0
commandTests:
  - name: says hello
    command: echo
    args: [hello]
  - name: build
    command: "true"
fileExistenceTests:
  - name: has a shell
    path: /bin/sh
metadataTest:
  user: "65534"
"""


def test_every_structure_check_is_an_item_named_after_it(
    pytester: pytest.Pytester, tree: Path
) -> None:
    (tree / "base" / "structure-tests.yaml").write_text(CHECKS)
    result = with_tree(pytester, "--dockerpkg-build", "--collect-only", "-q", "-k", "plugin-base")
    # A check named as a fixed item is numbered (the file's names are unique: checked).
    assert collected(result) == [
        *(f"tree::plugin-base::{item}" for item in (*ITEMS, *DOCKER_ITEMS)),
        "tree::plugin-base::says hello",
        "tree::plugin-base::build #2",
        "tree::plugin-base::has a shell",
        "tree::plugin-base::Metadata Test",
    ]


def test_structure_checks_are_skipped_without_docker(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    (tree / "base" / "structure-tests.yaml").write_text(CHECKS)
    result = with_tree(pytester, "--dockerpkg-build", "-k", "plugin-base")
    result.assert_outcomes(passed=2, skipped=2 + 4, deselected=2 * len((*ITEMS, *DOCKER_ITEMS)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"schemaVersion: 2.0.0\ncommandTests:\n  - name: no command\n",
            "child-b/structure-tests.yaml:3: error: *",
        ),
        (
            b"schemaVersion: 2.0.0\n# caf\xe9\n",
            "child-b/structure-tests.yaml:2: error: not UTF-8 text (byte 0xe9)",
        ),
        (
            b"# " + b"x" * (256 * 1024) + b"\n",
            "child-b/structure-tests.yaml: error: larger than 256 KiB",
        ),
    ],
    ids=["bad-yaml", "not-utf-8", "too-big"],
)
def test_a_structure_tests_file_that_cannot_be_read_is_one_failing_item(
    pytester: pytest.Pytester,
    tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes,
    message: str,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    (tree / "child-b" / "structure-tests.yaml").write_bytes(content)
    result = with_tree(pytester, "--dockerpkg-build", "-rfs")
    # The file's item fails with the located message; the image's other items, and the rest
    # of the tree, still run (the Docker items skip: no daemon).
    result.assert_outcomes(
        passed=len(IMAGES) * len(ITEMS), skipped=len(IMAGES) * len(DOCKER_ITEMS), failed=1
    )
    result.stdout.fnmatch_lines([message])
    result.stdout.fnmatch_lines(["FAILED tree::plugin-child-b::structure-tests.yaml*"])
    assert "Traceback" not in result.stdout.str()


def test_a_tree_named_through_a_link_is_collected(pytester: pytest.Pytester, tree: Path) -> None:
    (pytester.path / "link").symlink_to(tree)
    result = run(pytester, "--dockerpkg", "link", "--dockerpkg-config", "tree-config.yaml")
    result.assert_outcomes(passed=2 * len(IMAGES))


def test_without_the_build_option_structure_tests_yaml_is_not_read(
    pytester: pytest.Pytester, tree: Path
) -> None:
    (tree / "base" / "structure-tests.yaml").write_text(CHECKS)
    (tree / "child-b" / "structure-tests.yaml").write_text(
        "schemaVersion: 2.0.0\ncommandTests:\n  - name: no command\n"
    )
    result = with_tree(pytester, "-v")
    # No check item, no collection error: the Docker items are not there to need the file.
    result.assert_outcomes(passed=len(IMAGES) * len(ITEMS))
    assert "says hello" not in result.stdout.str()
    assert "structure-tests.yaml" not in result.stdout.str()


def test_the_users_tests_inside_the_tree_are_collected_as_usual(
    pytester: pytest.Pytester, tree: Path
) -> None:
    (tree / "tests").mkdir()
    (tree / "tests" / "test_own.py").write_text("def test_own():\n    pass\n")
    # In a build context: a file of the image, not a test of the user's.
    (tree / "base" / "test_in_image.py").write_text("def test_in_image():\n    assert False\n")
    pytester.chdir()
    with_everything = with_tree(pytester, "--collect-only", "-q")
    assert collected(with_everything) == [
        *(f"tree::{image}::{item}" for image in IMAGES for item in ITEMS),
        "tree/tests/test_own.py::test_own",
    ]
    only_mine = with_tree(pytester, "tree/tests", "-v")
    only_mine.assert_outcomes(passed=1)


def test_a_tree_that_is_the_rootdir_keeps_the_users_tests(
    pytester: pytest.Pytester, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tree / "tests").mkdir()
    (tree / "tests" / "test_own.py").write_text("def test_own():\n    pass\n")
    (tree / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(tree)
    result = run(pytester, "--dockerpkg", ".", "--dockerpkg-config", "../tree-config.yaml")
    result.assert_outcomes(passed=1 + len(IMAGES) * len(ITEMS))
    only_mine = run(
        pytester, "--dockerpkg", ".", "--dockerpkg-config", "../tree-config.yaml", "tests"
    )
    only_mine.assert_outcomes(passed=1)


def test_without_the_build_option_nothing_of_docker_or_structure_tests_is_loaded(
    pytester: pytest.Pytester, tree: Path
) -> None:
    # A process of its own: this one has long imported the library.
    pytester.makepyfile(
        test_own="""
        import sys

        def test_not_loaded():
            loaded = {m for m in sys.modules if m.startswith(("dockerpkg", "docker."))}
            assert "dockerpkg.pytestplugin.nodes" in loaded  # the tree was collected
            assert not loaded & {"dockerpkg.core.structure", "dockerpkg.core.structure_yaml",
                                 "dockerpkg.api.testsession", "docker.client"}
        """
    )
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "--dockerpkg", "tree",
        "--dockerpkg-config", "tree-config.yaml", "test_own.py", "tree",
    )  # fmt: skip
    result.assert_outcomes(passed=1 + len(IMAGES) * len(ITEMS))
