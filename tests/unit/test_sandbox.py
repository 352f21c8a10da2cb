"""Templates are untrusted input: known Jinja escapes are refused with a located error, and
`plan --offline` (what CI runs on merge requests) neither runs them nor leaks the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.config import Config
from dockerpkg.core.render import KnownImages, render_template
from dockerpkg.errors import DockerPkgError

KNOWN = KnownImages(labels={}, base=frozenset(), registry=None, namespace=None)

# Each: a template line trying to reach Python's internals, run code or exhaust memory.
ESCAPES = {
    "lipsum-globals-popen": '{{ lipsum.__globals__.os.popen("id").read() }}',
    "cycler-environ": "{{ cycler.__init__.__globals__.os.environ }}",
    "joiner-globals": "{{ joiner.__init__.__globals__ }}",
    "namespace-globals": "{{ namespace.__init__.__globals__ }}",
    "self-context": "{{ self._TemplateReference__context }}",
    "self-init": "{{ self.__init__.__globals__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "base-subclasses": "{{ [].__class__.__base__.__subclasses__() }}",
    "mro-call": "{{ ''.__class__.mro() }}",
    "attr-filter": "{{ ()|attr('__class__')|attr('__base__') }}",
    "attr-filter-escaped": "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "map-attribute": "{{ ([()]|map(attribute='__class__')|first).__base__ }}",
    "format-string": "{{ '{0.__class__.__base__}'.format(()) }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': ()}) }}",
    "format-filter-then-attr": "{{ ('%s'|format(1)).__class__ }}",
    "getattr-globals": "{{ range.__self__ }}",
    "func-code": "{{ lipsum.__code__ }}",
    "range-memory": "{{ range(10**9)|list|length }}",
    "string-repeat": "{{ 'x' * 1000000000 }}",
    "list-repeat": "{{ [0] * 100000000 }}",
    "huge-power": "{{ 10 ** 100000000 }}",
    "ljust-memory": "{{ 'x'.ljust(1000000000) }}",
    "center-filter-memory": "{{ 'x'|center(1000000000) }}",
    "indent-filter-memory": "{{ 'x'|indent(1000000000, true) }}",
}


def render(text: str) -> str:
    rendered = render_template(text, {}, Config(), KNOWN, where="img/Dockerfile.template", names=())
    assert rendered.dockerfile is not None
    return rendered.dockerfile


@pytest.mark.parametrize("payload", list(ESCAPES.values()), ids=list(ESCAPES))
def test_escape_is_a_located_error(payload: str) -> None:
    with pytest.raises(DockerPkgError) as info:
        render(f"FROM scratch\nRUN echo {payload}\n")
    (problem,) = info.value.problems
    assert str(problem.location) == "img/Dockerfile.template:2"
    assert problem.message.startswith(
        ("refused by the template sandbox: ", "undefined variable: ")
    ), problem.message
    assert "uid=" not in problem.message


@pytest.mark.parametrize(
    ("template", "want"),
    [
        # What templates of real trees do keep working.
        (
            "{% set flags = [] %}{% for f in ['a', 'b'] %}{% do flags.append(f|upper) %}"
            "{% endfor %}{{ flags|join(' ') }}",
            "A B",
        ),
        ("{{ '%s-%s'|format('a', 1) }} {{ '{}:{}'.format('x', 2) }}", "a-1 x:2"),
        (
            "{{ 'ab'.upper() }} {{ 'a,b'.split(',')|list }} {{ '-' * 20 }}",
            "AB ['a', 'b'] " + "-" * 20,
        ),
        ("{{ range(3)|list }} {{ 2 ** 10 }} {{ 'x'|center(5) }}", "[0, 1, 2] 1024   x  "),
        ("{{ {'a': 1}.items()|list }} {{ 'a b'|replace(' ', '_') }}", "[('a', 1)] a_b"),
    ],
)
def test_ordinary_templates_still_render(template: str, want: str) -> None:
    assert render(template) == want


def test_plan_of_a_merge_request_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two escapes found in review, through the real CLI, with a password in the
    environment: exit 1, a located error, no command output and no password anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKERPKG_USERNAME", "ci")
    monkeypatch.setenv("DOCKERPKG_PASSWORD", "hunter2-sandbox")
    folder = tmp_path / "tree" / "img"
    folder.mkdir(parents=True)
    (folder / "changelog").write_text(
        "img (1.0) wikimedia; urgency=medium\n\n  * x\n\n"
        " -- A <a@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n"
    )
    marker = tmp_path / "ran"
    for payload in (
        f'{{{{ lipsum.__globals__.os.popen("touch {marker}; id").read() }}}}',
        "{{ cycler.__init__.__globals__.os.environ }}",
    ):
        (folder / "Dockerfile.template").write_text(f"FROM scratch\nRUN echo {payload}\n")
        for argv in (["plan", "--offline", "--json", "tree"], ["lint", "tree"]):
            status = main(argv)
            out, err = capsys.readouterr()
            assert status == 1
            assert "img/Dockerfile.template:2: error: " in out + err
            assert "refused by the template sandbox" in out + err
            assert "hunter2" not in out + err
            assert "uid=" not in out + err
            assert "Traceback" not in out + err
        assert not marker.exists()
