"""Rendering rules beyond the compat cases: includes, numeric users, filters."""

from __future__ import annotations

import pytest

from dockerpkg.core.config import load_config
from dockerpkg.core.render import KnownImages, render_template, upstream_version
from dockerpkg.errors import DockerPkgError

KNOWN = KnownImages(
    labels={"reg/base": "reg/base:1.0-1", "reg:5000/ns/x": "reg:5000/ns/x:2:1.0-1"},
    base=frozenset({"reg/base"}),
    registry="reg",
    namespace=None,
)


def render(text: str, files: dict[str, str] | None = None, config: str = "") -> str:
    result = render_template(
        text, files or {}, load_config([("c.yaml", config)]), KNOWN, where="img/Dockerfile.template"
    )
    assert result.dockerfile is not None
    return result.dockerfile


class TestIncludes:
    """A template may include files of its own folder, and nothing else."""

    def test_include_own_file(self) -> None:
        assert (
            render('{% include "snippets/run.txt" %}', {"snippets/run.txt": "RUN true"})
            == "RUN true"
        )

    @pytest.mark.parametrize("name", ["../other/Dockerfile.template", "/etc/passwd"])
    def test_include_outside_is_an_error(self, name: str) -> None:
        with pytest.raises(DockerPkgError) as info:
            render(f'FROM x\n{{% include "{name}" %}}')
        (problem,) = info.value.problems
        assert problem.location.line == 2
        assert "outside the image folder" in problem.message


class TestNumericUser:
    """force_numeric_user is checked when planning, on the rendered Dockerfile."""

    def test_named_user_refused(self) -> None:
        with pytest.raises(DockerPkgError) as info:
            render("FROM x\nUSER 0\nUSER www-data", config="force_numeric_user: true\n")
        assert "USER www-data" in info.value.problems[0].message

    @pytest.mark.parametrize("user", ["USER 33", "USER 33:33"])
    def test_numeric_user_accepted(self, user: str) -> None:
        assert render(f"FROM x\n{user}", config="force_numeric_user: true\n").endswith(user)

    def test_off_by_default(self) -> None:
        assert render("FROM x\nUSER www-data").endswith("www-data")


class TestFilters:
    """image_tag and upstream_version on labels docker-pkg could not handle."""

    def test_epoch_and_port(self) -> None:
        assert upstream_version("reg:5000/ns/x:2:1.0-1") == "1.0"
        assert upstream_version("reg/lib:0.9.1-2-20260301") == "0.9.1"
        assert upstream_version("reg/lib:20260301") == "20260301"

    def test_image_tag_by_short_base_name(self) -> None:
        assert render('FROM {{ "base" | image_tag }}') == "FROM reg/base:1.0-1"
