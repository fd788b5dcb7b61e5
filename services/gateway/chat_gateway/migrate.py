"""Applies the gateway's migrations (run as its own step, never on a replica's start)."""

from __future__ import annotations

from pathlib import Path

from chat_shared.migrations import upgrade as alembic_upgrade

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(database_url: str) -> None:
    alembic_upgrade(MIGRATIONS, database_url)
