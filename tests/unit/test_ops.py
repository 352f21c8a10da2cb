"""The op table: every op has a row, and each row says what the scheduler, needs, the
recheck of a saved plan and the reports have always done with that op."""

from __future__ import annotations

import pytest

from dockerpkg.core.ops import OPS, Where, reported_as
from dockerpkg.core.plan import Action, Op, Plan, Reason, Step, StepKey
from dockerpkg.core.report import Outcome, Report, StepOutcome, report_table, summary_line
from dockerpkg.core.serialize import summary

IMG, E, A, N = Where.IMAGE_BUILDER, Where.EVERY_BUILDER, Where.ANY_BUILDER, Where.NOT_SCHEDULED
# op: where, push slot, after build, pushes image, publishes, before promotion, dropped once
# published (1: yes).
PINNED = {
    Op.PULL: (E, 0, 0, 0, 0, 0, 0),
    Op.BUILD_STAGE: (IMG, 0, 0, 0, 0, 1, 1),
    Op.BUILD: (IMG, 0, 0, 0, 0, 1, 1),
    Op.VERIFY: (IMG, 0, 1, 0, 0, 1, 1),
    Op.STAGE: (IMG, 1, 1, 1, 0, 1, 1),
    Op.PUBLISH: (IMG, 1, 1, 1, 1, 1, 1),
    Op.TAG_LATEST: (A, 1, 0, 0, 0, 0, 1),
    Op.PROMOTE: (IMG, 0, 0, 0, 1, 0, 1),
    Op.UNSTAGE: (A, 1, 0, 0, 0, 0, 0),
    Op.INDEX: (A, 1, 0, 0, 0, 0, 0),
    Op.REMOVE: (N, 0, 0, 0, 0, 0, 0),
    Op.KEEP: (N, 0, 0, 0, 0, 0, 0),
    Op.WRITE_CHANGELOG: (N, 0, 0, 0, 0, 0, 0),
}


def test_every_op_has_a_row() -> None:
    assert set(OPS) == set(Op)
    assert set(PINNED) == set(Op)


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.value)
def test_each_row_is_as_pinned(op: Op) -> None:
    rule = OPS[op]
    found = (
        rule.where,
        rule.push_slot,
        rule.after_build,
        rule.pushes_image,
        rule.publishes,
        rule.before_promotion,
        rule.dropped_once_published,
    )
    assert found == tuple(v if isinstance(v, Where) else bool(v) for v in PINNED[op])


def test_a_staging_push_is_reported_as_a_publication() -> None:
    assert reported_as(Op.STAGE) is Op.PUBLISH
    assert all(reported_as(op) is op for op in Op if op is not Op.STAGE)


def test_what_pushes_an_image_takes_a_push_slot_after_its_build() -> None:
    for op, rule in OPS.items():
        if rule.pushes_image:
            assert rule.push_slot, op
            assert rule.after_build, op
            assert rule.where is Where.IMAGE_BUILDER, op


def test_step_keys_are_values_spelled_op_colon_image() -> None:
    key = StepKey(Op.PULL, "registry.example.org/bookworm:20260301")
    assert str(key) == "pull:registry.example.org/bookworm:20260301"
    assert StepKey.parse(str(key)) == key
    assert key.words == "pull registry.example.org/bookworm:20260301"
    spelled: object = str(key)
    assert key != spelled  # a value, not its spelling
    for bad in ("publish", "publish:", "bogus:a"):
        with pytest.raises(ValueError, match=r"OP:IMAGE|bogus"):
            StepKey.parse(bad)


def report_of(push: Op, outcome: Outcome = Outcome.SUCCEEDED) -> Report:
    """A run that built, verified and pushed (by PUSH) image a, with OUTCOME for the push."""
    steps = [Step(op, "a", Reason.BUILT_IN_THIS_RUN, "r/a:1") for op in (Op.BUILD, Op.VERIFY)]
    pushed = Step(push, "a", Reason.BUILT_IN_THIS_RUN, "r/dockerpkg-staging/a:1")
    outcomes = [StepOutcome(s, Outcome.SUCCEEDED, duration=1.0) for s in steps]
    outcomes.append(StepOutcome(pushed, outcome, duration=2.0, error="denied"))
    return Report(tuple(outcomes), elapsed=3.0)


@pytest.mark.parametrize("outcome", [Outcome.SUCCEEDED, Outcome.FAILED])
def test_a_staged_image_is_reported_as_a_published_one(outcome: Outcome) -> None:
    staged, published = report_of(Op.STAGE, outcome), report_of(Op.PUBLISH, outcome)
    assert summary_line(staged) == summary_line(published)
    assert report_table(staged) == report_table(published)
    if outcome is Outcome.SUCCEEDED:
        assert "1 published" in summary_line(staged)
        assert report_table(staged).splitlines()[0].split() == [
            "image",
            "result",
            "build",
            "verify",
            "publish",
        ]
    else:
        assert "  publish a: denied" in report_table(staged)


def test_a_plan_counts_its_stage_steps_as_publications() -> None:
    steps = tuple(Step(op, "a", Reason.BUILT_IN_THIS_RUN) for op in (Op.BUILD, Op.STAGE))
    plan = Plan(Action.BUILD, ".", "sha256:0", (), steps)
    assert summary(plan) == "Plan: 1 to build, 1 to publish."
