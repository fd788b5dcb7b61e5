"""Applies the history service's migrations (run as its own step, never on a replica's start)."""

from __future__ import annotations

from pathlib import Path

from chat_runtime.migrations import upgrade as alembic_upgrade

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(admin_url: str, app_role: str | None) -> None:
    """Apply migrations as the tables' owner and grant `app_role` what the service needs."""
    alembic_upgrade(MIGRATIONS, admin_url, app_role)
