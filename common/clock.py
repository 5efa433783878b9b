"""The one clock: timezone-aware UTC, for every stored timestamp."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
