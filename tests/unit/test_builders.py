"""Builders: the config key, --builders, what the plan records and refuses, the report's view."""

from __future__ import annotations

import pytest

from dockerpkg.core.builders import Builder, BuilderSet, TLSFiles, parse_builders_flag
from dockerpkg.core.config import key_location, load_config, public_values
from dockerpkg.core.markdown import plan_to_markdown
from dockerpkg.core.plan import Action, BuildOptions, Op, Plan, PlannedBuilder, Reason, Step
from dockerpkg.core.planner import Observed, plan_build
from dockerpkg.core.report import Move, Outcome, Report, StepOutcome, report_table, report_to_data
from dockerpkg.core.serialize import plan_from_json, plan_to_data, plan_to_json, plan_to_text
from dockerpkg.core.tree import Tree, load_tree
from dockerpkg.effects.tree import read_snapshot
from dockerpkg.errors import DockerPkgError, Location
from tests.support.compat import COMPAT, case_config

CASE = COMPAT / "11-versions"
TWO = BuilderSet(
    (Builder("unix:///var/run/docker.sock", 2), Builder("ssh://ci@build2")),
    Location("config.yaml", 7),
)


class TestConfig:
    """The `builders` key: a list of {url, slots, tls}, each entry checked where it is."""

    def test_entries(self) -> None:
        text = (
            "builders:\n"
            "  - url: unix:///var/run/docker.sock\n"
            "    slots: 3\n"
            "  - url: tcp://build1:2376\n"
            "    tls: {ca: ca.pem, cert: cert.pem, key: key.pem}\n"
            "  - {url: 'ssh://ci@build2'}\n"
        )
        config = load_config([("c.yaml", text)])
        assert config.builders == (
            Builder("unix:///var/run/docker.sock", 3),
            Builder("tcp://build1:2376", None, TLSFiles("ca.pem", "cert.pem", "key.pem")),
            Builder("ssh://ci@build2"),
        )
        # Where images build is not what they are: no template variable, not in the digest.
        assert "builders" not in config.template_variables()
        assert "builders" not in public_values(config)
        assert key_location([("a.yaml", "x: 1\n"), ("c.yaml", text)], "builders") == Location(
            "c.yaml", 1
        )

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ("{url: 'http://h'}", "'http://h' is not a Docker endpoint"),
            ("{url: 'unix:///s', slots: 0}", "'slots' must be 1 or more"),
            ("{url: 'ssh://h', tls: {ca: a, cert: b, key: c}}", "'tls' goes with tcp://"),
            ("{url: 'tcp://h:2376', tls: {ca: a}}", "bad value for 'builders'"),
        ],
    )
    def test_bad_entries_are_located(self, entry: str, message: str) -> None:
        with pytest.raises(DockerPkgError) as caught:
            load_config([("c.yaml", f"registry: r\nbuilders:\n  - {entry}\n")])
        problem = caught.value.problems[0]
        assert message in problem.message
        assert problem.location.path == "c.yaml"
        assert problem.location.line == 3


class TestFlag:
    """--builders URL[=SLOTS],...: TLS files of a URL come from the config's entry."""

    def test_parse(self) -> None:
        tls = TLSFiles("a", "b", "c")
        chosen = parse_builders_flag(
            "unix:///var/run/docker.sock=2, tcp://h:2376", (Builder("tcp://h:2376", 9, tls),)
        )
        assert chosen == BuilderSet(
            (Builder("unix:///var/run/docker.sock", 2), Builder("tcp://h:2376", None, tls)),
            Location("--builders"),
        )
        assert chosen.several

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("", "expected URL[=SLOTS]"),
            ("docker.example.org", "is not a Docker endpoint"),
            ("unix:///a=0", "slots must be 1 or more"),
            ("unix:///a,unix:///a=2", "is given twice"),
        ],
    )
    def test_refused(self, text: str, message: str) -> None:
        with pytest.raises(DockerPkgError) as caught:
            parse_builders_flag(text)
        assert caught.value.problems[0].location == Location("--builders")
        assert message in caught.value.problems[0].message


@pytest.fixture(scope="module")
def tree() -> Tree:
    return load_tree(read_snapshot(CASE / "images"), case_config(CASE))


def make(tree: Tree, observed: Observed, builders: BuilderSet, **options: object) -> Plan:
    return plan_build(
        tree,
        case_config(CASE),
        observed,
        directory="images",
        digest="sha256:test",
        options=BuildOptions(**options),  # type: ignore[arg-type]
        builders=builders,
    )


