"""Sign-in: failed attempts per account and per IP, revoked tokens; grants to the services' role.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chat_runtime.migrations import grant_to_app_role

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column(
            "window_started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        schema="identity",
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        schema="identity",
    )
    grant_to_app_role("identity")


def downgrade() -> None:
    op.drop_table("revoked_tokens", schema="identity")
    op.drop_table("login_failures", schema="identity")
