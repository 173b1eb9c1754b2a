"""The pure parts of approvals that don't die unseen: a reminder plan's rounds and next moment,
who may decide before and after an escalation, and ``/nexthink delegate`` as typed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bot.deciders import Subject
from bot.store import NudgePlan
from handlers.grammar import Delegate, GrammarError, UserTarget, parse

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_rounds_count_whole_intervals_and_fractions_of_minutes_work() -> None:
    """``remind_after_minutes: 0.05`` is 3 s: round n starts after n whole intervals."""
    plan = NudgePlan(remind_after_minutes=0.05)
    assert plan.round_at(T0, T0) == 0
    assert plan.round_at(T0, T0 + timedelta(seconds=2.999)) == 0
    assert plan.round_at(T0, T0 + timedelta(seconds=3)) == 1
    assert plan.round_at(T0, T0 + timedelta(seconds=7)) == 2
    assert NudgePlan().round_at(T0, T0 + 100 * MIN) == 0


def test_the_next_moment_is_the_next_round_or_the_escalation_before_expiry() -> None:
    """The sweep looks again at the next round or the escalation, whichever comes first, and
    never once the request would have expired."""
    plan = NudgePlan(60, 90, ("@it-managers",))
    expires = T0 + 24 * 60 * MIN
    assert plan.next_at(T0, T0, expires) == T0 + 60 * MIN
    assert plan.next_at(T0, T0 + 61 * MIN, expires) == T0 + 90 * MIN
    assert plan.next_at(T0, T0 + 90 * MIN, expires) == T0 + 120 * MIN
    assert plan.next_at(T0, T0 + 1380 * MIN, expires) is None
    assert NudgePlan().next_at(T0, T0, expires) is None
    assert NudgePlan(escalate_after_minutes=5).next_at(T0, T0, expires) is None  # nobody to add


def test_an_escalation_adds_its_people_only_once_it_came_and_only_to_named_approvers() -> None:
    subject = Subject(
        approvers=("U0CAROL",), escalate_to=("U0DAVE", "U0CAROL"), escalates_at=T0 + 5 * MIN
    )
    assert subject.approvers_at(T0 + 4 * MIN) == ("U0CAROL",)
    assert subject.approvers_at(T0 + 5 * MIN) == ("U0CAROL", "U0DAVE")
    anyone = Subject(approvers=(), escalate_to=("U0DAVE",), escalates_at=T0)
    assert anyone.approvers_at(T0 + MIN) == ()  # "anyone" stays anyone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delegate", Delegate("show")),
        ("delegate off", Delegate("off")),
        ("DELEGATE Off", Delegate("off")),
        ("delegate <@U0ALICE>", Delegate("set", UserTarget("mention", "U0ALICE"))),
        ("delegate <@U0ALICE|alice>", Delegate("set", UserTarget("mention", "U0ALICE"))),
        (
            "delegate alice@example.com until 2030-02-01",
            Delegate("set", UserTarget("upn", "alice@example.com"), date(2030, 2, 1)),
        ),
    ],
    ids=["show", "off", "off-any-case", "mention", "mention-with-name", "upn-until"],
)
def test_delegate_is_read_as_typed(text: str, expected: Delegate) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("delegate @alice", "names no stand-in"),
        ("delegate <#C0SUPPORT>", "channel"),
        ("delegate S-1-5-21-1-2-3-1001", "names no stand-in"),
        ("delegate <@U0ALICE> tomorrow", "until YYYY-MM-DD"),
        ("delegate <@U0ALICE> until 2030-02-30", "is not a date"),
        ("delegate <@U0ALICE> until 1/2/2030", "is not a date"),
        ("delegate <@U0ALICE> until 2030-02-01 please", "takes a stand-in"),
    ],
    ids=["plain-at", "channel", "sid", "no-until", "bad-day", "bad-format", "extra"],
)
def test_a_wrong_delegate_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(GrammarError) as raised:
        parse(text)
    assert problem in raised.value.problem
