"""Canned responses: fill in ``{{customer.name}}``-style variables, and find responses by what follows "/".

Pure functions; the socket handler supplies the context. An unknown variable is left as typed, so the agent sees
it in the composer and fixes it before sending, rather than the customer getting an empty gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VARIABLE = re.compile(r"\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}")
FALLBACKS = {("customer", "name"): "there"}  # "Hi {{customer.name}}" reads "Hi there" for an anonymous customer


@dataclass(frozen=True)
class Canned:
    id: int
    shortcut: str
    title: str
    body: str
    team: str | None  # None: shared by every team


def render(template: str, context: Mapping[str, Mapping[str, object]]) -> str:
    def fill(match: re.Match[str]) -> str:
        scope, key = match.group(1), match.group(2)
        value = context.get(scope, {}).get(key)
        if value in (None, ""):
            return FALLBACKS.get((scope, key), match.group(0))
        return str(value)

    return VARIABLE.sub(fill, template)


def matching(responses: Iterable[Canned], query: str, teams: set[str], limit: int = 8) -> list[Canned]:
    """Responses visible to an agent of ``teams`` (shared ones too) whose shortcut or title matches ``query``."""
    q = query.strip().lower().lstrip("/")
    visible = [r for r in responses if r.team is None or r.team in teams]
    hits = [r for r in visible if not q or r.shortcut.lower().startswith(q) or q in r.title.lower()]
    hits.sort(key=lambda r: (not r.shortcut.lower().startswith(q), r.shortcut))
    return hits[:limit]
