"""REST for the Reports tab (``/api/reports``), the tab's page (``/reports``) and its charting library.

Admins see every team and may filter by one; agents and editors see their own team (their working teams: the
default team for an agent in none) and nothing else. Every route needs ``Authorization: Bearer <token>``.

- ``GET /api/reports?start=YYYY-MM-DD&end=YYYY-MM-DD&team=`` (or ``days=30`` ending now): every figure (JSON,
  ``handoff.metrics_calc.Report``) plus what the filter was, and which teams the caller may pick.
- ``GET /api/reports/csv/<table>`` with the same query: one table as CSV (agents, teams, articles, reasons,
  escalated_articles, daily).
- ``GET /api/admin/reports/handle-time?days=30``: the Admin tab's older handle-time summary (admins only).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Forbidden, InvalidPayload, NotFound
from handoff import metrics_calc as mc
from handoff import reports, rest, teams
from handoff.guard import validation_message
from handoff.models import Agent
from handoff.telemetry import metrics

CONSOLE = Path(__file__).resolve().parent.parent / "console"
REPORTS_PAGE = CONSOLE / "static" / "reports.html"
CHART_JS = CONSOLE / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"

reports_api = Blueprint("reports_api")


class ReportQuery(BaseModel):
    """``start`` and ``end`` are UTC days, both included; without them, the last ``days`` days up to now."""

    model_config = ConfigDict(extra="ignore")

    start: date | None = None
    end: date | None = None
    days: int = Field(default=30, ge=1, le=366)
    team: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _both_or_neither(self) -> ReportQuery:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        return self

    def period(self, team: str | None, now: datetime | None = None) -> reports.Period:
        try:
            if self.start is not None and self.end is not None:
                start = datetime.combine(self.start, time(), UTC)
                end = datetime.combine(self.end + timedelta(days=1), time(), UTC)
                return reports.Period(start=start, end=end, team=team)
            return reports.Period.last_days(self.days, team, now)
        except ValidationError as exc:
            raise InvalidPayload(validation_message(exc)) from exc


class Filter(BaseModel):
    start: datetime
    end: datetime
    team: str | None
    teams: list[str]  # what the caller may choose from
    all_teams: bool  # True for admins: "every team" is a choice


class ReportResponse(BaseModel):
    filter: Filter
    report: mc.Report


async def _scope(request: Request, s: AsyncSession) -> tuple[Agent, ReportQuery, reports.Period, Filter]:
    agent = await rest.logged_in(request, s, ("admin", "agent", "editor"), "Log in as an agent to see reports.")
    query = rest.query(request, ReportQuery)
    if agent.role == "admin":
        allowed = sorted(t.name for t in await teams.all_teams(s))
        team = query.team
    else:
        allowed = sorted(await teams.working_teams(s, agent.id))
        team = query.team or allowed[0]
        if team not in allowed:
            raise Forbidden("You can see the reports of your own team only.")
    if team is not None and team not in allowed:
        raise InvalidPayload(f"unknown team {team!r}")
    period = query.period(team)
    scope = Filter(start=period.start, end=period.end, team=team, teams=allowed, all_teams=agent.role == "admin")
    return agent, query, period, scope


def _margins(request: Request) -> tuple[float, float]:
    settings = request.app.ctx.settings
    return settings.reports_csat_margin_pts, settings.reports_handle_margin_pct


@reports_api.get("/api/reports")
async def report(request: Request) -> HTTPResponse:
    async with request.app.ctx.sessions() as s:
        _, _, period, scope = await _scope(request, s)
    built = await reports.build(request.app.ctx.sessions, period, *_margins(request))
    return response.json(ReportResponse(filter=scope, report=built).model_dump(mode="json"))


def _durations(prefix: str, d: mc.Durations) -> dict[str, Any]:
    return {
        f"{prefix}_count": d.count,
        f"{prefix}_p50_s": d.p50_s,
        f"{prefix}_p90_s": d.p90_s,
        f"{prefix}_mean_s": d.mean_s,
    }


def _csat(prefix: str, c: mc.Csat) -> dict[str, Any]:
    return {
        f"{prefix}_ratings": c.ratings, f"{prefix}_rateable": c.rateable, f"{prefix}_response_rate": c.response_rate,
        f"{prefix}_csat": c.csat, f"{prefix}_mean_score": c.mean_score,
    }  # fmt: skip


def _agent_rows(rows: mc.Rows) -> Iterable[dict[str, Any]]:
    for a in mc.agents(rows):
        yield {
            "agent": a.agent, "segments": a.segments, "resolved": a.resolved, **_durations("handle", a.handle),
            **_durations("after_transfer", a.after_transfer), **_csat("csat", a.csat),
        }  # fmt: skip


def _team_rows(rows: mc.Rows) -> Iterable[dict[str, Any]]:
    for t in mc.teams(rows):
        yield {
            "team": t.team, "tickets": t.tickets, **_durations("time_to_seat", t.time_to_seat),
            **_durations("handle", t.handle_time), **_csat("csat", t.csat),
        }  # fmt: skip


class Table(NamedTuple):
    needs: tuple[str, ...]  # the row sections it is computed from (only those are read)
    rows: Callable[[mc.Rows], Iterable[dict[str, Any]]]  # flat rows: nested figures spelled out as columns


TABLES: dict[str, Table] = {
    "agents": Table(("tickets", "segments"), _agent_rows),
    "teams": Table(("tickets",), _team_rows),
    "articles": Table(("answers", "tickets"), lambda r: (a.model_dump() for a in mc.articles(r))),
    "reasons": Table(
        ("tickets",), lambda r: ({"reason": x.key, "escalations": x.count} for x in mc.escalations_by_reason(r.tickets))
    ),
    "escalated_articles": Table(
        ("tickets",),
        lambda r: ({"article_id": x.key, "escalations": x.count} for x in mc.escalations_by_article(r.tickets)),
    ),
    "daily": Table(reports.SECTIONS, lambda r: (d.model_dump() for d in mc.daily(r))),
}


async def table_csv(sessions: Any, name: str, period: reports.Period) -> str:
    table = TABLES[name]
    rows = await reports.rows_for(sessions, period, table.needs)
    return await asyncio.to_thread(lambda: to_csv(table.rows(rows)))  # off the event loop, like reports.build


def to_csv(rows: Iterable[dict[str, Any]], header: list[str] | None = None) -> str:
    out = io.StringIO()
    rows = list(rows)
    fields = header or (list(rows[0]) if rows else [])
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


@reports_api.get("/api/reports/csv/<table:str>")
async def report_csv(request: Request, table: str) -> HTTPResponse:
    if table not in TABLES:
        raise NotFound(f"No such table; one of {', '.join(TABLES)}.")
    async with request.app.ctx.sessions() as s:
        _, _, period, scope = await _scope(request, s)
    name = f"warmline-{table}-{scope.start.date()}-{(scope.end - timedelta(days=1)).date()}.csv"
    return response.text(
        await table_csv(request.app.ctx.sessions, table, period),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@reports_api.get("/api/admin/reports/handle-time")
async def handle_time_report(request: Request) -> HTTPResponse:
    """Handle time per agent over the last ``days`` (default 30), including after transfers (the Admin tab): the
    segments of the tickets escalated in those days, through the kept days like every report."""
    try:
        days = max(1, min(365, int(request.args.get("days", "30"))))
    except ValueError as exc:
        raise InvalidPayload("days must be a number") from exc
    async with request.app.ctx.sessions() as s:
        await rest.logged_in(request, s, ("admin",), "Only administrators can do this.")
    rows = await reports.rows_for(request.app.ctx.sessions, reports.Period.last_days(days), ["segments"])
    return response.json({"days": days, **mc.handle_time_summary(rows)})


@reports_api.get("/reports")
async def reports_page(_: Request) -> HTTPResponse:
    return await response.file(REPORTS_PAGE, mime_type="text/html; charset=utf-8")


@reports_api.get("/static/vendor/chart.umd.min.js")
async def chart_js(_: Request) -> HTTPResponse:
    if not CHART_JS.exists():
        return response.text("chart.js not installed: run the install step (npm ci in console/)", status=503)
    return await response.file(CHART_JS, mime_type="application/javascript")


# What handoff/app.py registers (one line): the reports' REST, page and library, and /metrics.
routes = Blueprint.group(reports_api, metrics)
