"""The build engine is decided once, when planning: --engine, else DOCKER_BUILDKIT, else the
config. The plan records it (options.engine), its secret checks go by it, and `apply` builds
with it whatever the environment says then."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from dockerpkg import api
from dockerpkg.api import build as api_build
from dockerpkg.cli import main
from dockerpkg.core.plan import FORMAT_VERSION, BuildEngine, BuildOptions, Plan
from dockerpkg.core.report import Report
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.errors import DockerPkgError
from tests.support.badinput import CONFIG, fingerprint, write, write_image, write_work

SECRETS = "secrets:\n  tok: {env: TOK}\n"
MOUNT = "FROM scratch\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n"


def work(tmp_path: Path, config: str = "", *, mount: bool = False) -> Path:
    """The bad-input work folder with CONFIG added; with MOUNT, `app` mounts secret `tok`
    (line 2 of its template)."""
    tree = write_work(tmp_path)
    write(tmp_path / "config.yaml", CONFIG + config)
    if mount:
        write_image(tree, "app", MOUNT)
    return tree


def planned(
    tmp_path: Path, env: Mapping[str, str], given: BuildEngine | None = None
) -> tuple[Plan, api.Workspace]:
    """The build plan of the work folder as the CLI makes it, in ENV, with --engine GIVEN."""
    workspace = api.load_workspace(str(tmp_path / "images"), str(tmp_path / "config.yaml"), env)
    options = BuildOptions(engine=api.build_engine(workspace.config, env, given))
    return api.build_plan(workspace, options=options, secrets=()), workspace


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["plan", "--offline", "--json", *argv, "images"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.mark.parametrize(
    ("config", "switch", "given", "expected"),
    [
        ("", None, None, "buildkit"),
        ("", "0", None, "classic"),
        ("build_engine: classic\n", "1", None, "buildkit"),
        ("build_engine: buildkit\n", "false", None, "classic"),
        ("build_engine: classic\n", "", None, "classic"),
        ("container_limits: {memory: 5000000}\n", None, None, "classic"),
        ("", "0", "buildkit", "buildkit"),
        ("build_engine: buildkit\n", "1", "classic", "classic"),
    ],
)
def test_the_plan_records_the_engine_in_the_documented_order(
    config: str,
    switch: str | None,
    given: str | None,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--engine, else DOCKER_BUILDKIT (both ways over the config), else the config."""
    work(tmp_path, config)
    monkeypatch.chdir(tmp_path)
    if switch is not None:
        monkeypatch.setenv("DOCKER_BUILDKIT", switch)
    flag = ["--engine", given] if given else []
    assert plan_json(capsys, *flag)["options"]["engine"] == expected
    assert main(["plan", "--offline", *flag, "images"]) == 0
    assert f"\nengine: {expected}\n" in capsys.readouterr().out


