"""Row-level security on org_id for every chat table; the services' role gets only DML.

Each transaction of the history service sets `app.org_id` (SET LOCAL); the policies show and
accept only rows of that org. Without it, nothing is visible and nothing can be written. The idle
session sweep, which must see every org, is a narrow SECURITY DEFINER function.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

from chat_runtime.migrations import app_role, grant_to_app_role

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("sessions", "messages", "tool_audit", "llm_calls", "org_budgets", "budget_holds")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION chat.current_org() RETURNS uuid
        LANGUAGE sql STABLE
        AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$
        """
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE chat.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY org_isolation ON chat.{table} "
            "USING (org_id = chat.current_org()) WITH CHECK (org_id = chat.current_org())"
        )
    op.execute(
        """
        CREATE FUNCTION chat.end_idle_sessions(idle_seconds double precision)
        RETURNS SETOF uuid
        LANGUAGE sql SECURITY DEFINER SET search_path = chat, pg_temp
        AS $$
            UPDATE chat.sessions
               SET ended_at = now(), end_reason = 'idle_timeout'
             WHERE ended_at IS NULL
               AND last_activity_at < now() - make_interval(secs => idle_seconds)
            RETURNING id
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION chat.end_idle_sessions(double precision) FROM PUBLIC")
    grant_to_app_role("chat")
    role = app_role()
    if role is not None:
        quoted = role.replace('"', '""')
        op.execute(
            f'GRANT EXECUTE ON FUNCTION chat.end_idle_sessions(double precision) TO "{quoted}"'
        )


def downgrade() -> None:
    op.execute("DROP FUNCTION chat.end_idle_sessions(double precision)")
    for table in TABLES:
        op.execute(f"DROP POLICY org_isolation ON chat.{table}")
        op.execute(f"ALTER TABLE chat.{table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION chat.current_org()")