class TestPlan:
    """Several builders: only published images count, publishing is required, the set is
    shown (never TLS file paths) and survives a saved plan."""

    def test_several_builders_ignore_local_images(self, tree: Tree) -> None:
        local = frozenset(image.label for image in tree.images.values())
        observed = Observed(offline=False, local=local, credentials=True)
        one = make(tree, observed, BuilderSet())
        assert one.count(Op.BUILD) == 0
        several = make(tree, observed, TWO)
        assert several.count(Op.BUILD) == len(tree.images)
        assert several.count(Op.PUBLISH) == len(tree.images)
        assert several.builders == (
            PlannedBuilder("unix:///var/run/docker.sock", 2),
            PlannedBuilder("ssh://ci@build2"),
        )
        assert any("2 builders: images move between them" in note for note in several.notes)
        text = plan_to_text(several)
        assert (
            "builders: unix:///var/run/docker.sock (2 slots), ssh://ci@build2 (--jobs slots)"
            in text
        )
        assert plan_from_json(plan_to_json(several), "p.json") == several

    def test_tls_is_shown_as_a_flag_only(self, tree: Tree) -> None:
        tls = TLSFiles("/secret/ca.pem", "/secret/cert.pem", "/secret/key.pem")
        builders = BuilderSet((Builder("tcp://a:2376", 1, tls), Builder("tcp://b:2376", 1, tls)))
        plan = make(tree, Observed(offline=False, credentials=True), builders)
        assert plan_to_data(plan)["builders"][0] == {"url": "tcp://a:2376", "slots": 1, "tls": True}
        assert "/secret" not in plan_to_json(plan) + plan_to_text(plan) + plan_to_markdown(plan)
        assert "tcp://a:2376 (1 slot, TLS)" in plan_to_text(plan)
        assert "Builders: `tcp://a:2376 (1 slot, TLS)`, `tcp://b:2376" in plan_to_markdown(plan)

    def test_refused_without_credentials(self, tree: Tree) -> None:
        with pytest.raises(DockerPkgError) as caught:
            make(tree, Observed(offline=False), TWO)
        problem = caught.value.problems[0]
        assert problem.location == Location("config.yaml", 7)
        assert "2 builders need publishing" in problem.message
        assert "no credentials for registry.example.org" in problem.message

    def test_refused_without_pulls(self, tree: Tree) -> None:
        with pytest.raises(DockerPkgError, match="--no-pull cannot be used with several"):
            make(tree, Observed(offline=False, credentials=True), TWO, pull=False)

    def test_one_builder_changes_nothing_but_the_record(self, tree: Tree) -> None:
        observed = Observed(offline=False, credentials=False)
        default = make(tree, observed, BuilderSet())
        one = make(tree, observed, BuilderSet((Builder("tcp://h:2375"),)))
        assert one.steps == default.steps
        assert "builders" not in plan_to_text(default)
        assert plan_to_data(default)["builders"] == []


class TestReport:
    """The builder and the wait for parents per image; lost builders and moves."""

    def test_table_and_json(self) -> None:
        build = Step(Op.BUILD, "app", Reason.NOT_IN_REGISTRY, "r/app:1")
        report = Report(
            outcomes=(
                StepOutcome(build, Outcome.SUCCEEDED, 0.0, 2.0, builder="tcp://b:2376", waited=1.5),
            ),
            moves=(Move("app", "tcp://a:2376", "tcp://b:2376", "connection refused"),),
            lost_builders=("tcp://a:2376 (connection refused)",),
        )
        table = report_table(report)
        assert table.splitlines()[0].split() == ["image", "result", "build", "builder", "wait"]
        assert table.splitlines()[1].split() == ["app", "ok", "2.0s", "tcp://b:2376", "1.5s"]
        assert "Moved:\n  app: from tcp://a:2376 to tcp://b:2376\n" in table
        plan = Plan(action=Action.BUILD, directory="t", digest="d", images=(), steps=(build,))
        data = report_to_data(report, plan)
        assert data["steps"][0]["builder"] == "tcp://b:2376"
        assert data["steps"][0]["waited"] == 1.5
        assert data["moves"] == [
            {
                "image": "app",
                "lost": "tcp://a:2376",
                "to": "tcp://b:2376",
                "reason": "connection refused",
            }
        ]

    def test_single_daemon_table_is_unchanged(self) -> None:
        build = Step(Op.BUILD, "app", Reason.NOT_IN_REGISTRY, "r/app:1")
        table = report_table(Report((StepOutcome(build, Outcome.SUCCEEDED, 0.0, 2.0),)))
        assert table.splitlines()[0].split() == ["image", "result", "build"]
