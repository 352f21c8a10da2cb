"""Hostile plan files end in an error naming the file, never in a traceback: `apply` of an
edited plan is refused before Docker is asked anything; huge, deeply nested and mistyped
plans are refused when read."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockerpkg.api.saved import derived_build_plan, read_saved_plan
from dockerpkg.api.workspace import load_workspace
from dockerpkg.cli import main
from dockerpkg.core import planjson
from dockerpkg.core.planjson import MAX_DEPTH, MAX_PLAN_BYTES, depth_of
from dockerpkg.core.planmatch import build_differences
from dockerpkg.core.serialize import plan_from_json
from dockerpkg.errors import DockerPkgError
from tests.support.updates import write_tree

CONFIG = "registry: registry.example.org\nnamespace: team\nusername: bot\npassword: pw\n"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, CONFIG)
    (tmp_path / "config.yaml").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    # No daemon to reach: a run that got as far as Docker would fail differently.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["-c", "config.yaml", *argv])
    out, err = capsys.readouterr()
    return status, out + err


def saved_plan(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    status, output = cli(capsys, "plan", "--offline", "images", "--out", "p.json")
    assert status == 0, output
    data: dict[str, Any] = json.loads(Path("p.json").read_text("utf-8"))
    return data


class TestApplyRefusesEditedPlans:
    """`apply PLAN.json` of an edited plan: exit 1, the difference named, nothing run."""

    def test_run_added_to_a_dockerfile(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = saved_plan(capsys)
        app = next(i for i in data["images"] if i["name"] == "app")
        app["dockerfile"] += "\nRUN touch /pwned\n"
        Path("p.json").write_text(json.dumps(data), "utf-8")
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert "p.json: error: not the plan the tree and the config give" in output
        assert "p.json: error: app: dockerfile differs from the tree's" in output
        assert "'RUN touch /pwned'" in output
        assert "Traceback" not in output
        assert "nonexistent" not in output  # Docker was never asked

    def test_foreign_registry_refused_before_any_push(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = saved_plan(capsys)
        text = json.dumps(data).replace("registry.example.org", "evil.example")
        Path("p.json").write_text(text, "utf-8")
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert "p.json: error: plan: registry is 'evil.example' in the saved plan" in output
        assert "p.json: error: base: label is 'evil.example/team/base:1.0'" in output
        assert "Traceback" not in output
        assert "ValueError" not in output
        assert "nonexistent" not in output

    def test_secret_from_a_host_file(self, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
        template = work / "images" / "app" / "Dockerfile.template"
        template.write_text("FROM scratch\nRUN --mount=type=secret,id=key true\n", "utf-8")
        Path("config.yaml").write_text(CONFIG + "secrets:\n  key: {env: KEY}\n", "utf-8")
        data = saved_plan(capsys)
        data["secrets"] = [{"id": "key", "source": "file:/etc/shadow"}]
        Path("p.json").write_text(json.dumps(data), "utf-8")
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert "p.json: error: plan: secrets is [{'id': 'key', 'source': 'file:/etc/shadow'}]" in (
            output
        )

    def test_not_a_suffix_dockerpkg_makes(
        self, work: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = saved_plan(capsys)
        data["options"]["suffix"] = "-evil"
        Path("p.json").write_text(json.dumps(data), "utf-8")
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert "p.json: error: not a plan dockerpkg made: options.suffix '-evil'" in output


class TestPlanFileLimits:
    def test_huge_plan_not_read(self, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
        with open("p.json", "wb") as handle:
            handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB that take no disk
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert f"p.json: error: a plan file of {200 * 1024 * 1024} bytes: over the limit" in output
        assert str(MAX_PLAN_BYTES) in output

    def test_deeply_nested(self, work: Path, capsys: pytest.CaptureFixture[str]) -> None:
        Path("p.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
        status, output = cli(capsys, "apply", "p.json")
        assert status == 1
        assert f"p.json: error: not a dockerpkg plan: JSON nested deeper than {MAX_DEPTH}" in output
        assert "RecursionError" not in output

    def test_fifo_not_opened(self, work: Path) -> None:
        os.mkfifo("p.json")
        with pytest.raises(DockerPkgError, match="not a regular file"):
            read_saved_plan("p.json")

    def test_depth_ignores_brackets_in_strings(self) -> None:
        assert depth_of('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
        assert depth_of('["\\"]]]"]') == 1

    def test_a_string_never_closed_is_read_once(self) -> None:
        """A string left open (a journal of escaped quotes) is one token to the end: scanning
        on from each of its quotes again made reading such a file quadratic (32 KB took 8 s)."""
        text = '[{"a": "' + '\\"' * 20_000
        assert depth_of(text) == 2
        tokens = [match[0][:1] for match in planjson._TOKEN.finditer(text)]
        assert tokens == ["[", "{", '"', '"']


_WRONG: tuple[Any, ...] = (0, 1.5, "", "x", "x\x00", None, True, [], {}, [[]], {"a": {}})


def _mutations(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every place in DATA with every wrong value put there."""
    if path:
        for wrong in _WRONG:
            yield path, wrong
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _mutations(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data[:2]):
            yield from _mutations(value, (*path, index))


