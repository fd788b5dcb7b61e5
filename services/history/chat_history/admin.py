"""What an operator does with the data history owns (schema `chat`): the public interface
`chatctl` uses, run as the tables' owner. Nothing else of history is for outside use
(docs/decisions/0015-one-shape.md).
"""

from __future__ import annotations

from chat_history import migrate
from chat_history.store.budget import set_budget

__all__ = ["set_budget", "upgrade"]


def upgrade(admin_url: str, app_role: str | None) -> None:
    """Apply history's migrations (schema `chat`), granting `app_role` what it needs."""
    migrate.upgrade(admin_url, app_role)
