"""Tests of the example tree's images, written with the dockerpkg pytest plugin's fixtures.

    pytest --dockerpkg examples/tree --dockerpkg-config examples/config.yaml examples/tests

collects these and the tree's own items (render, lint, build, test.sh, structure checks);
the tests using `dockerpkg_image` are skipped unless --dockerpkg-build is given and a Docker
daemon answers. See docs/testing.md.
"""

from __future__ import annotations

import pytest


def test_every_image_builds_on_the_base(dockerpkg_tree):
    images = dockerpkg_tree.tree.images
    assert dockerpkg_tree.tree.order[0] == "example-base"
    for name in dockerpkg_tree.tree.order[1:]:
        assert images[name].parents, f"{name} builds on no image of the tree"


def test_the_plan_builds_and_verifies_every_image(dockerpkg_plan):
    built = {step.image for step in dockerpkg_plan.steps if step.op.value == "build"}
    assert built == {"example-base", "example-tools", "example-web", "example-app"}


@pytest.mark.dockerpkg_images("example-*")
def test_no_image_names_a_user(image_name, rendered):
    # Users by uid only: the `uid` filter turns a name into its number.
    users = [line for line in rendered[image_name].splitlines() if line.startswith("USER ")]
    assert all(line.split()[1].isdigit() for line in users)


def test_the_tool_greets(dockerpkg_image):
    exit_code, stdout, _ = dockerpkg_image("example-tools").run(["hello"])
    assert (exit_code, stdout) == (0, "hello: hello from dockerpkg\n")


def test_the_page_is_served_from_the_web_image(dockerpkg_image):
    web = dockerpkg_image("example-web")
    assert web.file("/srv/web/index.html") == b"<p>example</p>\n"
    assert web.config.user == "65534"  # inherited from example-base