def _put(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(data))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def test_mistyped_plans_are_errors_not_crashes(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each field of a real saved plan set to each wrong type: reading it, and comparing it
    with the tree, gives a plan or a DockerPkgError naming the file, never another error."""
    template = work / "images" / "app" / "Dockerfile.template"
    template.write_text("FROM scratch\nRUN --mount=type=secret,id=key true\n", "utf-8")
    Path("config.yaml").write_text(CONFIG + "secrets:\n  key: {env: KEY}\n", "utf-8")
    data = saved_plan(capsys)
    workspace = load_workspace("images", "config.yaml", {}, render=False)
    original = plan_from_json(json.dumps(data), "p.json")
    counts = {"refused": 0, "read": 0}
    where: dict[str, int] = {}
    for path, wrong in _mutations(data):
        text = json.dumps(_put(data, path, wrong))
        try:
            plan = plan_from_json(text, "p.json")
            counts["read"] += 1
            build_differences(plan, original)
            derived_build_plan(plan, workspace, "p.json")
        except DockerPkgError as exc:
            where[exc.problems[0].location.path] = where.get(exc.problems[0].location.path, 0) + 1
            counts["refused"] += 1
    assert set(where) == {"p.json"}  # each refusal names the plan file first
    assert counts["refused"] > 500  # most wrong values are refused; the rest are harmless


def test_a_nul_in_the_trees_path(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = saved_plan(capsys)
    data["directory"] = "ima\x00ges"
    Path("p.json").write_text(json.dumps(data), "utf-8")
    status, output = cli(capsys, "apply", "p.json")
    assert status == 1
    assert "p.json: error: not a dockerpkg plan: directory: expected a string without NUL" in output


def test_a_wrong_type_is_named_by_its_place(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = saved_plan(capsys)
    data["images"][1]["depends"] = 0
    Path("p.json").write_text(json.dumps(data), "utf-8")
    status, output = cli(capsys, "apply", "p.json")
    assert status == 1
    assert "p.json: error: not a dockerpkg plan: images[1].depends: expected a list, not int" in (
        output
    )
    data["images"][1]["depends"] = []
    data["steps"][0]["needs"] = "verify:base"  # a string is no list of steps
    Path("p.json").write_text(json.dumps(data), "utf-8")
    status, output = cli(capsys, "apply", "p.json")
    assert "p.json: error: not a dockerpkg plan: steps[0].needs: expected a list, not str" in output


def test_a_wrong_type_where_null_may_be_names_both(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = saved_plan(capsys)
    index = next(i for i, step in enumerate(data["steps"]) if step["op"] == "verify")
    data["steps"][index]["missing_test"] = 5
    Path("p.json").write_text(json.dumps(data), "utf-8")
    status, output = cli(capsys, "apply", "p.json")
    assert status == 1
    expected = f"steps[{index}].missing_test: expected a string or null, not int 5"
    assert f"p.json: error: not a dockerpkg plan: {expected}" in output


def test_a_plan_of_another_verb_is_named_with_its_article(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEBFULLNAME", "Release Bot")
    monkeypatch.setenv("DEBEMAIL", "bot@example.org")
    saved_plan(capsys)
    status, output = cli(capsys, "plan", "update", "app", "images", "--out", "u.json")
    assert status == 0, output
    status, output = cli(capsys, "apply", "prune", "u.json")
    assert status == 1
    assert "u.json: error: this is an update plan, not a prune plan" in output
    status, output = cli(capsys, "apply", "update", "p.json")
    assert status == 1
    assert "this is a build plan, not an update plan" in output
