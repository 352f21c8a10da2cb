"""The pytest plugin's Docker items and dockerpkg_image on the real daemon: a three-image
tree (a parent, two children) built once per run, test.sh and every structure check run, a
failing check failing under its own name, a failing parent failing its children unbuilt,
the fixtures' run, file and config on a built image, and nothing left behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker
import pytest

from dockerpkg.effects.sessionmarks import marks_folder
from tests.integration.test_build import Site, SiteFactory
from tests.support.plugintrees import copy_tree

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("isolated_home")]

SESSION_LABEL = "org.dockerpkg.session"

BASE_CHECKS = """\
schemaVersion: 2.0.0
commandTests:
  - name: the marker is readable
    command: cat
    args: [/etc/plugin-base]
    expectedOutput: ["^base"]
fileExistenceTests:
  - name: the marker exists
    path: /etc/plugin-base
    shouldExist: true
fileContentTests:
  - name: the marker says base
    path: /etc/plugin-base
    expectedContents: ["base"]
metadataTest:
  user: "65534"
"""

CHILD_B_CHECKS = """\
schemaVersion: 2.0.0
commandTests:
  - name: the child knows itself
    command: sh
    args: ["-c", "echo $CHILD"]
    expectedOutput: ["^b"]
  - name: a check that fails on purpose
    command: sh
    args: ["-c", "echo nope"]
    expectedOutput: ["^yes"]
"""

# Counts the runs of the test session (the real one): builds once per pytest run.
COUNTING_CONFTEST = """
from dockerpkg.api import testsession

RUNS = []
_build = testsession.TestSession.build

def counted(self, names, **kwargs):
    RUNS.append(tuple(names))
    return _build(self, names, **kwargs)

testsession.TestSession.build = counted

def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"session builds: {RUNS}")
"""


@pytest.fixture
def site(make_site: SiteFactory) -> Site:
    """A registry of the test's own holding the base image (the tree's images have fixed
    names: another registry host keeps their tags apart from any other run's)."""
    return make_site()


@pytest.fixture
def tree(pytester: pytest.Pytester, site: Site) -> Path:
    tree = copy_tree(pytester.path)
    config = pytester.path / "tree-config.yaml"
    config.write_text(site.config().read_text())
    config.chmod(0o600)  # it holds the registry's password
    (tree / "base" / "structure-tests.yaml").write_text(BASE_CHECKS)
    (tree / "child-b" / "structure-tests.yaml").write_text(CHILD_B_CHECKS)
    pytester.makeconftest(COUNTING_CONFTEST)
    return tree


def run_tree(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--dockerpkg",
        "tree",
        "--dockerpkg-config",
        "tree-config.yaml",
        "--dockerpkg-require-docker",
        "--dockerpkg-no-pull",
        "-v",
        *args,
    )


def leftovers(client: docker.DockerClient) -> tuple[list[str], list[str], list[str], list[str]]:
    """The session tags of the plugin tree's images, the sessions' containers and labelled
    (committed) images, and the sessions' marks."""
    tags = [
        tag
        for image in client.api.images()
        for tag in image.get("RepoTags") or ()
        if ("/plugin-" in tag or "/example-" in tag) and "-pytest-" in tag
    ]
    containers = [
        str(c.id) for c in client.containers.list(all=True, filters={"label": SESSION_LABEL})
    ]
    images = [str(i.id) for i in client.images.list(all=True, filters={"label": SESSION_LABEL})]
    return tags, containers, images, sorted(os.listdir(marks_folder()))


