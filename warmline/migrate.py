"""Schema migrations with Alembic, configured in code so operators need no alembic.ini."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(db_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (creating it if it is new). Blocking.

    The migration environment runs its own event loop, so it gets a thread of its own: that way this works the
    same from the CLI and from code that already runs inside an event loop.
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(command.upgrade, alembic_config(db_url), revision).result()
