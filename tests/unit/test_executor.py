"""The executor without Docker: plans made by the planner from trees on disk, carried out on
an in-memory daemon and registry (tests/support/fakedaemon.py) behind the executor's ports.
Every kind of step, what the plan decides for them, failures, timeouts and cancellation."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from dockerpkg import api
from dockerpkg.api.workspace import Workspace
from dockerpkg.core.needs import with_needs
from dockerpkg.core.plan import (
    BuildOptions,
    CacheMode,
    Op,
    Plan,
    PublishMode,
    Reason,
    Step,
    StepKey,
)
from dockerpkg.core.planner import Observed
from dockerpkg.core.registrylimits import HostLimits, RegistryLimits
from dockerpkg.core.report import Outcome, Report
from dockerpkg.core.serialize import plan_to_text
from dockerpkg.core.staging import staged_labels
from dockerpkg.core.stepchoices import local_copies
from dockerpkg.effects.credentials import Credentials
from dockerpkg.effects.executor import Executor, Settings
from dockerpkg.effects.registry.gate import RegistryGates
from dockerpkg.effects.tasks import Interrupt, TaskResult
from tests.support.fakedaemon import FakeDaemon, FakeRegistry, Fault, Manifest, digest_of

HOST = "registry.example.org"
BASE = "docker-registry.example.org/debian:bookworm"
CONFIG = f"registry: {HOST}\nnamespace: ns\nbase_images:\n  - {BASE}\n"
BASE_LABEL = f"{HOST}/ns/base:1.0"
APP_LABEL = f"{HOST}/ns/app:1.0"
LOGIN = Credentials("bot", "s3cret")


class Listener:
    def __init__(self) -> None:
        self.started: list[StepKey] = []

    def task_started(self, key: StepKey) -> None:
        self.started.append(key)

    def task_finished(self, result: TaskResult) -> None:
        pass


def write_image(root: Path, name: str, template: str, **files: str) -> None:
    folder = root / "images" / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile.template").write_text(template, "utf-8")
    (folder / "changelog").write_text(
        f"{name} (1.0) wikimedia; urgency=medium\n\n  * Initial release.\n\n"
        " -- Jane Doe <jane@example.org>  Mon, 02 Mar 2026 10:00:00 +0000\n",
        "utf-8",
    )
    for relative, text in files.items():
        (folder / relative.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative.replace("__", "/")).write_text(text, "utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path)


def write_tree(root: Path, config: str = CONFIG) -> Path:
    """ROOT with base (FROM the config's debian, no test), app (FROM base, with a test.sh)
    and CONFIG."""
    write_image(root, "base", "FROM {{ 'debian' | image_tag }}\nRUN true\n")
    write_image(
        root,
        "app",
        "FROM {{ 'base' | image_tag }}\n",
        control="Package: app\nDepends: base\n",
        **{"test.sh": "#!/bin/sh\n"},
    )
    (root / "config.yaml").write_text(config, "utf-8")
    return root


def planned(
    root: Path, observed: Observed | None = None, **options: object
) -> tuple[Workspace, Plan]:
    workspace = api.load_workspace(str(root / "images"), str(root / "config.yaml"), {})
    seen = observed or Observed(offline=False, credentials=True)
    return workspace, api.build_plan(workspace, seen, BuildOptions(**options))  # type: ignore[arg-type]


def settings_for(workspace: Workspace, plan: Plan, run_dir: Path, **given: Any) -> Settings:
    """The settings api.build gives a run of PLAN."""
    made = Settings(
        directory=Path(workspace.directory),
        run_dir=run_dir,
        config=workspace.config,
        credentials=LOGIN,
        build_engine=plan.options.engine or workspace.config.engine,
        staged=staged_labels(plan),
        identities={i.label: i.definition for i in plan.images if i.definition is not None},
        local_copies=local_copies(plan),
        env={"PATH": "/usr/bin"},
    )
    return attrs.evolve(made, **given)


def run(
    workspace: Workspace,
    plan: Plan,
    daemon: FakeDaemon,
    registry: FakeRegistry | None,
    tmp_path: Path,
    interrupt: Interrupt | None = None,
    **given: Any,
) -> Report:
    settings = settings_for(workspace, plan, tmp_path / "run", **given)
    return Executor(daemon, registry, settings, Listener()).run(plan, interrupt)


def impatient() -> RegistryGates:
    """Gates giving up on the base's registry after its first try: for tests of what a
    failed pull leads to, not of its retries (see tests/unit/test_executor_limits.py)."""
    return RegistryGates(RegistryLimits({BASE.partition("/")[0]: HostLimits(attempts=1)}))


def outcomes(report: Report) -> dict[str, tuple[Outcome, str | None, str | None]]:
    return {str(o.step.key): (o.outcome, o.detail, o.error) for o in report.outcomes}


def with_base() -> tuple[FakeDaemon, FakeRegistry]:
    registry = FakeRegistry(HOST)
    return FakeDaemon(remote={BASE: digest_of("debian")}, registry=registry), registry


class TestAWholeRun:
    def test_pull_build_verify_publish_in_order(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        report = run(workspace, plan, daemon, registry, tmp_path)
        found = outcomes(report)
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        assert [b.label for b in daemon.builds] == [BASE_LABEL, APP_LABEL]
        # The rendered Dockerfile and the plan's labels go to the build.
        app_build = daemon.builds[1]
        assert app_build.dockerfile.startswith(f"FROM {BASE_LABEL}")
        assert (
            dict(plan.image("app").labels).items() <= dict(app_build.request.labels or {}).items()
        )
        assert "test.sh" in app_build.files
        # Pushed, and `latest` set in the registry to the version's manifest.
        for name, label in (("base", BASE_LABEL), ("app", APP_LABEL)):
            version = registry.tags[f"ns/{name}", "1.0"]
            assert registry.tags[f"ns/{name}", "latest"] == version
            assert found[f"publish:{name}"][1] == version
            assert registry.manifests[f"ns/{name}", version].config == daemon.images[label]
        # The password went with the pushes to its registry, not with the base's pull.
        log = (tmp_path / "run" / "app.log").read_text("utf-8")
        assert f"pushed {APP_LABEL}" in log

    def test_an_image_without_its_test_is_skipped_as_the_plan_says(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        verify = {s.image: s for s in plan.steps if s.op is Op.VERIFY}
        assert verify["base"].missing_test == "base/test.sh"
        assert verify["app"].missing_test is None
        assert "[skipped: no base/test.sh]" in plan_to_text(plan)
        daemon, registry = with_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["verify:base"] == (Outcome.SUCCEEDED, "skipped: no base/test.sh", None)
        # Only app's test ran: the config's command on its folder, for its label.
        [(argv, env)] = daemon.verified
        folder = (tree / "images" / "app").resolve()
        assert argv == ("/bin/bash", "-c", f"{folder}/test.sh {APP_LABEL}")
        assert env["PATH"] == "/usr/bin"

    def test_the_plan_is_followed_not_the_disk(self, tree: Path, tmp_path: Path) -> None:
        """The executor looks for no test.sh: a verification the plan skips is skipped."""
        workspace, plan = planned(tree)
        skipped = tuple(
            attrs.evolve(s, missing_test="app/test.sh") if str(s.key) == "verify:app" else s
            for s in plan.steps
        )
        daemon, registry = with_base()
        found = outcomes(
            run(workspace, attrs.evolve(plan, steps=skipped), daemon, registry, tmp_path)
        )
        assert found["verify:app"][1] == "skipped: no app/test.sh"
        assert daemon.verified == []


class TestPulls:
    def test_a_failed_pull_uses_the_local_copy_when_the_plan_says(
        self, tree: Path, tmp_path: Path
    ) -> None:
        observed = Observed(offline=False, credentials=True, local=frozenset({BASE}))
        workspace, plan = planned(tree, observed)
        [pull] = [s for s in plan.steps if s.op is Op.PULL]
        assert pull.local_copy
        assert "[else the local copy]" in plan_to_text(plan)
        daemon = FakeDaemon({BASE: "sha256:local"}, registry=FakeRegistry(HOST))
        found = outcomes(run(workspace, plan, daemon, daemon.registry, tmp_path))
        assert found[str(pull.key)] == (Outcome.SUCCEEDED, "local copy", None)
        assert found["build:base"][0] is Outcome.SUCCEEDED
        log = (tmp_path / "run" / "pulls.log").read_text("utf-8")
        assert "manifest unknown; using the local copy" in log

    def test_without_a_copy_seen_a_failed_pull_fails(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        [pull] = [s for s in plan.steps if s.op is Op.PULL]
        assert not pull.local_copy
        # The daemon holds a copy now, but the plan did not see one: not used.
        daemon = FakeDaemon({BASE: "sha256:local"}, registry=FakeRegistry(HOST))
        found = outcomes(run(workspace, plan, daemon, daemon.registry, tmp_path))
        assert found[str(pull.key)] == (
            Outcome.FAILED,
            None,
            f"cannot pull {BASE}: manifest unknown",
        )
        assert found["build:base"][0] is Outcome.SKIPPED
        assert ("list", "") not in daemon.calls

    def test_a_copy_gone_since_planning_fails_the_pull(self, tree: Path, tmp_path: Path) -> None:
        observed = Observed(offline=False, credentials=True, local=frozenset({BASE}))
        workspace, plan = planned(tree, observed)
        daemon = FakeDaemon(registry=FakeRegistry(HOST))
        daemon.fault("pull", BASE, message="cannot pull: connection refused")
        found = outcomes(run(workspace, plan, daemon, daemon.registry, tmp_path, gates=impatient()))
        assert found[f"pull:{BASE}"][2] == "cannot pull: connection refused"

    def test_offline_plans_let_any_copy_serve(self, tree: Path) -> None:
        _, plan = planned(tree, Observed())
        [pull] = [s for s in plan.steps if s.op is Op.PULL]
        assert pull.local_copy

    def test_a_silent_daemon_times_the_pull_out(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("pull", BASE, Fault.HANG, "cannot pull: the daemon said nothing")
        report = run(workspace, plan, daemon, registry, tmp_path, transfer_timeout=0.1)
        assert outcomes(report)[f"pull:{BASE}"][2] == "cannot pull: the daemon said nothing"

    def test_the_pulled_digest_is_what_the_bases_label_records(
        self, tree: Path, tmp_path: Path
    ) -> None:
        config = CONFIG + "definition_labels: true\n"
        (tree / "config.yaml").write_text(config, "utf-8")
        workspace, plan = planned(tree)
        assert plan.image("base").records == (BASE,)
        daemon, registry = with_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        pulled = digest_of(BASE, digest_of("debian"))
        assert found["build:base"][1] == f"{daemon.images[BASE_LABEL]} on {BASE}@{pulled}"
        assert pulled in str(daemon.builds[0].request.labels)


class TestFailures:
    def test_a_failed_build_skips_what_needs_it(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("build", BASE_LABEL, message="build failed: RUN true: exit 1")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["build:base"] == (Outcome.FAILED, None, "build failed: RUN true: exit 1")
        assert {found[k][0] for k in ("verify:base", "build:app", "publish:app")} == {
            Outcome.SKIPPED
        }
        assert registry.tags == {}

    def test_a_build_past_its_time_is_stopped(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("build", BASE_LABEL, Fault.HANG)
        report = run(workspace, plan, daemon, registry, tmp_path, build_timeout=0.2)
        assert outcomes(report)["build:base"][2] == "build timed out after 0.2 s"
        log = (tmp_path / "run" / "base.log").read_text("utf-8")
        assert "build timed out after 0.2 s: stopped" in log

    def test_a_failed_verification_is_not_published(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.exits[APP_LABEL] = 3
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["verify:app"][2] == "verification failed (exit 3); see app.log"
        assert found["publish:app"][0] is Outcome.SKIPPED
        assert ("ns/app", "1.0") not in registry.tags

    def test_a_verification_past_its_time_is_stopped(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("verify", APP_LABEL, Fault.HANG)
        report = run(workspace, plan, daemon, registry, tmp_path, verify_timeout=0.2)
        assert outcomes(report)["verify:app"][2] == "verification timed out after 0.2 s"

    def test_a_failed_push(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("push", f"{HOST}/ns/base:1.0", message="push failed: denied")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["publish:base"][2] == "push failed: denied"
        assert found["build:app"][0] is Outcome.SUCCEEDED  # it needs base verified, not published
        assert found["publish:app"][0] is Outcome.SKIPPED

    def test_a_push_the_registry_cannot_confirm(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        registry.fail("copy_tag", "registry answered HTTP 503")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["publish:base"][2] == (
            "pushed, but cannot confirm it or tag it latest: registry answered HTTP 503"
        )

    def test_a_push_the_registry_does_not_have(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, _ = with_base()
        elsewhere = FakeRegistry(HOST)  # the daemon pushes to another one
        found = outcomes(run(workspace, plan, daemon, elsewhere, tmp_path))
        assert found["publish:base"][2] == f"pushed, but the registry does not have {BASE_LABEL}"

    def test_a_version_published_with_other_content_is_never_pushed_over(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        registry.put("ns/base", "1.0", Manifest("sha256:" + "9" * 64))
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        error = found["publish:base"][2] or ""
        assert error.startswith(f"{BASE_LABEL} is already published with other content")
        assert ("push", BASE_LABEL) not in daemon.calls

    def test_a_version_published_with_this_content_is_not_pushed_again(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        first = run(workspace, plan, daemon, registry, tmp_path)
        assert not first.failed
        pushes = daemon.calls.count(("push", BASE_LABEL))
        again = run(workspace, plan, daemon, registry, tmp_path)
        assert outcomes(again)["publish:base"][0] is Outcome.SUCCEEDED
        assert daemon.calls.count(("push", BASE_LABEL)) == pushes
        log = (tmp_path / "run" / "base.log").read_text("utf-8")
        assert "is published with this content: not pushed again" in log

    def test_publishing_without_a_registry_client_is_a_callers_bug(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, _ = with_base()
        found = outcomes(run(workspace, plan, daemon, None, tmp_path))
        assert found["publish:base"][2] == "publishing needs the registry client of the run"


def cancel_when_hanging(daemon: FakeDaemon, interrupt: Interrupt) -> None:
    """Cancel the run once a call of DAEMON hangs."""

    def cancel() -> None:
        if daemon.hanging.wait(10):
            interrupt.cancel()

    threading.Thread(target=cancel, daemon=True).start()


class TestCancellation:
    def test_a_cancel_stops_a_hanging_build(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("build", BASE_LABEL, Fault.HANG)
        interrupt = Interrupt()
        cancel_when_hanging(daemon, interrupt)
        report = run(workspace, plan, daemon, registry, tmp_path, interrupt)
        found = outcomes(report)
        assert found["build:base"][0] is Outcome.CANCELLED
        assert report.interrupted
        assert registry.tags == {}

    def test_a_cancel_stops_a_hanging_verification(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("verify", APP_LABEL, Fault.HANG)
        interrupt = Interrupt()
        cancel_when_hanging(daemon, interrupt)
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path, interrupt))
        assert found["verify:app"][0] is Outcome.CANCELLED
        assert ("ns/app", "1.0") not in registry.tags

    def test_a_cancel_stops_a_hanging_pull(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        daemon.fault("pull", BASE, Fault.HANG)
        interrupt = Interrupt()
        cancel_when_hanging(daemon, interrupt)
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path, interrupt))
        # A pull's cancellation fails it (the scheduler's way for pulls).
        assert found[f"pull:{BASE}"][:3:2] == (Outcome.FAILED, "cancelled")
        assert daemon.builds == []


class TestCache:
    def test_cache_registry_makes_builds_reuse_layers_as_the_plan_says(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, cache=CacheMode.REGISTRY)
        assert all(s.use_cache for s in plan.steps if s.op is Op.BUILD)
        assert "cache: builds reuse the daemon's layers and import the registry's" in (
            plan_to_text(plan)
        )
        daemon, registry = with_base()
        assert not run(workspace, plan, daemon, registry, tmp_path).failed
        request = daemon.builds[0].request
        assert request.use_cache
        assert request.cache_from == (f"{HOST}/ns/base:latest",)
        assert request.buildargs["BUILDKIT_INLINE_CACHE"] == "1"
        assert request.registry_auth == {HOST: {"username": "bot", "password": "s3cret"}}
        # The cache imports get the run's login through the build's session.
        assert daemon.builds[0].session == "session-base"

    def test_without_either_flag_nothing_is_reused(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        assert not any(s.use_cache for s in plan.steps)
        assert "cache:" not in plan_to_text(plan)
        daemon, registry = with_base()
        run(workspace, plan, daemon, registry, tmp_path)
        assert [b.request.use_cache for b in daemon.builds] == [False, False]
        assert daemon.builds[0].session is None

    def test_use_cache_reaches_the_build(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree, use_cache=True)
        assert "cache: builds reuse the daemon's layers (--use-cache)" in plan_to_text(plan)
        daemon, registry = with_base()
        run(workspace, plan, daemon, registry, tmp_path)
        assert [b.request.use_cache for b in daemon.builds] == [True, True]


@pytest.fixture
def staged_tree(tree: Path) -> Path:
    """app has a build stage (docker-pkg < 3's Dockerfile.build.template)."""
    folder = tree / "images" / "app"
    (folder / "Dockerfile.build.template").write_text("FROM scratch\n", "utf-8")
    return tree


class TestBuildStages:
    def test_the_stages_build_folder_goes_into_the_images_context(
        self, staged_tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(staged_tree, cache=CacheMode.REGISTRY)
        [stage] = [s for s in plan.steps if s.op is Op.BUILD_STAGE]
        assert not stage.use_cache  # cache registry imports for images, not for stages
        daemon, registry = with_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found[str(stage.key)][0] is Outcome.SUCCEEDED
        stage_build = next(b for b in daemon.builds if b.label == stage.label)
        assert stage_build.request.dockerfile == "Dockerfile.build"
        assert not stage_build.request.use_cache
        app_build = next(b for b in daemon.builds if b.label == APP_LABEL)
        assert "build/made-by-stage" in app_build.files

    def test_a_failed_stage_skips_the_build(self, staged_tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(staged_tree)
        [stage] = [s for s in plan.steps if s.op is Op.BUILD_STAGE]
        daemon, registry = with_base()
        daemon.fault("stage", stage.label or "", message="RUN make: exit 2")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        where = "app/Dockerfile.build.template"
        assert found[str(stage.key)][2] == f"build stage from {where} failed: RUN make: exit 2"
        assert found["build:app"][0] is Outcome.SKIPPED

    def test_a_stage_that_leaves_layers_fails(self, staged_tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(staged_tree)
        daemon, registry = with_base()
        daemon.stage_left = "image sha256:abc is in use"
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        where = "app/Dockerfile.build.template"
        assert (
            found["build-stage:app"][2] == f"build stage from {where}: image sha256:abc is in use"
        )

    def test_a_cancelled_stage(self, staged_tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(staged_tree)
        [stage] = [s for s in plan.steps if s.op is Op.BUILD_STAGE]
        daemon, registry = with_base()
        daemon.fault("stage", stage.label or "", Fault.HANG)
        interrupt = Interrupt()
        cancel_when_hanging(daemon, interrupt)
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path, interrupt))
        assert found[str(stage.key)][0] is Outcome.CANCELLED

    def test_a_build_whose_stage_never_ran(self, staged_tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(staged_tree)
        steps = tuple(s for s in plan.steps if s.op is not Op.BUILD_STAGE)
        plan = attrs.evolve(plan, steps=tuple(attrs.evolve(s, needs=()) for s in steps))
        daemon, registry = with_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["build:app"][2] == (
            "app has a Dockerfile.build.template but its build stage did not run; "
            "make the plan again"
        )


def registry_plan(plan: Plan, *steps: Step) -> Plan:
    return attrs.evolve(plan, steps=tuple(with_needs(list(steps), plan.images)))


class TestRegistrySteps:
    def test_tag_latest_moves_latest_in_the_registry(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        version = registry.put("ns/app", "1.0", Manifest("sha256:app"))
        only = registry_plan(plan, Step(Op.TAG_LATEST, "app", Reason.LATEST_NOT_CURRENT, APP_LABEL))
        found = outcomes(run(workspace, only, daemon, registry, tmp_path))
        assert found["tag-latest:app"] == (Outcome.SUCCEEDED, version, None)
        assert registry.tags["ns/app", "latest"] == version
        assert daemon.calls == []  # the registry alone

    def test_tag_latest_failures(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        only = registry_plan(plan, Step(Op.TAG_LATEST, "app", Reason.LATEST_NOT_CURRENT, APP_LABEL))
        found = outcomes(run(workspace, only, daemon, registry, tmp_path))
        assert found["tag-latest:app"][2] == f"the registry no longer has {APP_LABEL}"
        registry.fail("copy_tag", "answered HTTP 500")
        found = outcomes(run(workspace, only, daemon, registry, tmp_path))
        assert found["tag-latest:app"][2] == "cannot tag it latest: answered HTTP 500"

    def test_unstage_deletes_or_names_what_stays(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        digest = registry.put("ns-staging/app", "1.0", Manifest("sha256:app"))
        staged = f"{HOST}/ns-staging/app:1.0@{digest}"
        step = Step(Op.UNSTAGE, "app", Reason.PROMOTED_IN_EARLIER_RUN, staged)
        only = registry_plan(plan, step)
        found = outcomes(run(workspace, only, daemon, registry, tmp_path))
        assert found["unstage:app"] == (Outcome.SUCCEEDED, "staging deleted", None)
        assert ("ns-staging/app", digest) not in registry.manifests
        registry.deletes = False
        found = outcomes(run(workspace, only, daemon, registry, tmp_path))
        assert found["unstage:app"][1] == "staging kept: the registry answered 405 to deleting it"
        bare = registry_plan(plan, attrs.evolve(step, label=f"{HOST}/ns-staging/app:1.0"))
        found = outcomes(run(workspace, bare, daemon, registry, tmp_path))
        assert found["unstage:app"][2] == "the plan names no staged digest for app"


class TestAllOrNothing:
    def test_images_are_staged_then_promoted(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        assert plan.count(Op.PROMOTE) == 2
        daemon, registry = with_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        for name in ("base", "app"):
            staged = found[f"stage:{name}"][1]
            assert found[f"promote:{name}"][1] == f"{staged}; staging deleted"
            assert registry.tags[f"ns/{name}", "1.0"] == staged
            assert registry.tags[f"ns/{name}", "latest"] == staged
        # app was built on base pulled from nowhere: base was on this daemon already.
        assert not any(call == "pull" and "staging" in t for call, t in daemon.calls)

    def test_a_promotion_whose_latest_fails_says_what_moved(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        daemon, registry = with_base()
        registry.fail("copy_tag", "answered HTTP 503")
        report = run(workspace, plan, daemon, registry, tmp_path)
        promoted = {o.step.image: o for o in report.outcomes if o.step.op is Op.PROMOTE}
        failed = [o for o in promoted.values() if o.outcome is Outcome.FAILED]
        assert failed
        for outcome in failed:
            moved = outcome.detail or ""
            assert outcome.error == (
                f"{HOST}/ns/{outcome.step.image}:1.0 moved to {moved[:19]}, but cannot tag it "
                "latest: answered HTTP 503"
            )

    def test_a_staged_parent_from_an_earlier_run_is_pulled_and_named(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        identity = plan.image("base").definition or ""
        daemon, registry = with_base()
        staged = FakeDaemon(registry=registry)
        staged.images[f"{HOST}/ns-staging/base:1.0"] = "sha256:base"
        staged.labels["sha256:base"] = {"org.dockerpkg.identity": identity}
        staged.push(
            f"{HOST}/ns-staging/base", "1.0", None, io.StringIO(), threading.Event(), timeout=1
        )
        digest = registry.tags["ns-staging/base", "1.0"]
        label = f"{HOST}/ns-staging/base:1.0@{digest}"
        daemon.remote[label] = "sha256:base"
        executor = Executor(daemon, registry, settings_for(workspace, plan, tmp_path), Listener())
        assert executor.pull(label, "app", named=BASE_LABEL) is None
        assert daemon.images[BASE_LABEL] == "sha256:base"
        assert ("tag", BASE_LABEL) in daemon.calls
        # One recording another identity is refused before anything is pulled.
        registry.manifests["ns-staging/base", digest] = Manifest("sha256:base", {})
        with pytest.raises(Exception, match="records build identity none"):
            executor.pull(label, "app", named=BASE_LABEL)


class TestTheExecutor:
    def test_reachable_asks_the_daemon(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon = FakeDaemon()
        executor = Executor(daemon, None, settings_for(workspace, plan, tmp_path), Listener())
        assert executor.reachable()
        daemon.answers = False
        assert not executor.reachable()

    def test_a_parent_staged_in_this_run_comes_from_its_staging_reference(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        settings = settings_for(workspace, plan, tmp_path)
        staging = settings.staged[BASE_LABEL]
        daemon = FakeDaemon(remote={staging: "sha256:base"})
        executor = Executor(daemon, FakeRegistry(HOST), settings, Listener())
        executor.pull(BASE_LABEL, "app")
        assert daemon.calls[0] == ("pull", staging)
        assert daemon.images[BASE_LABEL] == "sha256:base"

    def test_finish_removes_the_artifacts_of_stages_never_used(
        self, staged_tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(staged_tree)
        daemon, registry = with_base()
        executor = Executor(daemon, registry, settings_for(workspace, plan, tmp_path), Listener())
        (tmp_path / "run").mkdir(exist_ok=True)
        stage = next(s for s in plan.steps if s.op is Op.BUILD_STAGE)
        executor.step_runner(stage, plan.image("app"))()
        folders = list(executor._run.artifacts.values())
        assert folders
        assert all(f.exists() for f in folders)
        executor.finish()
        assert not any(f.exists() for f in folders)


class TestStagingFailures:
    """all_or_nothing's pushes and promotions when the daemon or the registry fails."""

    def staged_run(self, tree: Path, tmp_path: Path, daemon: FakeDaemon, registry: FakeRegistry):  # type: ignore[no-untyped-def]
        workspace, plan = planned(tree, publish=PublishMode.ALL_OR_NOTHING)
        return outcomes(run(workspace, plan, daemon, registry, tmp_path))

    def test_a_failed_push_to_staging(self, tree: Path, tmp_path: Path) -> None:
        daemon, registry = with_base()
        daemon.fault("push", f"{HOST}/ns/dockerpkg-staging/base:1.0", message="denied")
        found = self.staged_run(tree, tmp_path, daemon, registry)
        assert found["stage:base"][2] == "denied"
        # Nothing moves: every promotion waits for every image staged.
        assert {found[f"promote:{n}"][0] for n in ("base", "app")} == {Outcome.SKIPPED}
        assert ("ns/app", "1.0") not in registry.tags

    def test_staging_the_registry_cannot_confirm(self, tree: Path, tmp_path: Path) -> None:
        daemon, registry = with_base()
        registry.fail("manifest_digest", "answered HTTP 502")
        found = self.staged_run(tree, tmp_path, daemon, registry)
        assert found["stage:base"][2] == "staged, but cannot confirm it: answered HTTP 502"

    def test_staging_the_registry_does_not_have(self, tree: Path, tmp_path: Path) -> None:
        daemon, _ = with_base()
        found = self.staged_run(tree, tmp_path, daemon, FakeRegistry(HOST))
        staging = f"{HOST}/ns/dockerpkg-staging/base:1.0"
        assert found["stage:base"][2] == f"staged, but the registry does not have {staging}"

    def test_a_promotion_the_registry_refuses(self, tree: Path, tmp_path: Path) -> None:
        daemon, registry = with_base()
        registry.fail("promote", "answered HTTP 500")
        found = self.staged_run(tree, tmp_path, daemon, registry)
        staging = f"{HOST}/ns/dockerpkg-staging/base:1.0"
        assert found["promote:base"][2] == f"cannot promote {staging}: answered HTTP 500"

    def test_promotions_the_plan_cannot_carry_out(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        staging = f"{HOST}/ns/dockerpkg-staging/app:1.0"
        gone = f"{staging}@sha256:{'4' * 64}"
        steps = {
            "no reference": Step(Op.PROMOTE, "app", Reason.ALL_PUBLISHED, APP_LABEL),
            "not staged": Step(Op.PROMOTE, "app", Reason.ALL_PUBLISHED, APP_LABEL, staging),
        }
        for step in steps.values():
            found = outcomes(run(workspace, registry_plan(plan, step), daemon, registry, tmp_path))
            assert found["promote:app"][0] is Outcome.FAILED
        found = outcomes(
            run(workspace, registry_plan(plan, steps["no reference"]), daemon, registry, tmp_path)
        )
        assert found["promote:app"][2] == "the plan names no staging reference for app"
        found = outcomes(
            run(workspace, registry_plan(plan, steps["not staged"]), daemon, registry, tmp_path)
        )
        assert found["promote:app"][2] == "this run staged no image of app to promote"
        # Held to a digest the registry does not have: refused before anything moves.
        held = Step(Op.PROMOTE, "app", Reason.STAGED_IN_EARLIER_RUN, APP_LABEL, gone)
        found = outcomes(run(workspace, registry_plan(plan, held), daemon, registry, tmp_path))
        assert found["promote:app"][2] == f"the registry has no image at {gone}"


class TestPlansTheExecutorRefuses:
    """A plan that does not hold what a step needs fails that step, naming what is missing."""

    def test_a_build_without_its_dockerfile(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(tree)
        images = tuple(
            # (No definition either: the context is checked against it before the build.)
            attrs.evolve(i, dockerfile=None, own_definition=None) if i.name == "base" else i
            for i in plan.images
        )
        daemon, registry = with_base()
        found = outcomes(
            run(workspace, attrs.evolve(plan, images=images), daemon, registry, tmp_path)
        )
        assert found["build:base"][2] == "the plan holds no rendered Dockerfile for base"
        assert daemon.builds == []

    def test_a_stage_without_its_name_or_template(self, staged_tree: Path, tmp_path: Path) -> None:
        workspace, plan = planned(staged_tree)
        daemon, registry = with_base()
        stage = next(s for s in plan.steps if s.op is Op.BUILD_STAGE)
        unnamed = registry_plan(plan, attrs.evolve(stage, label=None, needs=()))
        found = outcomes(run(workspace, unnamed, daemon, registry, tmp_path))
        where = "app/Dockerfile.build.template"
        assert found[str(stage.key)][2] == f"the plan names no stage image for {where}"
        images = tuple(attrs.evolve(i, build_dockerfile=None) for i in plan.images)
        untemplated = attrs.evolve(
            registry_plan(plan, attrs.evolve(stage, needs=())), images=images
        )
        found = outcomes(run(workspace, untemplated, daemon, registry, tmp_path))
        assert found[str(stage.key)][2] == f"the plan holds no rendered {where}"

    def test_a_registry_that_fails_the_check_before_a_push(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree)
        daemon, registry = with_base()
        registry.fail("config_digest", "answered HTTP 503")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))
        assert found["publish:base"][2] == (
            f"cannot check {BASE_LABEL} before pushing: answered HTTP 503"
        )
        assert ("push", BASE_LABEL) not in daemon.calls

    def test_without_credentials_cache_imports_get_no_login(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = planned(tree, cache=CacheMode.REGISTRY)
        daemon, registry = with_base()
        run(workspace, plan, daemon, registry, tmp_path, credentials=None)
        assert [b.request.registry_auth for b in daemon.builds] == [None, None]
