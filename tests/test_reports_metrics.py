"""The reports' figures on a scripted set of conversations whose answers are worked out by hand (handoff/metrics_calc).

Day 1 (2 Nov): three bot-only chats. c1 gets the billing answer, says yes, rates 5; c2 gets the router answer, says
no, rates 2; c3 gets the billing answer and leaves (no feedback, no rating). c4 opened the widget and never wrote.
Day 2 (3 Nov): four escalations.
  T1 (c5, support): router answer, then "customer_asked"; seated after 30 s, first reply 10 s later, Ann resolves
     after 300 s; rated 4.
  T2 (c6, billing, article refund, "always_human"): seated after 90 s, first reply after 20 s; Ann 100 s, transfer
     to Bob, Bob 250 s and resolves; rated 3.
  T3 (c7, billing, "low_confidence"): seated after 60 s by Bob, no reply yet, still open.
  T4 (c8, support, "customer_asked"): still queued.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handoff import metrics_calc as mc

D1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
D2 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
DAY1, DAY2 = "2026-11-02", "2026-11-03"
ANN, BOB = 1, 2


def s(n: float) -> timedelta:
    return timedelta(seconds=n)


def scripted() -> mc.Rows:
    """The conversations above as the rows the loaders produce (each conversation a group of one)."""
    conversations = [
        mc.ConversationGroup(DAY1, engaged=True, ticketed=False, said_no=False),  # c1
        mc.ConversationGroup(DAY1, engaged=True, ticketed=False, said_no=True),  # c2
        mc.ConversationGroup(DAY1, engaged=True, ticketed=False, said_no=False),  # c3
        mc.ConversationGroup(DAY1, engaged=False, ticketed=False, said_no=False),  # c4
        *[mc.ConversationGroup(DAY2, engaged=True, ticketed=True, said_no=False) for _ in range(4)],  # c5-c8
    ]
    answers = [
        mc.AnswerGroup("billing-dispute", True),  # c1
        mc.AnswerGroup("router-reset", False),  # c2
        mc.AnswerGroup("billing-dispute", None),  # c3
        mc.AnswerGroup("router-reset", None),  # c5
    ]
    tickets = [
        mc.TicketRow(1, DAY2, "customer_asked", None, "support", 4, True, 30, 10, 300, "router-reset"),
        mc.TicketRow(2, DAY2, "always_human", "refund", "billing", 3, True, 90, 20, 350),
        mc.TicketRow(3, DAY2, "low_confidence", None, "billing", None, False, 60, None, None),
        mc.TicketRow(4, DAY2, "customer_asked", None, "support", None, False, None, None, None),
    ]
    t1, t2, t3 = D2.timestamp() + 150, D2.timestamp() + 790, D2.timestamp() + 1360
    segments = [
        mc.SegmentRow(1, ANN, "Ann", "support", t1, 300),
        mc.SegmentRow(2, BOB, "Bob", "billing", t2 + 100, 250),  # listed first: order comes from the start times
        mc.SegmentRow(2, ANN, "Ann", "billing", t2, 100),
        mc.SegmentRow(3, BOB, "Bob", "billing", t3, None),
    ]
    ratings = [mc.ChatRatingGroup(DAY1, 5, ticketed=False), mc.ChatRatingGroup(DAY1, 2, ticketed=False)]
    return mc.Rows(conversations, tickets, segments, answers, ratings)


def test_overview_counts_chats_the_customer_wrote_in_and_deflection_excludes_tickets_and_a_no() -> None:
    o = mc.overview(scripted())
    assert (o.conversations, o.deflected, o.escalations, o.said_no) == (7, 2, 4, 1)
    assert o.deflection_rate == round(2 / 7, 4)


def test_csat_bot_only_escalated_and_transferred_with_counts_and_response_rates() -> None:
    k = mc.csat_by_kind(scripted())
    assert k.bot_only == mc.Csat(ratings=2, rateable=3, response_rate=0.6667, csat=0.5, mean_score=3.5)
    assert k.escalated == mc.Csat(ratings=1, rateable=1, response_rate=1.0, csat=1.0, mean_score=4.0)
    assert k.transferred == mc.Csat(ratings=1, rateable=1, response_rate=1.0, csat=0.0, mean_score=3.0)


def test_time_to_seat_first_response_and_handle_time() -> None:
    h = mc.handoff(scripted())
    assert h.time_to_seat == mc.Durations(count=3, p50_s=60, p90_s=90, mean_s=60)
    assert h.first_response == mc.Durations(count=2, p50_s=10, p90_s=20, mean_s=15)
    assert h.handle_time == mc.Durations(count=2, p50_s=300, p90_s=350, mean_s=325)


def test_handle_time_after_a_transfer_against_first_segments() -> None:
    t = mc.transfer_handle(scripted())
    assert t.first_segments == mc.Durations(count=2, p50_s=100, p90_s=300, mean_s=200)
    assert t.after_transfer == mc.Durations(count=1, p50_s=250, p90_s=250, mean_s=250)
    assert t.transferred_tickets == 1


def test_escalations_by_reason_and_by_article() -> None:
    rows = scripted()
    assert [(r.key, r.count) for r in mc.escalations_by_reason(rows.tickets)] == [
        ("customer_asked", 2),
        ("always_human", 1),
        ("low_confidence", 1),
    ]
    assert [(r.key, r.count) for r in mc.escalations_by_article(rows.tickets)] == [("refund", 1)]


def test_per_article_answered_yes_no_and_escalated_after_the_answer() -> None:
    assert mc.articles(scripted()) == [
        mc.ArticleRow(article_id="billing-dispute", answered=2, helpful_yes=1, helpful_no=0, escalated_after=0),
        mc.ArticleRow(article_id="router-reset", answered=2, helpful_yes=0, helpful_no=1, escalated_after=1),
    ]


def test_groups_count_as_many_conversations_as_they_hold() -> None:
    rows = mc.Rows(
        conversations=[mc.ConversationGroup(DAY1, True, False, False, conversations=30), mc.ConversationGroup(DAY1, True, True, False, 10)],
        chat_ratings=[mc.ChatRatingGroup(DAY1, 5, False, 6), mc.ChatRatingGroup(DAY1, 1, False, 2),
                      mc.ChatRatingGroup(DAY1, 5, True, 9)],  # the last: the chat escalated after all, not bot-only
        answers=[mc.AnswerGroup("a", True, 7), mc.AnswerGroup("a", None, 3)],
    )  # fmt: skip
    o = mc.overview(rows)
    assert (o.conversations, o.deflected, o.deflection_rate) == (40, 30, 0.75)
    assert mc.csat_by_kind(rows).bot_only == mc.Csat(
        ratings=8, rateable=30, response_rate=0.2667, csat=0.75, mean_score=4.0
    )
    assert mc.articles(rows) == [
        mc.ArticleRow(article_id="a", answered=10, helpful_yes=7, helpful_no=0, escalated_after=0)
    ]


def test_per_agent() -> None:
    ann, bob = mc.agents(scripted())
    assert (ann.agent, ann.segments, ann.resolved) == ("Ann", 2, 1)
    assert ann.handle == mc.Durations(count=2, p50_s=100, p90_s=300, mean_s=200)
    assert ann.after_transfer.count == 0
    assert (ann.csat.ratings, ann.csat.mean_score) == (1, 4.0)
    assert (bob.agent, bob.segments, bob.resolved) == ("Bob", 2, 1)
    assert bob.handle == mc.Durations(count=1, p50_s=250, p90_s=250, mean_s=250)
    assert bob.after_transfer.mean_s == 250
    assert (bob.csat.ratings, bob.csat.mean_score, bob.csat.csat) == (1, 3.0, 0.0)


def test_per_team() -> None:
    billing, support = mc.teams(scripted())
    assert (billing.team, billing.tickets, support.team, support.tickets) == ("billing", 2, "support", 2)
    assert billing.time_to_seat == mc.Durations(count=2, p50_s=60, p90_s=90, mean_s=75)
    assert billing.handle_time.mean_s == 350
    assert (billing.csat.ratings, billing.csat.mean_score) == (1, 3.0)
    assert support.time_to_seat == mc.Durations(count=1, p50_s=30, p90_s=30, mean_s=30)
    assert (support.csat.ratings, support.csat.rateable, support.csat.csat) == (1, 1, 1.0)


def test_daily_series() -> None:
    day1, day2 = mc.daily(scripted())
    assert day1 == mc.DayRow(
        day=DAY1, conversations=3, deflected=2, escalations=0, csat_bot_only=0.5, csat_escalated=None,
        csat_transferred=None, time_to_seat_p50_s=None, handle_p50_s=None,
    )  # fmt: skip
    assert day2 == mc.DayRow(
        day=DAY2, conversations=4, deflected=0, escalations=4, csat_bot_only=None, csat_escalated=1.0,
        csat_transferred=0.0, time_to_seat_p50_s=60, handle_p50_s=300,
    )  # fmt: skip


def test_handoff_health_flags_what_is_worse_by_more_than_the_margin() -> None:
    rows = scripted()
    h = mc.health(mc.csat_by_kind(rows), mc.transfer_handle(rows), csat_margin_pts=10, handle_margin_pct=20)
    checks = {c.name: c for c in h.checks}
    assert (checks["csat_escalated"].worse_by, checks["csat_escalated"].flagged) == (-50.0, False)
    assert (checks["csat_transferred"].worse_by, checks["csat_transferred"].flagged) == (50.0, True)
    assert (checks["handle_time"].baseline.value, checks["handle_time"].handoff.value) == (200, 250)
    assert (checks["handle_time"].worse_by, checks["handle_time"].flagged) == (25.0, True)
    assert h.flagged
    # Exactly at the margin is not "more than" it.
    h = mc.health(mc.csat_by_kind(rows), mc.transfer_handle(rows), csat_margin_pts=50, handle_margin_pct=25)
    assert not h.flagged


def test_nothing_to_measure_gives_no_figures_rather_than_zeros() -> None:
    r = mc.report(mc.Rows(), 10, 20)
    assert r.overview == mc.Overview(conversations=0, deflected=0, deflection_rate=None, escalations=0, said_no=0)
    assert r.csat.bot_only.csat is None and r.csat.bot_only.response_rate is None
    assert r.handoff.time_to_seat == mc.Durations(count=0, p50_s=None, p90_s=None, mean_s=None)
    assert not r.health.flagged and r.daily == [] and r.agents == []


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [([5.0], 50, 5.0), ([1.0, 2.0, 3.0, 4.0], 50, 2.0), ([1.0, 2.0, 3.0, 4.0], 90, 4.0), ([3.0, 1.0, 2.0], 90, 3.0)],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float) -> None:
    assert mc.percentile(values, p) == expected


def test_the_admin_tabs_handle_time_summary() -> None:
    summary = mc.handle_time_summary(scripted())
    assert (summary["segments"], summary["tickets"], summary["transferred_tickets"]) == (3, 2, 1)
    assert (summary["avg_handle_s"], summary["avg_handle_after_transfer_s"]) == (round(650 / 3, 1), 250.0)
    assert summary["agents"] == {
        "Ann": {"segments": 2, "avg_handle_s": 200.0, "avg_after_transfer_s": None},
        "Bob": {"segments": 1, "avg_handle_s": 250.0, "avg_after_transfer_s": 250.0},
    }
