"""Placement: which builder takes a ready image, which parents it fetches, and what becomes
of a lost builder's images (pure choices, no threads)."""

from __future__ import annotations

import attrs

from dockerpkg.core.placement import (
    MAX_MOVES,
    BuilderView,
    MoveChoice,
    MoveKind,
    choose_builder,
    moves_off,
    parents_to_fetch,
    pull_targets,
    registry_builder,
)
from dockerpkg.core.plan import Op, PlannedImage, StepKey
from dockerpkg.core.report import Outcome


def image(name: str, *parents: str) -> PlannedImage:
    return PlannedImage(
        path=name,
        name=name,
        tag="1",
        label=f"r/{name}:1",
        repository=f"r/{name}",
        depends=parents,
        parents=parents,
        dockerfile=None,
    )


IMAGES = {i.name: i for i in (image("base"), image("tool", "base"), image("app", "base", "tool"))}
BUILT = frozenset(IMAGES)


def choose(
    name: str, builders: list[BuilderView], where: dict[str, str], published: set[str]
) -> str | None:
    return choose_builder(
        IMAGES[name], IMAGES, builders, built=BUILT, where=where, published=frozenset(published)
    )


class TestChoose:
    def test_least_loaded_then_first(self) -> None:
        builders = [
            BuilderView("a", 2, 1, building=1),
            BuilderView("b", 2, 1),
            BuilderView("c", 2, 1),
        ]
        assert choose("base", builders, {}, set()) == "b"

    def test_load_is_relative_to_slots(self) -> None:
        builders = [BuilderView("a", 4, 1, building=2), BuilderView("b", 1, 1, building=0)]
        assert choose("base", builders, {}, set()) == "b"
        builders = [BuilderView("a", 4, 1, building=1), BuilderView("b", 2, 1, building=1)]
        assert choose("base", builders, {}, set()) == "a"

    def test_parents_unpublished_bind_the_child_to_their_builder(self) -> None:
        builders = [BuilderView("a", 1, 1, building=0), BuilderView("b", 1, 1)]
        assert choose("tool", builders, {"base": "b"}, set()) == "b"
        full = [BuilderView("a", 1, 1), BuilderView("b", 1, 1, building=1)]
        assert choose("tool", full, {"base": "b"}, set()) is None  # waits for b or publication
        assert choose("tool", full, {"base": "b"}, {"base"}) == "a"

    def test_holding_parents_wins_over_load(self) -> None:
        builders = [
            BuilderView("a", 4, 1, building=3, held=frozenset({"r/base:1", "r/tool:1"})),
            BuilderView("b", 4, 1, held=frozenset({"r/base:1"})),
        ]
        assert choose("app", builders, {}, {"base", "tool"}) == "a"

    def test_dead_or_full_builders_take_nothing(self) -> None:
        builders = [BuilderView("a", 1, 1, alive=False), BuilderView("b", 1, 1, building=1)]
        assert choose("base", builders, {}, set()) is None

    def test_registry_step_on_the_first_free_push_slot(self) -> None:
        builders = [
            BuilderView("a", 1, 1, pushing=1),
            BuilderView("b", 1, 1, alive=False),
            BuilderView("c", 1, 2, pushing=1),
        ]
        assert registry_builder(builders) == "c"
        assert registry_builder(builders[:2]) is None


class TestFetch:
    def test_several_fetch_what_they_do_not_hold(self) -> None:
        held = frozenset({"r/base:1"})
        assert parents_to_fetch(IMAGES["app"], IMAGES, held, several=True) == ("r/tool:1",)
        assert parents_to_fetch(IMAGES["base"], IMAGES, frozenset(), several=True) == ()

    def test_one_builder_fetches_nothing(self) -> None:
        assert parents_to_fetch(IMAGES["app"], IMAGES, frozenset(), several=False) == ()