def test_three_images_build_once_and_run_every_check(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    before = leftovers(docker_client)
    result = run_tree(pytester)
    for line in (
        "tree::plugin-base::build PASSED",
        "tree::plugin-base::test.sh PASSED",
        "tree::plugin-base::the marker is readable PASSED",
        "tree::plugin-base::the marker exists PASSED",
        "tree::plugin-base::the marker says base PASSED",
        "tree::plugin-base::Metadata Test PASSED",
        "tree::plugin-child-a::build PASSED",
        "tree::plugin-child-a::test.sh SKIPPED *",
        "tree::plugin-child-b::build PASSED",
        "tree::plugin-child-b::the child knows itself PASSED",
        "tree::plugin-child-b::a check that fails on purpose FAILED",
    ):
        result.stdout.fnmatch_lines([f"{line}*"])
    # The failing check fails under its name, at its line, with the verdict's reason.
    result.stdout.fnmatch_lines(
        [
            "*_ plugin-child-b a check that fails on purpose _*",
            "child-b/structure-tests.yaml:*: check 'a check that fails on purpose' failed",
        ]
    )
    result.assert_outcomes(passed=8 + 3 + 4, failed=1, skipped=2)
    # One run of the session built all three.
    result.stdout.fnmatch_lines(
        ["session builds: [('plugin-base', 'plugin-child-a', 'plugin-child-b')]"]
    )
    assert leftovers(docker_client) == before


def test_a_failing_parent_fails_its_children_without_building_them(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    template = tree / "base" / "Dockerfile.template"
    template.write_text(template.read_text().replace("RUN echo base", "RUN false && echo"))
    before = leftovers(docker_client)
    result = run_tree(pytester, "-m", "dockerpkg_docker")
    result.stdout.fnmatch_lines(["*tree::plugin-base::build FAILED*"])
    for child in ("plugin-child-a", "plugin-child-b"):
        result.stdout.fnmatch_lines([f"*tree::{child}::build FAILED*"])
    # The children's test.sh and check items fail as their builds do, without a second run.
    for item in ("plugin-child-b::test.sh", "plugin-child-b::the child knows itself"):
        result.stdout.fnmatch_lines([f"*tree::{item} FAILED*"])
    result.stdout.fnmatch_lines(["*_ plugin-child-a build _*", "parent failed*"])
    result.stdout.fnmatch_lines(["*_ plugin-child-b the child knows itself _*", "parent failed*"])
    result.stdout.fnmatch_lines(
        ["session builds: [('plugin-base', 'plugin-child-a', 'plugin-child-b')]"]
    )
    # No item passed: nothing was built to run them on (child-a's test.sh: none, skipped).
    assert result.parseoutcomes().get("passed", 0) == 0
    assert leftovers(docker_client) == before


def test_a_tree_that_does_not_plan_names_the_image_at_fault(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    (tree / "child-a" / "Dockerfile.template").write_text("FROM {{ no_such_variable }\n")
    before = leftovers(docker_client)
    result = run_tree(pytester)
    # One run builds what the run selects, child-a with it: the plan of it fails, and every
    # Docker item says where the cause is.
    result.stdout.fnmatch_lines(["*tree::plugin-child-a::render FAILED*"])
    result.stdout.fnmatch_lines(["*tree::plugin-child-b::render PASSED*"])
    result.stdout.fnmatch_lines(["*tree::plugin-child-b::build FAILED*"])
    result.stdout.fnmatch_lines(["*_ plugin-child-b build _*"])
    result.stdout.fnmatch_lines(
        ["tree: error: the tree does not plan: see plugin-child-a::render", "child-a/*error*"]
    )
    assert leftovers(docker_client) == before


def test_the_fixtures_on_a_built_image(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    pytester.makepyfile(
        test_own="""
        def test_run_file_config(dockerpkg_image):
            child = dockerpkg_image("plugin-child-a")
            assert child.run(["cat", "/etc/plugin-base"]) == (0, "base\\n", "")
            code, out, err = child.run("echo $GREETING >&2; exit 3", env={"GREETING": "hi"})
            assert (code, out, err) == (3, "", "hi\\n")
            assert child.file("/etc/plugin-base") == b"base\\n"
            assert child.file("/etc/no-such-file") is None
            assert child.config.env["CHILD"] == "a"
            assert child.config.user == "65534"
            assert "-pytest-" in child.label
            assert child.digest.startswith("sha256:")
            assert dockerpkg_image("plugin-child-a").digest == child.digest
        """
    )
    before = leftovers(docker_client)
    result = run_tree(pytester, "-m", "not dockerpkg", "test_own.py")
    result.assert_outcomes(passed=1)
    # Asked by the fixture alone: one run, the child with the parent it needs.
    result.stdout.fnmatch_lines(["session builds: [('plugin-child-a',)]"])
    assert leftovers(docker_client) == before


def test_ctrl_c_closes_the_session(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    pytester.makepyfile(
        test_own="""
        def test_interrupted(dockerpkg_image):
            child = dockerpkg_image("plugin-child-a")
            print("built", child.label)
            raise KeyboardInterrupt  # as pytest sees Ctrl-C
        """
    )
    before = leftovers(docker_client)
    result = run_tree(pytester, "-s", "-m", "not dockerpkg", "test_own.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*built *plugin-child-a:2.0-pytest-*", "*KeyboardInterrupt*"])
    assert leftovers(docker_client) == before


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_tree_and_tests_pass(
    pytester: pytest.Pytester, site: Site, docker_client: docker.DockerClient
) -> None:
    # The example tree and tests as shipped, on a registry of the test's own.
    shutil.copytree(EXAMPLES / "tree", pytester.path / "tree")
    shutil.copytree(EXAMPLES / "tests", pytester.path / "tests")
    config = pytester.path / "tree-config.yaml"
    config.write_text(site.config().read_text() + "greeting: hello from dockerpkg\n")
    config.chmod(0o600)
    before = leftovers(docker_client)
    result = run_tree(pytester, "tests")
    for check in (
        "hello greets with the base image's greeting",
        "the hello tool is installed",
        "the base image's greeting is there",
        "Metadata Test",
    ):
        result.stdout.fnmatch_lines([f"tree::example-tools::{check} PASSED*"])
    result.stdout.fnmatch_lines(["tests/test_images.py::test_the_tool_greets PASSED*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    assert outcomes.get("errors", 0) == 0
    assert leftovers(docker_client) == before


def test_keep_images_leaves_the_session_tags(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    pytester.makepyfile(
        test_own="""
        def test_built(dockerpkg_image):
            print("label", dockerpkg_image("plugin-child-b").label)
        """
    )
    before = leftovers(docker_client)
    result = run_tree(pytester, "-s", "--dockerpkg-keep-images", "-m", "not dockerpkg")
    result.assert_outcomes(passed=1)
    kept = sorted(set(leftovers(docker_client)[0]) - set(before[0]))
    try:
        assert [tag.rsplit("/", 1)[1].split(":")[0] for tag in kept] == [
            "plugin-base",
            "plugin-child-b",
        ]
        result.stdout.fnmatch_lines([f"*label {kept[1]}*"])
        assert leftovers(docker_client)[1] == before[1]  # the containers go all the same
    finally:
        for tag in kept:
            docker_client.images.remove(tag, noprune=True)


def test_a_check_over_its_time_bound_fails_with_the_reason(
    pytester: pytest.Pytester, tree: Path, docker_client: docker.DockerClient
) -> None:
    checks = tree / "base" / "structure-tests.yaml"
    checks.write_text(
        checks.read_text().replace(
            "commandTests:\n",
            "commandTests:\n  - name: a check that never ends\n"
            "    command: sleep\n    args: ['600']\n",
        )
    )
    before = leftovers(docker_client)
    result = run_tree(pytester, "-k", "never", "--dockerpkg-check-timeout", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "tree::plugin-base::a check that never ends FAILED*",
            "*did not end within 3 s*",
        ]
    )
    assert leftovers(docker_client) == before
