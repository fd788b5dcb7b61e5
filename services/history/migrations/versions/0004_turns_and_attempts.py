"""chat schema: the session's turn (one answer at a time) and the attempt of each answer

docs/decisions/0006-streams-that-survive.md:
- `sessions.active_message_id` / `active_since`: the answer holding the session's turn
  (`ClaimTurn`), freed when its final event is persisted;
- `messages.attempt`: which delivery of the work produced the stored final status and text;
- `llm_calls.attempt`: which delivery made the call.

The status columns are plain text, so the new values (`stopped` for messages; `streaming`,
`interrupted` for calls) need no change. New columns of existing tables are covered by their
row-level security policy and grants (0002); nothing to grant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("active_message_id", sa.UUID(), nullable=True), schema="chat"
    )
    op.add_column(
        "sessions",
        sa.Column("active_since", sa.DateTime(timezone=True), nullable=True),
        schema="chat",
    )
    for table in ("messages", "llm_calls"):
        op.add_column(
            table,
            sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
            schema="chat",
        )


def downgrade() -> None:
    for table in ("llm_calls", "messages"):
        op.drop_column(table, "attempt", schema="chat")
    op.drop_column("sessions", "active_since", schema="chat")
    op.drop_column("sessions", "active_message_id", schema="chat")