def test_a_secret_mount_under_docker_buildkit_0_is_refused_when_planning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at the template's line, no plan written: not a build failing mid-run (`build`
    and `apply` plan the same way; tests/integration/test_build_secrets.py runs them)."""
    work(tmp_path, SECRETS, mount=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    before = fingerprint(tmp_path)
    assert main(["plan", "--offline", "--out", "plan.json", "images"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("app/Dockerfile.template:2: error: RUN --mount=type=secret")
    assert "needs BuildKit; the classic builder has no build secrets" in err
    assert "Traceback" not in out + err
    assert fingerprint(tmp_path) == before


def test_an_engine_forced_over_the_environment_plans_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work(tmp_path, SECRETS, mount=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    data = plan_json(capsys, "--engine", "buildkit")
    assert data["options"]["engine"] == "buildkit"
    assert [s["id"] for s in data["secrets"]] == ["tok"]


def test_docker_buildkit_1_lets_a_classic_config_plan_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`build_engine: classic` with DOCKER_BUILDKIT=1 builds with BuildKit: the plan must
    not refuse what apply can do."""
    work(tmp_path, "build_engine: classic\n" + SECRETS, mount=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_BUILDKIT", "1")
    data = plan_json(capsys)
    assert data["options"]["engine"] == "buildkit"
    assert [s["id"] for s in data["secrets"]] == ["tok"]
    monkeypatch.delenv("DOCKER_BUILDKIT")
    assert main(["plan", "--offline", "images"]) == 1
    assert "needs BuildKit" in capsys.readouterr().err


def test_the_config_engine_when_nothing_is_asked(tmp_path: Path) -> None:
    """A library caller that names no engine gets the config's (the environment is the
    caller's to read: see api.build_engine)."""
    work(tmp_path, "build_engine: classic\n")
    workspace = api.load_workspace(str(tmp_path / "images"), str(tmp_path / "config.yaml"), {})
    assert api.build_plan(workspace).options.engine is BuildEngine.CLASSIC


@pytest.mark.parametrize(
    ("config", "planned_env", "applied_env", "expected", "jobs"),
    [
        ("", {}, {"DOCKER_BUILDKIT": "0"}, BuildEngine.BUILDKIT, 8),
        ("build_engine: classic\n", {}, {"DOCKER_BUILDKIT": "1"}, BuildEngine.CLASSIC, 4),
        ("", {"DOCKER_BUILDKIT": "0"}, {}, BuildEngine.CLASSIC, 4),
    ],
)
def test_a_saved_plan_is_applied_with_its_engine(
    config: str,
    planned_env: dict[str, str],
    applied_env: dict[str, str],
    expected: BuildEngine,
    jobs: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever DOCKER_BUILDKIT says when the plan is applied. The daemon is replaced by a
    fake taking the run's settings (what the executors are given) at the point the run
    would connect to it."""
    given: list[Any] = []

    def fake_daemons(
        plan: Plan, builders: object, settings: Any, *rest: object, **kw: object
    ) -> Report:
        given.append(settings)
        return Report(outcomes=())

    monkeypatch.setattr(api_build, "_run_on_builders", fake_daemons)
    work(tmp_path, config)
    plan, _ = planned(tmp_path, planned_env)
    saved = tmp_path / "plan.json"
    saved.write_text(plan_to_json(plan), encoding="utf-8")
    loaded, workspace = api.load_saved_plan(str(saved), str(tmp_path / "config.yaml"), applied_env)
    assert loaded.options.engine is expected
    api.apply_saved_build_plan(
        loaded,
        workspace,
        applied_env,
        str(saved),
        run_dir=tmp_path / "run",
        listener=cast("Any", None),
    )
    [settings] = given
    assert settings.build_engine is expected
    assert settings.jobs == jobs


def test_the_text_view_names_the_engine_only_when_something_is_built(tmp_path: Path) -> None:
    work(tmp_path)
    plan, _ = planned(tmp_path, {"DOCKER_BUILDKIT": "0"})
    assert "engine: classic" in plan_to_text(plan).splitlines()
    idle = attrs.evolve(plan, steps=())
    assert "engine" not in plan_to_text(idle)
    assert json.loads(plan_to_json(idle))["options"]["engine"] == "classic"


class TestSavedPlans:
    """A saved build plan names its engine; older formats are refused, not guessed at."""

    def test_round_trip(self, tmp_path: Path) -> None:
        work(tmp_path)
        plan, _ = planned(tmp_path, {}, BuildEngine.CLASSIC)
        again = plan_from_json(plan_to_json(plan), "p.json")
        assert again == plan
        assert again.options.engine is BuildEngine.CLASSIC

    def test_format_7_is_refused(self, tmp_path: Path) -> None:
        """Format 7 plans name no engine; `apply` then read DOCKER_BUILDKIT, which is what
        made plan and apply disagree. Made again, they record the engine."""
        work(tmp_path)
        plan, _ = planned(tmp_path, {})
        data = json.loads(plan_to_json(plan))
        data["format_version"] = 7
        del data["options"]["engine"]
        with pytest.raises(DockerPkgError) as caught:
            plan_from_json(json.dumps(data), "old.json")
        [problem] = caught.value.problems
        assert problem.location.path == "old.json"
        assert problem.message == (
            f"plan format_version 7 is not {FORMAT_VERSION}; make the plan again"
        )

    @pytest.mark.parametrize(
        ("value", "message"), [(None, "names no engine"), ("kaniko", "kaniko")]
    )
    def test_a_build_plan_without_a_known_engine_is_refused(
        self, value: str | None, message: str, tmp_path: Path
    ) -> None:
        work(tmp_path)
        plan, _ = planned(tmp_path, {})
        data = json.loads(plan_to_json(plan))
        data["options"]["engine"] = value
        with pytest.raises(DockerPkgError) as caught:
            plan_from_json(json.dumps(data), "edited.json")
        [problem] = caught.value.problems
        assert problem.location.path == "edited.json"
        assert message in problem.message

    def test_engine_goes_with_a_directory_only(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        work(tmp_path)
        monkeypatch.chdir(tmp_path)
        assert main(["plan", "--offline", "--out", "plan.json", "images"]) == 0
        capsys.readouterr()
        assert main(["apply", "--engine", "classic", "plan.json"]) == 1
        err = capsys.readouterr().err
        assert "plan.json: error: --engine goes with a DIRECTORY" in err
