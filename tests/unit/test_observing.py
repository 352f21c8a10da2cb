"""What observing asks, and the fold of literal registry and daemon answers into Observed:
no Docker, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockerpkg.core.bases import BASES_LABEL
from dockerpkg.core.config import Config, load_config
from dockerpkg.core.definition import DEFINITION_LABEL, IDENTITY_LABEL
from dockerpkg.core.images import LocalImage
from dockerpkg.core.observing import (
    Asked,
    BaseAnswers,
    RegistryAnswers,
    asks_latest,
    base_questions,
    fold_observed,
    label_reads,
    moved_repositories,
    questions,
    tree_questions,
)
from dockerpkg.core.staging import Staged
from dockerpkg.core.tree import Tree, analyze_tree
from dockerpkg.effects.tree import read_snapshot
from tests.support.updates import write_tree

HOST = "registry.example.org:5000"
CONFIG = f"registry: {HOST}\nnamespace: team\n"
BASE, APP = f"{HOST}/team/base:1.0", f"{HOST}/team/app:2.0"
STAGED_APP = ("team/dockerpkg-staging/app", "2.0")


@pytest.fixture
def config() -> Config:
    return load_config([("config.yaml", CONFIG)])


@pytest.fixture
def tree(tmp_path: Path, config: Config) -> Tree:
    write_tree(tmp_path, {"base": ("1.0", []), "app": ("2.0", ["base"])})
    found = analyze_tree(read_snapshot(tmp_path / "images"), config, render=False).tree
    assert found is not None
    return found


class TestQuestions:
    """References, then each repository's latest, then the staging references."""

    def test_order_and_kinds(self, config: Config) -> None:
        refs = [("team/base", "1.0"), ("team/app", "2.0")]
        assert questions(config, refs, latest=False, staging=False) == tuple(refs)
        assert questions(config, refs, latest=True, staging=True) == (
            ("team/base", "1.0"),
            ("team/app", "2.0"),
            ("team/base", "latest"),
            ("team/app", "latest"),
            ("team/dockerpkg-staging/base", "1.0"),
            STAGED_APP,
        )

    def test_latest_only_with_credentials_and_the_check(self, config: Config) -> None:
        assert asks_latest(config, credentials=True) is config.check_latest
        assert asks_latest(config, credentials=False) is False

    def test_tree_questions_are_its_references(self, tree: Tree, config: Config) -> None:
        assert set(tree_questions(tree, config, latest=False, staging=False)) == {
            ("team/base", "1.0"),
            ("team/app", "2.0"),
        }

    def test_labels_read_of_versions_found_staged_by_digest(self) -> None:
        digests = {
            ("team/base", "1.0"): "sha256:b",
            ("team/base", "latest"): "sha256:b",
            ("team/app", "2.0"): None,
            STAGED_APP: "sha256:s",
        }
        assert label_reads(digests, definitions=False) == {STAGED_APP: "sha256:s"}
        assert label_reads(digests, definitions=True) == {
            ("team/base", "1.0"): "1.0",
            STAGED_APP: "sha256:s",
        }

    def test_base_images_own_registry_with_the_login_only(self) -> None:
        config = Config(
            registry=HOST,
            base_images=(f"{HOST}/team/bullseye:1", "quay.io/x/y:2", "debian:12", "a@sha256:0"),
        )
        groups = {(g.host, g.own): [r.label for r in g.refs] for g in base_questions(config)}
        assert groups == {
            (HOST, True): [f"{HOST}/team/bullseye:1"],
            ("quay.io", False): ["quay.io/x/y:2"],
            (None, False): ["debian:12"],
        }


