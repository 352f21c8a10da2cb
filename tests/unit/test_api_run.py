"""One call each: api.plan_run makes a build run from one request (the flags merged with the
config's defaults there, once), api.apply_options says what the run adds to the plan, and
api.apply_run carries it out with those options and nothing else read then, the report
showing them. The daemon is replaced, where a run would connect to it, by a fake taking
the executors' settings (tests/integration runs the real thing)."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from dockerpkg import api
from dockerpkg.api.run import PlanRequest, build_options
from dockerpkg.api.workspace import publish_mode
from dockerpkg.cli import main
from dockerpkg.core.applyoptions import DEFAULT_LOG_LIMIT, ApplyOptions
from dockerpkg.core.config import load_config
from dockerpkg.core.plan import BuildEngine, CacheMode, PublishMode
from dockerpkg.core.report import report_to_data
from dockerpkg.core.secrets import parse_secret_flag
from dockerpkg.core.serialize import plan_to_json
from dockerpkg.effects.changelogs import TEMP_NAME
from dockerpkg.errors import DockerPkgError
from tests.support.badinput import CONFIG, write, write_image, write_work
from tests.support.fakebuilders import FakeDaemons

NOW = datetime.datetime(2026, 3, 2, 10, 4, 5)


def work(tmp_path: Path, config: str = "") -> str:
    """The bad-input work folder with CONFIG added; returns its tree."""
    tree = write_work(tmp_path)
    write(tmp_path / "config.yaml", CONFIG + config)
    return str(tree)


def request(tmp_path: Path, **given: Any) -> api.PlanRequest:
    """An offline request for the work folder, with GIVEN's fields."""
    fields: dict[str, Any] = {"env": {}, "config_path": str(tmp_path / "config.yaml")}
    return api.PlanRequest(**{**fields, "offline": True, **given})


def test_the_config_decides_what_the_request_leaves_open(tmp_path: Path) -> None:
    tree = work(tmp_path, "publish: all_or_nothing\ncache: registry\nbuild_engine: classic\n")
    options = api.plan_run(tree, request(tmp_path)).plan.options
    assert options.publish is PublishMode.ALL_OR_NOTHING
    assert options.cache is CacheMode.REGISTRY
    assert options.engine is BuildEngine.CLASSIC
    assert (options.pull, options.use_cache, options.select, options.suffix) == (
        True,
        False,
        None,
        "",
    )


def test_the_request_decides_over_the_config(tmp_path: Path) -> None:
    tree = work(tmp_path, "publish: all_or_nothing\ncache: registry\nbuild_engine: classic\n")
    asked = request(
        tmp_path,
        publish=PublishMode.PER_IMAGE,
        cache=CacheMode.NONE,
        engine=BuildEngine.BUILDKIT,
        pull=False,
        use_cache=True,
        select="*app*",
    )
    planned = api.plan_run(tree, asked)
    options = planned.plan.options
    assert options.publish is PublishMode.PER_IMAGE
    assert options.cache is CacheMode.NONE
    assert options.engine is BuildEngine.BUILDKIT
    assert (options.pull, options.use_cache, options.select) == (False, True, "*app*")
    assert {image.name for image in planned.plan.images if image.name == "app"} == {"app"}


def test_docker_buildkit_in_the_requests_environment_decides_over_the_config(
    tmp_path: Path,
) -> None:
    """The environment is the request's value: the process's own is not read."""
    tree = work(tmp_path, "build_engine: classic\n")
    planned = api.plan_run(tree, request(tmp_path, env={"DOCKER_BUILDKIT": "1"}))
    assert planned.plan.options.engine is BuildEngine.BUILDKIT
    assert planned.env == {"DOCKER_BUILDKIT": "1"}


@pytest.mark.parametrize(
    ("nightly", "snapshot", "suffix"),
    [(True, False, "-20260302"), (False, True, "-20260302-100405"), (False, False, "")],
)
def test_nightly_and_snapshot_versions_are_named_by_the_requests_clock(
    tmp_path: Path, nightly: bool, snapshot: bool, suffix: str
) -> None:
    tree = work(tmp_path)
    asked = request(tmp_path, nightly=nightly, snapshot=snapshot, now=NOW)
    plan = api.plan_run(tree, asked).plan
    assert plan.options.suffix == suffix
    assert {image.tag for image in plan.images} == {"1.0" + suffix}


