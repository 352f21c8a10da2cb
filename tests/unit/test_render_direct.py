"""Templates rendered from their tokens (only `image_tag` of a constant and plain variables)
come out exactly as Jinja renders them, and everything else is left to Jinja."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.core import render as render_module
from dockerpkg.core.config import load_config
from dockerpkg.core.render import KnownImages, Rendered, render_template
from dockerpkg.errors import DockerPkgError

ROOT = Path(__file__).resolve().parents[2]

KNOWN = KnownImages(
    labels={
        "reg/base": "reg/base:1.0-1",
        "reg/app": "reg/app:2.0-1",
        "reg/ns/other": "reg/ns/other:3",
    },
    base=frozenset({"reg/base"}),
    registry="reg",
    namespace=None,
)
CONFIG = load_config([("c.yaml", "registry: reg\napt_options: -o Foo=1\nseed_word: hello\n")])

# Each rendered by tokens; every line a case Jinja's lexer treats in its own way.
DIRECT = [
    'FROM {{ "base" | image_tag }}\nRUN true\n',
    'FROM {{ "base"|image_tag }}\n\n\n',
    "FROM {{ 'app' | image_tag }}\r\nRUN a\r\n",
    'FROM {{- "base" | image_tag -}}\n  RUN x',
    'FROM x\n  {{- "app" | image_tag }}  \nRUN {{ apt_options }} {{ registry }}',
    '{# a comment #}FROM {{ "base" | image_tag }}\n{#- another -#}\nRUN {{ seed_word }}',
    'FROM {{ "ns/other" | image_tag }}\nCOPY --from={{ "app" | image_tag }} /a /b\n',
    'FROM {{ "b\\x61se" | image_tag }}\n',
    "FROM plain\nRUN echo no jinja at all\n",
    "",
    "FROM x\n{{ namespace }}|{{ username }}|{{ base_images }}",
    "FROM x\n{% raw %}RUN {{ kept as written }}{% endraw %}\n",
]

# Left to Jinja: other filters, expressions, blocks, constants, globals, unknown names.
BY_JINJA = [
    'FROM {{ "base" | image_tag | upper }}',
    '{{ "x" | apt_install }}',
    "{% if registry %}FROM a{% endif %}",
    "{{ true }}",
    "{{ range }}",
    '{{ "base" }}',
    '{{ "ba" "se" | image_tag }}',
    "{{ registry ~ '/x' }}",
    'FROM {{ "base" | image_tag() }}',
]


def both_ways(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Rendered, Rendered]:
    def rendered() -> Rendered:
        return render_template(text, {}, CONFIG, KNOWN, where="img/Dockerfile.template")

    direct = rendered()
    with monkeypatch.context() as patch:
        patch.setattr(render_module, "_direct", lambda *args: None)
        jinja = rendered()
    return direct, jinja


def tokens_render(text: str) -> tuple[str, list[str]] | None:
    return render_module._direct(render_module.sandbox().lexer, text, CONFIG, KNOWN)


@pytest.mark.parametrize("text", [t for t in DIRECT if t.strip()])
def test_rendered_by_tokens_as_by_jinja(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tokens_render(text) is not None
    direct, jinja = both_ways(text, monkeypatch)
    assert direct.dockerfile == jinja.dockerfile
    assert direct.used == jinja.used


@pytest.mark.parametrize("text", BY_JINJA)
def test_other_templates_are_left_to_jinja(text: str) -> None:
    assert tokens_render(text) is None


def test_the_sandbox_lexes_as_jinja_by_default() -> None:
    """Templates are lexed for the shortcut without a sandbox: its lexer must be the same."""
    import jinja2

    assert render_module.sandbox().lexer is jinja2.Environment().lexer


def test_blank_template_is_still_an_error() -> None:
    assert tokens_render("") == ("", [])
    with pytest.raises(DockerPkgError) as info:
        render_template("{# only #}\n", {}, CONFIG, KNOWN, where="img/Dockerfile.template")
    (problem,) = info.value.problems
    assert problem.message == "renders to nothing: the result is empty or blank"
    assert problem.location.path == "img/Dockerfile.template"


def test_unknown_image_is_reported_by_jinja_at_its_line() -> None:
    assert tokens_render('FROM a\nFROM {{ "nope" | image_tag }}') is None
    with pytest.raises(DockerPkgError) as info:
        render_template(
            'FROM a\nFROM {{ "nope" | image_tag }}',
            {},
            CONFIG,
            KNOWN,
            where="i/Dockerfile.template",
        )
    (problem,) = info.value.problems
    assert problem.location.line == 2
    assert "unknown image 'nope'" in problem.message


def test_undefined_variable_is_reported_by_jinja() -> None:
    assert tokens_render("FROM a\nRUN {{ nothing_like_it }}") is None
    with pytest.raises(DockerPkgError, match="undefined variable"):
        render_template(
            "FROM a\nRUN {{ nothing_like_it }}", {}, CONFIG, KNOWN, where="i/Dockerfile.template"
        )


def test_every_template_of_the_repository_renders_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The templates of the fixtures and examples, with every `image_tag` name known: both
    ways give the same Dockerfile, or both fail."""
    templates = sorted(
        p
        for folder in ("fixtures", "examples")
        for p in (ROOT / folder).rglob("Dockerfile*.template")
    )
    assert len(templates) > 20
    direct_count = 0
    for path in templates:
        text = path.read_text(encoding="utf-8")
        names = render_module.static_image_tags(text) or ()
        labels = {**KNOWN.labels, **{f"reg/{n}": f"reg/{n}:1.0" for n in names}}
        known = KnownImages(labels=labels, base=KNOWN.base, registry="reg", namespace=None)

        def rendered(text: str = text, known: KnownImages = known) -> str | None:
            try:
                result = render_template(text, {}, CONFIG, known, where="i/Dockerfile.template")
            except DockerPkgError:
                return None
            return result.dockerfile

        direct = rendered()
        direct_count += (
            render_module._direct(render_module.sandbox().lexer, text, CONFIG, known) is not None
        )
        with monkeypatch.context() as patch:
            patch.setattr(render_module, "_direct", lambda *args: None)
            assert rendered() == direct, path
    assert direct_count > 5  # the shortcut was taken for some of them
