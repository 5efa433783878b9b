"""Reaching the PostgreSQL and Redis servers the tests use: skip with the reason on a laptop, fail under CI."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

PG_URL = os.environ.get("WARMLINE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("WARMLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    if reachable(host, port):
        return
    reason = f"{what} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (under CI a missing server is a failure, not a skip)")
    pytest.skip(reason)


async def create_pg_database() -> tuple[str, str]:
    """Make a throwaway database; returns (its URL, its name)."""
    import asyncpg

    require("127.0.0.1", 5432, "PostgreSQL")
    name = f"warmline_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL.rsplit("/", 1)[0] + "/" + name, name


async def drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