class TestFold:
    """Answers as data in, conclusions out."""

    def test_published_and_digests(self, tree: Tree, config: Config) -> None:
        answers = RegistryAnswers(
            {
                ("team/base", "1.0"): "sha256:b",
                ("team/base", "latest"): "sha256:b",
                ("team/app", "2.0"): None,
                ("team/app", "latest"): "sha256:old",
            }
        )
        observed = fold_observed(tree, config, Asked(credentials=True), answers)
        assert observed.offline is False
        assert observed.credentials is True
        assert observed.published == {BASE}
        # The app is not published: its latest is not compared, its tags not listed.
        assert observed.digests == {BASE: "sha256:b", f"{HOST}/team/base:latest": "sha256:b"}
        assert moved_repositories(tree, config, answers) == ()

    def test_latest_moved_lists_the_tags(self, tree: Tree, config: Config) -> None:
        answers = RegistryAnswers(
            {("team/app", "2.0"): "sha256:new", ("team/app", "latest"): "sha256:old"}
        )
        assert moved_repositories(tree, config, answers) == ("team/app",)
        listed = RegistryAnswers(
            {("team/app", "1.9"): "sha256:old", ("team/app", "latest"): "sha256:changed"},
            tags={"team/app": ("1.9", "2.0", "latest")},
        )
        observed = fold_observed(tree, config, Asked(), answers.merged(listed))
        assert observed.tags == {f"{HOST}/team/app": ("1.9", "2.0", "latest")}
        # The first answer for latest stands; the listed tags add theirs.
        assert observed.digests == {
            APP: "sha256:new",
            f"{HOST}/team/app:latest": "sha256:old",
            f"{HOST}/team/app:1.9": "sha256:old",
        }

    def test_without_latest_asked_no_digest(self, tree: Tree, config: Config) -> None:
        observed = fold_observed(tree, config, Asked(), RegistryAnswers({("team/app", "2.0"): "d"}))
        assert observed.published == {APP}
        assert observed.digests == {}

    def test_recorded_labels(self, tree: Tree, config: Config) -> None:
        bases = json.dumps({"debian:12": "sha256:d"})
        answers = RegistryAnswers(
            {("team/base", "1.0"): "sha256:b", ("team/app", "2.0"): "sha256:a"},
            labels={
                ("team/base", "1.0"): {DEFINITION_LABEL: "def-b", "maintainer": "x"},
                ("team/app", "2.0"): {BASES_LABEL: bases, "unrelated": "y"},
            },
        )
        assert answers.labels[("team/base", "1.0")] == {DEFINITION_LABEL: "def-b"}
        observed = fold_observed(tree, config, Asked(definitions=True), answers)
        assert observed.labels_read is True
        assert observed.recorded == {BASE: "def-b"}
        assert observed.bases == {APP: {"debian:12": "sha256:d"}}

    def test_staged(self, tree: Tree, config: Config) -> None:
        answers = RegistryAnswers(
            {("team/app", "2.0"): "sha256:pub", STAGED_APP: "sha256:s"},
            labels={STAGED_APP: {IDENTITY_LABEL: "id-1"}},
        )
        observed = fold_observed(tree, config, Asked(staging=True), answers)
        assert observed.staged == {APP: Staged("id-1", "sha256:s", "sha256:pub")}
        assert fold_observed(tree, config, Asked(), answers).staged == {}

    def test_daemon_and_bases(self, tree: Tree, config: Config) -> None:
        local = (
            LocalImage("sha256:1", (BASE, "other:1"), identity="id-b"),
            LocalImage("sha256:2", (APP,)),
        )
        bases = BaseAnswers({"debian:12": "sha256:d", "gone:1": None}, ("quay.io: timed out",))
        observed = fold_observed(tree, config, Asked(), RegistryAnswers(), local=local, bases=bases)
        assert observed.local == {BASE, "other:1", APP}
        assert observed.local_identities == {BASE: "id-b", "other:1": "id-b"}
        assert observed.base_digests == {"debian:12": "sha256:d"}
        assert observed.bases_absent == {"gone:1"}
        assert observed.problems == ("cannot tell whether base images moved: quay.io: timed out",)
        assert observed.published == frozenset()

    def test_merged_keeps_the_first_answer(self) -> None:
        first = RegistryAnswers({("a", "1"): "x", ("a", "2"): None})
        later = RegistryAnswers({("a", "1"): "y", ("a", "3"): "z"}, tags={"a": ("1",)})
        assert first.merged(later) == RegistryAnswers(
            {("a", "1"): "x", ("a", "2"): None, ("a", "3"): "z"}, tags={"a": ("1",)}
        )
