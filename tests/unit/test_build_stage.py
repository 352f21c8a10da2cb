"""Build stages in the plan: the `build-stage` step, its views, its dependencies and its tasks.

The tree of fixtures/trees/build-stage: `hello` compiles a program in a stage built from
`toolchain` (used only by its Dockerfile.build.template) and copies it into an image built
from `base`. What the daemon does with it is in tests/integration/test_build_stage.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import attrs
import pytest

from dockerpkg.cli import main
from dockerpkg.core.config import Config, load_config
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import FORMAT_VERSION, Op, Plan, Reason
from dockerpkg.core.plandiff import dockerfile_diff
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.report import Outcome, Report, StepOutcome, report_table
from dockerpkg.core.serialize import plan_from_json, plan_to_json
from dockerpkg.core.tree import analyze_tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.golden import check_golden

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "trees" / "build-stage"
REGISTRY = "registry.example.org/team"


def config() -> Config:
    path = FIXTURE / "config.yaml"
    return load_config([(str(path), path.read_text(encoding="utf-8"))])


def plan_of(tree_dir: Path, observed: Observed | None = None) -> Plan:
    tree = load_tree(read_snapshot(tree_dir), config())
    return plan_build(tree, config(), observed or Observed(), directory="images", digest="d")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


class TestPlanViews:
    """Text and JSON (golden), Markdown, and a saved plan read back."""

    @pytest.mark.parametrize("fmt", ["text", "json"])
    def test_golden(
        self, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(FIXTURE)
        args = ["plan", "--offline", "images"]
        status, out, err = run([*args, "--json"] if fmt == "json" else args, capsys)
        assert status == 0, err
        assert "warning" not in err
        check_golden(f"plans/build-stage.{'json' if fmt == 'json' else 'txt'}", out)

    def test_stage_step_before_the_build(self) -> None:
        plan = plan_of(FIXTURE / "images")
        steps = [(s.op, s.image) for s in plan.steps]
        stage = steps.index((Op.BUILD_STAGE, "hello"))
        assert steps[stage + 1] == (Op.BUILD, "hello")
        # After the builds of the images it uses: toolchain (the stage's) and base.
        assert steps.index((Op.BUILD, "toolchain")) < stage
        assert steps.index((Op.BUILD, "base")) < stage
        step = plan.steps[stage]
        assert step.reason is Reason.BUILD_TEMPLATE
        assert step.label == f"{REGISTRY}/hello-build:0.3-1"
        assert plan.count(Op.BUILD_STAGE) == 1  # only the image with a build template
        hello = plan.image("hello")
        assert hello.build_dockerfile is not None
        assert hello.build_dockerfile.startswith(f"FROM {REGISTRY}/toolchain:2.1\n")

    def test_stage_tag_follows_the_image_tag(self, tmp_path: Path) -> None:
        tree = load_tree(read_snapshot(FIXTURE / "images"), config(), suffix="-20260302")
        plan = plan_build(tree, config(), Observed(), directory="images", digest="d")
        labels = [s.label for s in plan.steps if s.op is Op.BUILD_STAGE]
        assert labels == [f"{REGISTRY}/hello-build:0.3-1-20260302"]

    def test_no_stage_when_the_image_is_not_built(self) -> None:
        everything = frozenset(
            f"{REGISTRY}/{name}" for name in ("base:1.0", "toolchain:2.1", "hello:0.3-1")
        )
        observed = Observed(offline=False, published=everything, credentials=True)
        assert plan_of(FIXTURE / "images", observed).steps == ()
        # Built locally, not published: verified and published, nothing built, no stage.
        local = Observed(offline=False, local=everything, credentials=True)
        ops = {s.op for s in plan_of(FIXTURE / "images", local).steps}
        assert ops == {Op.VERIFY, Op.PUBLISH}

    def test_markdown_and_saved_plan(self) -> None:
        plan = plan_of(FIXTURE / "images")
        markdown = plan_to_markdown(plan)
        assert "| `hello` | build-stage, build, verify | `0.3-1` | build_template, " in markdown
        assert "3 to build (1 with a build stage)" in markdown
        assert plan_from_json(plan_to_json(plan), "plan.json") == plan

    def test_an_older_plan_format_is_refused(self) -> None:
        data = json.loads(plan_to_json(plan_of(FIXTURE / "images")))
        data["format_version"] = 3
        with pytest.raises(
            Exception, match=f"format_version 3 is not {FORMAT_VERSION}; make the plan again"
        ):
            plan_from_json(json.dumps(data), "old.json")


class TestDependencies:
    """Images a build template uses through image_tag are parents of the image."""

    @pytest.mark.parametrize("render", [True, False], ids=["rendered", "from-syntax"])
    def test_stage_parent_declared(self, render: bool) -> None:
        analysis = analyze_tree(read_snapshot(FIXTURE / "images"), config(), render=render)
        assert analysis.tree is not None
        assert analysis.tree.images["hello"].parents == ("base", "toolchain")
        assert analysis.tree.order == ("base", "toolchain", "hello")
        assert not analysis.problems

    @pytest.mark.parametrize("render", [True, False], ids=["rendered", "from-syntax"])
    def test_stage_parent_undeclared(self, tmp_path: Path, render: bool) -> None:
        """Without Build-Depends the stage's image is still built first, with a warning."""
        images = shutil.copytree(FIXTURE / "images", tmp_path / "images")
        (images / "hello" / "control").write_text("Package: hello\nDepends: base\n", "utf-8")
        analysis = analyze_tree(read_snapshot(images), config(), render=render)
        assert analysis.tree is not None
        assert analysis.tree.images["hello"].parents == ("base", "toolchain")
        assert analysis.tree.order == ("base", "toolchain", "hello")
        assert [p.message for p in analysis.problems] == [
            "uses image 'toolchain' through image_tag but does not declare it in control "
            "(Depends); it is built first anyway"
        ]

    def test_base_image_of_the_stage_is_pulled(self, tmp_path: Path) -> None:
        images = shutil.copytree(FIXTURE / "images", tmp_path / "images")
        stage = images / "hello" / "Dockerfile.build.template"
        stage.write_text('FROM {{ "bookworm" | image_tag }}\nRUN mkdir /build\n', "utf-8")
        (images / "hello" / "control").write_text("Package: hello\nDepends: base\n", "utf-8")
        plan = plan_of(images)
        assert plan.image("hello").bases == ("registry.example.org/bookworm:20260301",)
        assert plan.image("hello").parents == ("base",)