CHAINS = {
    name: (StepKey(Op.BUILD, name), StepKey(Op.VERIFY, name), StepKey(Op.PUBLISH, name))
    for name in ("base", "tool", "app")
}


def keyed(results: dict[str, Outcome]) -> dict[StepKey, Outcome]:
    """RESULTS by the keys spelled `OP:IMAGE`."""
    return {StepKey.parse(text): outcome for text, outcome in results.items()}


class TestMoves:
    def test_unfinished_images_of_the_lost_builder_move(self) -> None:
        where = {"base": "a", "tool": "a", "app": "b"}
        results = {
            "build:base": Outcome.SUCCEEDED,
            "verify:base": Outcome.SUCCEEDED,
            "publish:base": Outcome.SUCCEEDED,  # published: stays published
            "build:tool": Outcome.SUCCEEDED,
        }
        assert moves_off("a", where, CHAINS, keyed(results), {}) == (
            MoveChoice(MoveKind.MOVE, "tool", CHAINS["tool"]),
        )

    def test_an_image_that_failed_on_its_own_does_not_move(self) -> None:
        results = {"build:tool": Outcome.SUCCEEDED, "verify:tool": Outcome.FAILED}
        assert moves_off("a", {"tool": "a"}, CHAINS, keyed(results), {}) == ()

    def test_given_up_after_max_moves(self) -> None:
        results = {"build:tool": Outcome.SUCCEEDED}
        moved = {"tool": MAX_MOVES}
        assert moves_off("a", {"tool": "a"}, CHAINS, keyed(results), moved) == (
            MoveChoice(MoveKind.GIVE_UP, "tool", (StepKey(Op.VERIFY, "tool"),)),
        )
        choices = moves_off("a", {"tool": "a"}, CHAINS, keyed(results), {"tool": MAX_MOVES - 1})
        assert choices[0].kind is (MoveKind.MOVE)


def platform_image(name: str, platform: str, *parents: str) -> PlannedImage:
    return attrs.evolve(image(name, *parents), platform=platform)


ARM, AMD = "linux/arm64", "linux/amd64"


class TestPlatforms:
    def test_a_platform_image_goes_only_to_a_builder_of_its_platform(self) -> None:
        arm = platform_image("base:arm64", ARM)
        images = {arm.name: arm}
        builders = [
            BuilderView("amd", 2, 1, platforms=frozenset({AMD})),
            BuilderView("arm", 2, 1, building=1, platforms=frozenset({ARM})),
        ]
        chosen = choose_builder(
            arm, images, builders, built=frozenset(), where={}, published=frozenset()
        )
        assert chosen == "arm"  # though the other is less loaded
        full = [builders[0], attrs.evolve(builders[1], building=2)]
        assert (
            choose_builder(arm, images, full, built=frozenset(), where={}, published=frozenset())
            is None
        )

    def test_builders_saying_nothing_take_any_platform(self) -> None:
        arm = platform_image("base:arm64", ARM)
        builders = [BuilderView("a", 1, 1, building=1), BuilderView("b", 1, 1)]
        assert (
            choose_builder(
                arm, {arm.name: arm}, builders, built=frozenset(), where={}, published=frozenset()
            )
            == "b"
        )
        assert BuilderView("a", 1, 1, platforms=frozenset({AMD})).builds(None)

    def test_a_pull_for_a_platform_runs_on_its_builders(self) -> None:
        builders = [
            BuilderView("amd", 1, 1, platforms=frozenset({AMD})),
            BuilderView("arm", 1, 1, platforms=frozenset({ARM})),
            BuilderView("both", 1, 1, platforms=frozenset({ARM, AMD}), alive=False),
            BuilderView("any", 1, 1),
        ]
        assert pull_targets(ARM, builders) == ("arm", "any")
        assert pull_targets(None, builders) == ("amd", "arm", "any")
        # None of the live ones says it builds it (the plan checked): all of them pull.
        assert pull_targets("linux/s390x", builders[:2]) == ("amd", "arm")
