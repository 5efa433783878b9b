"""Routing rules as pure functions: no server, no database (handoff/routing.py, handoff/canned.py, handoff/throttle.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest

from handoff import events, routing
from handoff.canned import Canned, matching, render
from handoff.kb_search import search
from handoff.reports import Segment, summarize
from handoff.routing import AgentLoad, TeamInfo
from handoff.throttle import Throttle
from knowledge.articles import KnowledgeBase

TEAMS = [
    TeamInfo("support", is_default=True),
    TeamInfo("billing"),
    TeamInfo("night", hours={"tz": "UTC", "start": "22:00", "end": "06:00"}),
]


def agent(
    agent_id: int, presence: str = "online", capacity: int = 2, active: int = 0, teams: tuple[str, ...] = ()
) -> AgentLoad:
    return AgentLoad(agent_id, presence, capacity, active, frozenset(teams))


def test_escalation_goes_to_the_articles_team_else_the_default() -> None:
    assert routing.team_for("billing", TEAMS) == "billing"
    assert routing.team_for("accounts", TEAMS) == "support"  # no such team (yet)
    assert routing.team_for(None, TEAMS) == "support"
    assert routing.team_for(None, []) == "support"


def test_members_include_agents_in_no_team_for_the_default_team_only() -> None:
    loads = [agent(1, teams=("billing",)), agent(2)]
    assert [a.agent_id for a in routing.members("support", loads, "support")] == [2]
    assert [a.agent_id for a in routing.members("billing", loads, "support")] == [1]


def test_least_loaded_online_agent_with_free_capacity_is_offered() -> None:
    loads = [
        agent(1, active=1, capacity=2),  # half full
        agent(2, active=1, capacity=4),  # a quarter full: wins
        agent(3, presence="away", active=0),
        agent(4, active=3, capacity=3),  # full
    ]
    assert routing.pick_agent(loads) == 2
    assert routing.pick_agent([agent(4, active=3, capacity=3), agent(3, presence="offline")]) is None
    assert routing.pick_agent([agent(7), agent(5)]) == 5  # a tie goes to the lowest id: deterministic


def test_offers_fill_free_slots_oldest_first_and_the_rest_wait() -> None:
    loads = [agent(1, capacity=1), agent(2, capacity=2, active=1)]
    assert routing.plan_offers([(10, None), (11, None), (12, None)], loads) == {10: 1, 11: 2}
    # A standing offer to an online agent stays, and takes one of their slots.
    assert routing.plan_offers([(10, 1), (11, None)], loads) == {11: 2}
    # An offer to someone who went away is made again.
    assert routing.plan_offers([(10, 1)], [agent(1, presence="away"), agent(2)]) == {10: 2}


def test_business_hours_including_overnight_and_days() -> None:
    weekday_noon = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
    office = {"tz": "Europe/Paris", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    assert routing.is_open(office, weekday_noon)
    assert not routing.is_open(office, datetime(2026, 11, 25, 17, 30, tzinfo=UTC))  # 18:30 in Paris
    assert not routing.is_open(office, datetime(2026, 11, 28, 12, 0, tzinfo=UTC))  # Saturday
    night = {"tz": "UTC", "start": "22:00", "end": "06:00"}
    assert routing.is_open(night, datetime(2026, 11, 25, 23, 0, tzinfo=UTC))
    assert not routing.is_open(night, weekday_noon)
    assert routing.is_open(None, weekday_noon) and routing.is_open({"tz": "Not/AZone"}, weekday_noon)


def test_availability_says_closed_or_nobody_online() -> None:
    noon = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert routing.availability(TEAMS[2], [agent(1)], noon).status == "closed"
    assert routing.availability(TEAMS[0], [agent(1, presence="away")], noon).status == "no_agents"
    assert routing.availability(TEAMS[0], [agent(1)], noon).status == "open"


def test_wait_estimate_from_capacity_and_handle_time() -> None:
    handle = routing.handle_time([100.0, 200.0, 300.0, 0.0])  # the median, ignoring empty segments
    assert handle == 200.0 and routing.handle_time([]) == routing.DEFAULT_HANDLE_S
    online = [agent(1, capacity=2, active=1), agent(2, capacity=2, active=2)]  # one free slot, four in all
    assert routing.estimate_wait_s(1, online, handle) == 0.0
    assert routing.estimate_wait_s(2, online, handle) == 100.0  # the next slot: half a handle time
    assert routing.estimate_wait_s(6, online, handle) == 300.0  # a second round
    assert routing.estimate_wait_s(1, [agent(1, presence="away")], handle) is None
    assert routing.wait_text(0) == "in under a minute" and routing.wait_text(100) == "in about 2 min"


def test_canned_variables_and_lookup() -> None:
    context = {"customer": {"name": "Maya"}, "agent": {"name": "Ada"}, "ticket": {"id": 7}}
    assert render("Hi {{customer.name}}, {{ agent.name }} here (ticket {{ticket.id}}).", context) == (
        "Hi Maya, Ada here (ticket 7)."
    )
    assert render("Hi {{customer.name}}", {}) == "Hi there"  # an anonymous customer
    assert render("{{ticket.nope}}", context) == "{{ticket.nope}}"  # unknown: left for the agent to see
    responses = [Canned(1, "hello", "Greeting", "Hi", None), Canned(2, "refund", "Refund policy", "..", "billing"),
                 Canned(3, "reboot", "Restart the router", "..", "technical")]  # fmt: skip
    assert [c.id for c in matching(responses, "/ref", {"billing"})] == [2]  # team-only responses stay in their team
    assert [c.id for c in matching(responses, "", {"technical"})] == [1, 3]
    assert [c.id for c in matching(responses, "router", {"technical"})] == [3]  # by title too


def test_typing_is_throttled_but_stopping_always_passes() -> None:
    now = [0.0]
    throttle = Throttle(interval_s=1.0, clock=lambda: now[0])
    assert throttle.allow("s1", True)
    assert not throttle.allow("s1", True)
    assert throttle.allow("s2", True)  # per sender
    assert throttle.allow("s1", False)
    assert throttle.allow("s1", True)  # typing again after a stop is news
    now[0] = 5.0
    assert throttle.allow("s2", True)


def test_console_kb_search_ranks_by_title_and_questions(demo_kb: KnowledgeBase) -> None:
    hits = search(demo_kb, "reset password")
    assert hits and hits[0].id == "reset-password"
    assert search(demo_kb, "?!") == []


def test_handle_time_report_separates_segments_after_a_transfer() -> None:
    t0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def seg(ticket: int, agent: str, start_min: int, end_min: int) -> Segment:
        return Segment(ticket, agent, t0.replace(minute=start_min), t0.replace(minute=end_min))

    report = summarize([seg(1, "Ada", 0, 4), seg(1, "Bob", 4, 10), seg(2, "Bob", 0, 2)])
    assert report["tickets"] == 2 and report["transferred_tickets"] == 1
    assert report["avg_handle_after_transfer_s"] == 360.0  # Bob's stretch on ticket 1
    assert report["agents"] == {
        "Ada": {"segments": 1, "avg_handle_s": 240.0, "avg_after_transfer_s": None},
        "Bob": {"segments": 2, "avg_handle_s": 240.0, "avg_after_transfer_s": 360.0},
    }


def test_console_event_payloads_validate() -> None:
    """Every payload the console's handlers emit is a model; these are the shapes the browser code relies on."""
    assert events.QueueStatus(ticket_id=1, team="support", position=2).model_dump()["availability"] == "open"
    assert events.TypingOut(sender="agent", name="Ada", typing=True).model_dump()["ticket_id"] is None
    assert events.ReadOut(reader="customer", message_id=3).model_dump() == {
        "ticket_id": None,
        "reader": "customer",
        "message_id": 3,
    }
    out = events.TransferOut(
        ticket_id=1, conversation_id="c", from_agent="Ada", to_agent_id=2, to_agent="Bob", note="n"
    )
    assert set(out.model_dump()) == {
        "ticket_id",
        "conversation_id",
        "from_agent",
        "to_agent",
        "to_agent_id",
        "to_team",
        "note",
    }
    assert (
        events.EmailRequest(ticket_id=1, reason="closed", opens_at="09:00-17:00 UTC").model_dump()["reason"] == "closed"
    )
    for bad in ({"ticket_id": 1, "note": "  ", "to_team": "x"}, {"ticket_id": 1, "note": "x" * 2001, "to_team": "x"}):
        with pytest.raises(pydantic.ValidationError):
            events.TransferIn.model_validate(bad)
    with pytest.raises(pydantic.ValidationError):
        events.LeaveEmail.model_validate({"email": "nope"})
    with pytest.raises(pydantic.ValidationError):
        events.PresenceIn.model_validate({"presence": "busy"})
