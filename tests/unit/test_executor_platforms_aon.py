"""The executor on a tree with platforms published all or nothing, without Docker: plans made
by the planner (`platforms` in the config, `--publish all_or_nothing`), carried out on the
in-memory daemon and registry (tests/support/fakedaemon.py). Each platform image is staged;
each index image's promotion copies its staged platforms into its repository by digest and
puts the index under the version tag and `latest`; nothing moves before every image is
built, verified and staged."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dockerpkg.core.plan import Plan, PublishMode
from dockerpkg.core.planner import Observed
from dockerpkg.core.report import Outcome, publication_line
from tests.support.fakedaemon import NATIVE, Manifest
from tests.unit.test_executor import CONFIG, HOST, outcomes, planned, run, write_tree
from tests.unit.test_executor_platforms import two_platform_base

ARM = "linux/arm64"
PLATFORMS = (NATIVE, ARM)
STAGING = "ns/dockerpkg-staging"
ONLINE = Observed(
    offline=False, credentials=True, daemon_platform=NATIVE, emulated=frozenset({ARM})
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base (FROM the config's debian) and app (FROM base, with a test.sh), for both
    platforms."""
    return write_tree(tmp_path, CONFIG + f"platforms:\n  - {NATIVE}\n  - {ARM}\n")


def aon(tree: Path, observed: Observed = ONLINE) -> tuple[object, Plan]:
    return planned(tree, observed, publish=PublishMode.ALL_OR_NOTHING)


class TestAWholeRun:
    def test_staged_then_promoted_as_indexes(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = aon(tree)
        daemon, registry = two_platform_base()
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))  # type: ignore[arg-type]
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        for name in ("base", "app"):
            index = registry.tags[f"ns/{name}", "1.0"]
            assert registry.tags[f"ns/{name}", "latest"] == index
            assert found[f"promote:{name}"][1] == f"{index}; staging deleted"
            children = registry.manifests[f"ns/{name}", index].children
            assert list(children) == list(PLATFORMS)
            for platform in PLATFORMS:
                suffix = platform.rpartition("/")[2]
                staged = found[f"stage:{name}:{suffix}"][1]
                # The manifest the stage step pushed, copied by digest, of its platform.
                assert children[platform] == staged
                assert registry.manifests[f"ns/{name}", staged].platform == platform
            # No platform tag in the image's repository, nothing left in the staging one.
            assert {t for p, t in registry.tags if p == f"ns/{name}"} == {"1.0", "latest"}
            assert not [t for p, t in registry.tags if p == f"{STAGING}/{name}"]

    def test_the_index_promotion_comes_after_the_barrier_and_the_parents(
        self, tree: Path, tmp_path: Path
    ) -> None:
        workspace, plan = aon(tree)
        daemon, registry = two_platform_base()
        run(workspace, plan, daemon, registry, tmp_path)  # type: ignore[arg-type]
        moved = [c for c in registry.calls if c[0] in ("promote_index", "manifest_digest")]
        promoted = [c[2] for c in moved if c[0] == "promote_index"]
        assert promoted == ["ns/base", "ns/app"]
        # Every stage push was confirmed before the first promotion.
        first = registry.calls.index(next(c for c in registry.calls if c[0] == "promote_index"))
        staged = [i for i, c in enumerate(registry.calls) if c[1].startswith(STAGING)]
        assert max(i for i in staged if registry.calls[i][0] == "manifest_digest") < first


class TestNothingMovesEarly:
    def test_a_failed_arm64_verification_moves_no_tag(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = aon(tree)
        daemon, registry = two_platform_base()
        daemon.exits[f"{HOST}/ns/app:1.0-arm64"] = 1
        report = run(workspace, plan, daemon, registry, tmp_path)  # type: ignore[arg-type]
        found = outcomes(report)
        assert found["verify:app:arm64"][0] is Outcome.FAILED
        line = publication_line(report) or ""
        assert line.startswith("Nothing moved: no version tag or latest of this run was")
        staged = f"{HOST}/{STAGING}/base:1.0-amd64, {HOST}/{STAGING}/base:1.0-arm64, "
        assert f"staged, not promoted: {staged}{HOST}/{STAGING}/app:1.0-amd64." in line
        assert found["promote:base"][0] is Outcome.SKIPPED
        assert found["promote:app"][0] is Outcome.SKIPPED
        assert [t for p, t in registry.tags if not p.startswith(STAGING)] == []
        assert ("promote_index",) not in {c[:1] for c in registry.calls}

    def test_a_refused_index_moves_no_tag(self, tree: Path, tmp_path: Path) -> None:
        workspace, plan = aon(tree)
        daemon, registry = two_platform_base()
        registry.fail("promote_index", "answered HTTP 400")
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))  # type: ignore[arg-type]
        assert found["promote:base"][2] == f"cannot promote {HOST}/ns/base:1.0: answered HTTP 400"
        assert found["promote:app"][0] is Outcome.SKIPPED
        assert [t for p, t in registry.tags if not p.startswith(STAGING)] == []


class TestAPlatformMissing:
    def test_the_listed_platform_is_kept_by_digest(self, tree: Path, tmp_path: Path) -> None:
        daemon, registry = two_platform_base()
        # base published whole; app's index lists amd64 only.
        held: dict[str, dict[str, str]] = {}
        for name in ("base", "app"):
            listed = {}
            for platform in PLATFORMS if name == "base" else (NATIVE,):
                suffix = platform.rpartition("/")[2]
                made = Manifest(f"sha256:{name}-{suffix}", platform=platform)
                listed[platform] = registry.put(f"ns/{name}", f"old-{suffix}", made)
            held[name] = listed
            registry.put_index(f"ns/{name}", ("1.0", "latest"), list(listed.items()))
        parent = f"{HOST}/ns/base@{held['base'][ARM]}"
        daemon.remote_platforms[parent] = {ARM: "sha256:base-arm64"}
        observed = attrs.evolve(
            ONLINE,
            published=frozenset({f"{HOST}/ns/base:1.0", f"{HOST}/ns/app:1.0"}),
            platform_digests={f"{HOST}/ns/{n}:1.0": held[n] for n in held},
        )
        workspace, plan = aon(tree, observed)
        assert [str(s.key) for s in plan.steps if s.op.value != "pull"] == [
            "build:app:arm64",
            "verify:app:arm64",
            "stage:app:arm64",
            "promote:app",
        ]
        found = outcomes(run(workspace, plan, daemon, registry, tmp_path))  # type: ignore[arg-type]
        assert {o for o, _, _ in found.values()} == {Outcome.SUCCEEDED}, found
        index = registry.tags["ns/app", "1.0"]
        assert dict(registry.manifests["ns/app", index].children) == {
            NATIVE: held["app"][NATIVE],
            ARM: found["stage:app:arm64"][1],
        }
        assert registry.tags["ns/app", "latest"] == index
