"""What a plan decides for the run of its steps (core/stepchoices.py): a pull's local copy, a
verification skipped for want of its test, a build's cache; written in the plan's JSON and
text, and derived again for a saved plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerpkg.api.saved import derived_build_plan
from dockerpkg.api.workspace import build_plan, load_workspace
from dockerpkg.core.config import load_config
from dockerpkg.core.plan import BuildOptions, CacheMode, Op, Plan
from dockerpkg.core.planmatch import build_differences
from dockerpkg.core.planner import Observed
from dockerpkg.core.runrules import missing_test, outside_files
from dockerpkg.core.serialize import plan_from_json, plan_to_json, plan_to_text
from dockerpkg.core.stepchoices import local_copies
from dockerpkg.errors import DockerPkgError
from tests.support.updates import write_tree

REGISTRY = "registry.example.org"
DEBIAN = f"{REGISTRY}/debian:bookworm"
CONFIG = f"registry: {REGISTRY}\nnamespace: team\nbase_images:\n  - {DEBIAN}\n"
BASE, APP = f"{REGISTRY}/team/base:1.0", f"{REGISTRY}/team/app:2.0"


class TestMissingTest:
    def test_the_default_test_is_test_sh(self) -> None:
        config = load_config([("c.yaml", "namespace: ns\n")])
        assert missing_test(config, {"test.sh", "Dockerfile.template"}, "img") is None
        assert missing_test(config, {"Dockerfile.template"}, "img") == "img/test.sh"
        assert missing_test(config, set(), ".") == "./test.sh"

    @pytest.mark.parametrize(
        ("word", "names", "missing"),
        [
            ("{path}/t/run", {"t/run"}, None),
            ("{path}/t/run", {"t/other"}, "img/t/run"),
            ("{path}/data", {"data/a.json"}, None),  # a folder of the image's
            ("{path}/./t/../t/run", {"t/run"}, None),
            ("{path}", set(), None),
            ("{path}/", set(), None),
            ("{path}/../shared/test.sh", {"shared/test.sh"}, "img/../shared/test.sh"),
            ("--file={path}/t/run", {"t/run"}, "--file=img/t/run"),
        ],
    )
    def test_only_what_is_inside_the_folder_counts(
        self, word: str, names: set[str], missing: str | None
    ) -> None:
        config = load_config([("c.yaml", f"verify_args: ['-c', '{word} {{image}}']\n")])
        assert missing_test(config, names, "img") == missing

    @pytest.mark.parametrize(
        ("word", "shown", "outside"),
        [
            ("{path}/../shared/test.sh", "img", ("shared/test.sh",)),
            ("{path}/../../shared/test.sh", "sub/img", ("shared/test.sh",)),
            ("{path}/../../t.sh", "img", ("../t.sh",)),
            ("{path}/..", ".", ("..",)),
            ("{path}/../img/test.sh", "img", ("img/test.sh",)),  # out, then back in
            ("{path}/t/../test.sh", "img", ()),  # never leaves the folder
            ("{path}/test.sh", "img", ()),
            ("--file={path}/../t.sh", "img", ()),  # not a path the plan can tell
        ],
    )
    def test_files_outside_the_folder_are_named_relative_to_the_tree(
        self, word: str, shown: str, outside: tuple[str, ...]
    ) -> None:
        config = load_config([("c.yaml", f"verify_args: ['-c', '{word} {{image}}']\n")])
        assert outside_files(config, shown) == outside

    def test_a_file_outside_the_folder_is_there_when_seen_there(self) -> None:
        config = load_config([("c.yaml", "verify_args: ['-c', '{path}/../shared/t.sh {image}']\n")])
        assert missing_test(config, set(), "img", {"shared/t.sh"}) is None
        assert missing_test(config, set(), "img", {"other/t.sh"}) == "img/../shared/t.sh"
        # Seen outside does not stand for a file the folder itself must hold.
        both = "verify_args: ['-c', '{path}/../shared/t.sh {path}/test.sh']\n"
        config = load_config([("c.yaml", both)])
        assert missing_test(config, set(), "img", {"shared/t.sh"}) == "img/test.sh"
        assert missing_test(config, {"test.sh"}, "img", {"shared/t.sh"}) is None


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])}, CONFIG)
    (root / "images" / "base" / "Dockerfile.template").write_text(
        "FROM {{ 'debian' | image_tag }}\n", "utf-8"
    )
    (root / "images" / "app" / "test.sh").write_text("#!/bin/sh\n", "utf-8")
    return root


def plan_for(root: Path, observed: Observed, **options: object) -> Plan:
    env = {"HOME": str(root)}
    workspace = load_workspace(str(root / "images"), str(root / "config.yaml"), env)
    return build_plan(workspace, observed, BuildOptions(**options))  # type: ignore[arg-type]


def derived_again(root: Path, plan: Plan) -> Plan:
    """PLAN saved and read back, then derived again as `apply PLAN.json` does."""
    saved = plan_from_json(plan_to_json(plan), "p.json")
    env = {"HOME": str(root)}
    workspace = load_workspace(str(root / "images"), str(root / "config.yaml"), env, render=False)
    derived = derived_build_plan(saved, workspace, "p.json")
    assert build_differences(saved, derived) == ()
    return derived


class TestPlans:
    def test_pulls_fall_back_only_where_the_daemon_held_a_copy(self, tree: Path) -> None:
        observed = Observed(
            offline=False,
            credentials=True,
            published=frozenset({BASE}),
            local=frozenset({DEBIAN}),
        )
        plan = plan_for(tree, observed, select="*app*")
        pulls = {s.label: s.local_copy for s in plan.steps if s.op is Op.PULL}
        # base is published and not on the daemon: its pull has nothing to fall back on.
        assert pulls == {BASE: False}
        plan = plan_for(tree, Observed(offline=False, credentials=True, local=frozenset({DEBIAN})))
        assert local_copies(plan) == {DEBIAN}
        assert f"{DEBIAN}  (base_image) [else the local copy]\n" in plan_to_text(plan)

    @pytest.mark.parametrize("held", [frozenset(), frozenset({BASE}), frozenset({DEBIAN, BASE})])
    def test_a_saved_plan_is_derived_again_with_its_local_copies(
        self, tree: Path, held: frozenset[str]
    ) -> None:
        observed = Observed(
            offline=False, credentials=True, published=frozenset({BASE}), local=held
        )
        for select in (None, "*app*"):
            plan = plan_for(tree, observed, select=select)
            assert plan.count(Op.PULL)
            derived = derived_again(tree, plan)
            assert plan_to_json(derived) == plan_to_json(plan)

    def test_verifications_without_their_test_are_skipped_in_the_plan(self, tree: Path) -> None:
        plan = plan_for(tree, Observed())
        verify = {s.image: s.missing_test for s in plan.steps if s.op is Op.VERIFY}
        assert verify == {"base": "base/test.sh", "app": None}
        assert plan.image("app").has_test
        assert not plan.image("base").has_test
        text = plan_to_text(plan)
        assert "(built_in_this_run) [skipped: no base/test.sh]" in text
        assert derived_again(tree, plan).steps == plan.steps

    def test_cache_registry_turns_the_builds_cache_on_not_the_stages(self, tree: Path) -> None:
        (tree / "images" / "app" / "Dockerfile.build.template").write_text("FROM scratch\n")
        plan = plan_for(tree, Observed(), cache=CacheMode.REGISTRY)
        cache = {str(s.key): s.use_cache for s in plan.steps if s.op in (Op.BUILD, Op.BUILD_STAGE)}
        assert cache == {"build:base": True, "build-stage:app": False, "build:app": True}
        assert not plan.options.use_cache
        both = plan_for(tree, Observed(), cache=CacheMode.REGISTRY, use_cache=True)
        assert all(s.use_cache for s in both.steps if s.op in (Op.BUILD, Op.BUILD_STAGE))
        assert derived_again(tree, plan).steps == plan.steps

    def test_the_json_holds_the_choices_only_where_set(self, tree: Path) -> None:
        plan = plan_for(tree, Observed(), use_cache=True)
        text = plan_to_json(plan)
        assert text.count('"use_cache": true') == 1 + plan.count(Op.BUILD)  # options, builds
        assert text.count('"missing_test"') == 1
        assert text.count('"local_copy": true') == plan.count(Op.PULL)
        assert plan_from_json(text, "p.json") == plan


def test_a_pull_held_to_a_digest_has_no_local_copy(tree: Path) -> None:
    config = (tree / "config.yaml").read_text("utf-8") + "pin_bases: true\n"
    (tree / "config.yaml").write_text(config, "utf-8")
    digest = "sha256:" + "e" * 64
    observed = Observed(
        offline=False,
        credentials=True,
        local=frozenset({DEBIAN}),
        base_digests={DEBIAN: digest},
    )
    plan = plan_for(tree, observed)
    [pull] = [s for s in plan.steps if s.op is Op.PULL]
    assert pull.label == f"{DEBIAN}@{digest}"
    assert not pull.local_copy
    assert plan_to_json(derived_again(tree, plan)) == plan_to_json(plan)


class TestTestFilesOutsideTheFolders:
    """A verification naming a file outside its image's folder (`{path}/../x`) runs when the
    file is there when planning: the tree's snapshot does not hold it, so it is looked at."""

    SHARED = "verify_args: ['-c', '{path}/../../shared-test.sh {image}']\n"

    @pytest.fixture
    def shared_tree(self, tree: Path) -> Path:
        config = (tree / "config.yaml").read_text("utf-8") + self.SHARED
        (tree / "config.yaml").write_text(config, "utf-8")
        return tree

    def verifications(self, plan: Plan) -> dict[str, str | None]:
        return {s.image: s.missing_test for s in plan.steps if s.op is Op.VERIFY}

    def test_skipped_when_the_file_is_absent(self, shared_tree: Path) -> None:
        plan = plan_for(shared_tree, Observed())
        assert self.verifications(plan) == {
            "base": "base/../../shared-test.sh",
            "app": "app/../../shared-test.sh",
        }
        assert derived_again(shared_tree, plan).steps == plan.steps

    def test_run_when_the_file_is_there(self, shared_tree: Path) -> None:
        (shared_tree / "shared-test.sh").write_text("#!/bin/sh\n", "utf-8")
        plan = plan_for(shared_tree, Observed())
        assert self.verifications(plan) == {"base": None, "app": None}
        assert "[skipped" not in plan_to_text(plan)
        assert derived_again(shared_tree, plan).steps == plan.steps

    def test_a_saved_plan_is_refused_once_the_file_is_gone(self, shared_tree: Path) -> None:
        (shared_tree / "shared-test.sh").write_text("#!/bin/sh\n", "utf-8")
        saved = plan_from_json(plan_to_json(plan_for(shared_tree, Observed())), "p.json")
        (shared_tree / "shared-test.sh").unlink()
        env = {"HOME": str(shared_tree)}
        images, config = str(shared_tree / "images"), str(shared_tree / "config.yaml")
        workspace = load_workspace(images, config, env, render=False)
        with pytest.raises(DockerPkgError) as raised:
            derived_build_plan(saved, workspace, "p.json")
        assert "shared-test.sh" in str(raised.value)
