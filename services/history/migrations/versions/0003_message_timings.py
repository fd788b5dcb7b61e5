"""chat schema: message_timings, the hop times of each answer (row-level security on org_id)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chat_runtime.migrations import grant_to_app_role

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOPS = (
    "received_at",
    "routed_at",
    "queued_at",
    "started_at",
    "model_called_at",
    "first_output_at",
    "first_output_delivered_at",
    "completed_at",
    "persisted_at",
)


def upgrade() -> None:
    op.create_table(
        "message_timings",
        sa.Column("message_id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("correlation_id", sa.UUID(), nullable=False),
        sa.Column("trace_id", sa.Text(), nullable=True),
        *(sa.Column(hop, sa.DateTime(timezone=True), nullable=True) for hop in HOPS),
        sa.PrimaryKeyConstraint("message_id"),
        schema="chat",
    )
    # The same isolation as every chat table (0002_row_level_security).
    op.execute("ALTER TABLE chat.message_timings ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY org_isolation ON chat.message_timings "
        "USING (org_id = chat.current_org()) WITH CHECK (org_id = chat.current_org())"
    )
    grant_to_app_role("chat")


def downgrade() -> None:
    op.drop_table("message_timings", schema="chat")