class TestTasks:
    """The stage runs after what the build needs, and the build after the stage."""

    def test_needs(self) -> None:
        plan = plan_of(FIXTURE / "images")
        needs = {str(s.key): tuple(str(k) for k in s.needs) for s in plan.steps}
        assert set(needs) == {str(s.key) for s in plan.steps}
        assert sorted(needs["build-stage:hello"]) == ["verify:base", "verify:toolchain"]
        assert sorted(needs["build:hello"]) == [
            "build-stage:hello",
            "verify:base",
            "verify:toolchain",
        ]
        assert needs["verify:hello"] == ("build:hello",)
        pull = "pull:registry.example.org/bookworm:20260301"
        assert needs["build:base"] == (pull,)

    def test_stage_of_an_image_pulls_its_published_parents_first(self) -> None:
        published = frozenset({f"{REGISTRY}/base:1.0", f"{REGISTRY}/toolchain:2.1"})
        plan = plan_of(FIXTURE / "images", Observed(offline=False, published=published))
        needs = {str(s.key): tuple(str(k) for k in s.needs) for s in plan.steps}
        assert sorted(needs["build-stage:hello"]) == ["pull:base", "pull:toolchain"]
        assert "build-stage:hello" in needs["build:hello"]


class TestReport:
    """The run table gives the stage its own column; its failure is listed by name."""

    def test_table(self) -> None:
        plan = plan_of(FIXTURE / "images")
        outcomes = []
        for step in plan.steps:
            if step.image == "hello" and step.op is Op.BUILD_STAGE:
                outcome = StepOutcome(step, Outcome.FAILED, 1.0, 2.5, error="boom")
            elif step.image == "hello":
                outcome = StepOutcome(step, Outcome.SKIPPED, error="build-stage hello failed")
            else:
                outcome = StepOutcome(step, Outcome.SUCCEEDED, 0.0, 1.0)
            outcomes.append(outcome)
        table = report_table(Report(outcomes=tuple(outcomes)))
        header, *rows = table.splitlines()
        assert header.split() == ["image", "result", "pull", "build-stage", "build", "verify"]
        hello = next(r for r in rows if r.startswith("hello "))
        assert hello.split() == ["hello", "failed", "failed", "skipped", "skipped"]
        assert "  build-stage hello: boom" in table

    def test_plan_of_an_image_without_stage_has_no_column(self) -> None:
        plan = plan_of(FIXTURE / "images")
        kept = tuple(s for s in plan.steps if s.image != "hello")
        report = Report(outcomes=tuple(StepOutcome(s, Outcome.SUCCEEDED, 0, 1) for s in kept))
        assert "build-stage" not in report_table(report)
        assert attrs.evolve(plan, steps=kept).count(Op.BUILD_STAGE) == 0


def test_dockerfile_diff_shows_the_build_stage_on_its_own_lines(tmp_path: Path) -> None:
    images = shutil.copytree(FIXTURE / "images", tmp_path / "images")
    old = plan_of(images)
    stage = images / "hello" / "Dockerfile.build.template"
    stage.write_text(stage.read_text("utf-8").replace("mkdir /build", "mkdir -p /build"), "utf-8")
    new = plan_of(images)
    diff = dockerfile_diff(old.image("hello"), new.image("hello"))
    assert "\n # --- Dockerfile.build ---\n" in diff  # a line of its own
    assert "-RUN make -C /src && mkdir /build && cp /src/hello /build/\n" in diff
    assert "+RUN make -C /src && mkdir -p /build && cp /src/hello /build/\n" in diff
