"""Config keys no template uses: a near-miss of a known key is an error, any other a warning,
both located and reported by `plan` and `lint`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.cli import main
from dockerpkg.core.configkeys import edit_distance
from tests.support.badinput import fingerprint, write_work


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("registry", "registry", 0),
        ("regsitry", "registry", 1),
        ("registy", "registry", 1),
        ("registryy", "registry", 1),
        ("namepsace", "namespace", 1),
        ("nmespace", "namespace", 1),
        ("base_image", "base_images", 1),
        ("regstry_url", "registry", 5),
        ("", "ab", 2),
    ],
)
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


@pytest.mark.parametrize(
    ("key", "known"),
    [
        ("regsitry", "registry"),
        ("namepsace", "namespace"),
        ("base_image", "base_images"),
        ("usrname", "username"),
        ("http_proxyy", "http_proxy"),
    ],
)
@pytest.mark.parametrize("verb", ["plan", "lint"])
def test_near_miss_is_an_error(
    key: str,
    known: str,
    verb: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_work(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + f"{key}: registry.example.org\n")
    before = fingerprint(tmp_path)
    argv = ["plan", "--offline", "images"] if verb == "plan" else ["lint", "images"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    rule = "[bad-input] " if verb == "lint" else ""
    assert f"config.yaml:3: error: {rule}unknown key '{key}': did you mean '{known}'?" in out + err
    assert "Traceback" not in out + err
    assert fingerprint(tmp_path) == before


def test_a_template_using_the_key_makes_it_a_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = write_work(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + "registyr: mirror\nunrelated_thing: 1\n")
    template = tree / "base" / "Dockerfile.template"
    template.write_text(template.read_text() + "LABEL mirror={{ registyr }}\n")
    assert main(["plan", "--offline", "images"]) == 0
    err = capsys.readouterr().err
    assert err == "config.yaml:4: warning: unknown key 'unrelated_thing' that no template uses\n"
    assert main(["lint", "images"]) == 0
    out = capsys.readouterr().out
    assert "config.yaml:4: warning: [bad-input] unknown key 'unrelated_thing'" in out


def test_unused_unknown_key_is_a_warning_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_work(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + "build_timeouts_s: 30\n")
    assert main(["plan", "--offline", "images"]) == 0
    assert capsys.readouterr().err == (
        "config.yaml:3: warning: unknown key 'build_timeouts_s' that no template uses; did you "
        "mean 'build_timeout'?\n"
    )


@pytest.mark.parametrize("verb", ["plan", "lint"])
def test_keys_docker_pkg_documents_as_variables_are_known(
    verb: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docker-pkg's README lists `seed_image` among its built-in template variables;
    Wikimedia's production config sets it whether or not a template uses it."""
    write_work(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + "seed_image: docker-registry.example/bookworm:1\n")
    argv = ["plan", "--offline", "images"] if verb == "plan" else ["lint", "images"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "seed_image" not in out + err
    assert "unknown key" not in out + err


def test_a_documented_variable_is_a_template_variable_and_a_near_miss_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = write_work(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + "seed_image: seed.example/bookworm:1\n")
    template = tree / "base" / "Dockerfile.template"
    template.write_text("FROM {{ seed_image }}\n")
    assert main(["plan", "--offline", "--json", "images"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "FROM seed.example/bookworm:1" in out
    config.write_text(config.read_text().replace("seed_image:", "seed_imag:"))
    template.write_text("FROM scratch\n")
    assert main(["plan", "--offline", "images"]) == 1
    assert "config.yaml:3: error: unknown key 'seed_imag': did you mean 'seed_image'?" in (
        capsys.readouterr().err
    )