def test_nightly_and_snapshot_together_are_refused_before_the_tree_is_read(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(DockerPkgError) as refused:
        api.plan_run(missing, request(tmp_path, nightly=True, snapshot=True, now=NOW))
    assert str(refused.value) == f"{missing}: error: --nightly and --snapshot exclude each other"


def test_the_tree_is_shown_before_the_plan_is_made(tmp_path: Path) -> None:
    """ON_READ sees the tree (its warnings) even when planning then fails: a secret whose
    file is missing."""
    tree = work(tmp_path)
    write_image(Path(tree), "app", "FROM scratch\nRUN --mount=type=secret,id=tok true\n")
    asked = request(tmp_path, secrets=(parse_secret_flag(f"id=tok,src={tmp_path / 't.txt'}"),))
    seen: list[api.Workspace] = []
    with pytest.raises(DockerPkgError) as refused:
        api.plan_run(tree, asked, on_read=seen.append)
    assert "secret 'tok'" in str(refused.value)
    assert "no such file" in str(refused.value)
    assert [w.directory for w in seen] == [os.path.relpath(tree)]
    write(tmp_path / "t.txt", "t\n")
    planned = api.plan_run(tree, asked, on_read=seen.append)
    assert seen[-1] is planned.workspace
    assert [s.id for s in planned.plan.secrets] == ["tok"]


def test_a_requested_secret_source_is_over_the_configs(tmp_path: Path) -> None:
    tree = work(tmp_path, "secrets:\n  tok: {env: TOK}\n")
    write_image(Path(tree), "app", "FROM scratch\nRUN --mount=type=secret,id=tok true\n")
    write(tmp_path / "token.txt", "t\n")
    given = (parse_secret_flag(f"id=tok,src={tmp_path / 'token.txt'}"),)
    planned = api.plan_run(tree, request(tmp_path, secrets=given))
    assert [(s.id, s.source) for s in planned.plan.secrets] == [
        ("tok", f"file:{tmp_path / 'token.txt'}")
    ]


def test_the_cli_plans_through_plan_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan --offline --json` prints exactly the plan plan_run makes of the same flags."""
    work(tmp_path, "publish: all_or_nothing\n")
    monkeypatch.chdir(tmp_path)
    argv = ["plan", "--offline", "--json", "--cache", "registry", "--no-pull", "images"]
    assert main(["-c", "config.yaml", *argv]) == 0
    printed = capsys.readouterr().out
    asked = api.PlanRequest(
        env=dict(os.environ),
        config_path="config.yaml",
        offline=True,
        render_all=True,
        cache=CacheMode.REGISTRY,
        pull=False,
    )
    assert printed == plan_to_json(api.plan_run("images", asked).plan)


def test_apply_options_are_the_flags_else_the_config_else_the_defaults(tmp_path: Path) -> None:
    config = "build_timeout: 600\nverify_timeout: 30\ntransfer_timeout: 60\n"
    planned = api.plan_run(work(tmp_path, config), request(tmp_path))
    defaults = api.apply_options(planned, now=NOW)
    assert defaults == ApplyOptions(
        run_dir=os.path.join(
            tempfile.gettempdir(), "dockerpkg-runs", f"20260302-100405-{os.getpid()}"
        ),
        jobs=8,
        push_jobs=4,
        pull_jobs=4,
        build_timeout=600.0,
        verify_timeout=30.0,
        transfer_timeout=60.0,
        log_limit=DEFAULT_LOG_LIMIT,
    )
    given = api.apply_options(
        planned,
        run_dir="logs",
        jobs=2,
        build_timeout=5.0,
        verify_timeout=6.0,
        transfer_timeout=7.0,
        log_limit=1000,
    )
    assert attrs.astuple(given) == ("logs", 2, 4, 4, 5.0, 6.0, 7.0, 1000)


def test_the_default_jobs_are_the_plans_engines(tmp_path: Path) -> None:
    """Not the environment's at apply: the engine the plan records."""
    planned = api.plan_run(work(tmp_path), request(tmp_path, env={"DOCKER_BUILDKIT": "0"}))
    assert api.apply_options(planned, run_dir="r").jobs == 4


def test_apply_run_gives_the_executors_its_options_and_the_report_shows_them(
    tmp_path: Path, daemons: FakeDaemons
) -> None:
    planned = api.plan_run(work(tmp_path), request(tmp_path))
    options = ApplyOptions(
        run_dir=str(tmp_path / "run"),
        jobs=3,
        push_jobs=2,
        pull_jobs=1,
        build_timeout=5.0,
        verify_timeout=None,
        transfer_timeout=9.0,
        log_limit=4096,
    )
    report = api.apply_run(planned, options, cast("Any", None))
    [settings] = daemons.settings
    assert settings.run_dir == tmp_path / "run"
    assert (settings.jobs, settings.push_jobs, settings.pull_jobs) == (3, 2, 1)
    assert (settings.build_timeout, settings.verify_timeout) == (5.0, None)
    assert (settings.transfer_timeout, settings.log_limit) == (9.0, 4096)
    assert settings.build_engine is planned.plan.options.engine
    assert settings.env is planned.env
    assert report.options == options
    shown = report_to_data(report, planned.plan)["apply_options"]
    assert shown == {
        "run_dir": str(tmp_path / "run"),
        "jobs": 3,
        "push_jobs": 2,
        "pull_jobs": 1,
        "build_timeout": 5.0,
        "verify_timeout": None,
        "transfer_timeout": 9.0,
        "log_limit": 4096,
    }


def test_apply_run_refuses_a_tree_an_update_left_half_done(
    tmp_path: Path, daemons: FakeDaemons
) -> None:
    tree = work(tmp_path)
    planned = api.plan_run(tree, request(tmp_path))
    (Path(tree) / "base" / TEMP_NAME).write_text("staged\n", encoding="utf-8")
    planned = api.plan_run(tree, request(tmp_path))
    with pytest.raises(DockerPkgError) as refused:
        api.apply_run(planned, api.apply_options(planned, run_dir="r"), cast("Any", None))
    assert "staged by the interrupted update" in str(refused.value)
    assert daemons.settings == []


def test_the_reports_json_shows_the_options_of_a_cli_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    daemons: FakeDaemons,
) -> None:
    work(tmp_path, "verify_timeout: 30\n")
    monkeypatch.chdir(tmp_path)
    assert main(["-c", "config.yaml", "plan", "--offline", "--out", "plan.json", "images"]) == 0
    argv = ["apply", "--report", "r.json", "--run-dir", "run", "-j", "3", "--build-timeout", "5"]
    assert main(["-c", "config.yaml", *argv, "plan.json"]) == 0
    assert "Logs: run\n" in capsys.readouterr().err
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["apply_options"] == {
        "run_dir": "run",
        "jobs": 3,
        "push_jobs": 4,
        "pull_jobs": 4,
        "build_timeout": 5.0,
        "verify_timeout": 30.0,
        "transfer_timeout": 300.0,
        "log_limit": DEFAULT_LOG_LIMIT,
    }
    [settings] = daemons.settings
    assert (settings.jobs, settings.build_timeout, settings.verify_timeout) == (3, 5.0, 30.0)


@pytest.mark.parametrize("configured", list(PublishMode))
def test_the_publish_mode_is_worked_out_in_one_place(configured: PublishMode) -> None:
    """--publish, else the config's: one helper, used by a build's plan and by the
    observation of an update."""
    config = load_config([("c.yaml", f"publish: {configured.value}\n")])
    assert publish_mode(config, None) is configured
    for given in PublishMode:
        assert publish_mode(config, given) is given
        request = PlanRequest(env={}, publish=given)
        assert build_options(request, "", config).publish is given
    assert build_options(PlanRequest(env={}), "", config).publish is configured
