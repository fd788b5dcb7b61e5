"""chat schema: a budget hold decided in one statement (`chat.hold_budget`)

docs/decisions/0010-budget-hold-in-one-statement.md. The hold is what
`repository.reserve_budget` did in five round trips (lock the org's budget row, create it with the
default budget if missing, sum the month's spend and the live holds, insert the hold), as one
function, so that a caller can run it as a statement of its own: the org's budget row is then
locked only while PostgreSQL runs it and commits, not while the client's event loop gets round
to its next statement. The rules are unchanged (decision 2).

SECURITY INVOKER: row-level security applies as for any statement of the service; the function
sets `app.org_id` to the org itself (for the rest of its transaction).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:30:00
"""

from collections.abc import Sequence

from alembic import op

from chat_runtime.migrations import app_role

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "chat.hold_budget(uuid, uuid, numeric, numeric, double precision)"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION chat.hold_budget(
            p_org_id uuid, p_message_id uuid, p_amount numeric, p_default_budget numeric,
            p_ttl_seconds double precision,
            OUT allowed boolean, OUT budget_usd numeric, OUT spent_usd numeric,
            OUT held_usd numeric)
        LANGUAGE plpgsql VOLATILE
        AS $$
        BEGIN
            PERFORM set_config('app.org_id', p_org_id::text, true);
            SELECT b.monthly_budget_usd INTO budget_usd
              FROM chat.org_budgets AS b WHERE b.org_id = p_org_id FOR UPDATE;
            IF NOT FOUND THEN  -- the org's first call: its budget is the default
                INSERT INTO chat.org_budgets (org_id, monthly_budget_usd)
                VALUES (p_org_id, p_default_budget) ON CONFLICT (org_id) DO NOTHING;
                SELECT b.monthly_budget_usd INTO budget_usd
                  FROM chat.org_budgets AS b WHERE b.org_id = p_org_id FOR UPDATE;
            END IF;
            -- Each statement of a volatile function takes a new snapshot: taken after the
            -- lock, this one sees every hold committed before, and both sums come from it (a
            -- final event turns a hold into spend in one commit). Spent: the month's model
            -- calls, except those still streaming under a live hold (the hold counts them).
            -- Held: the other answers' live holds.
            SELECT
              (SELECT coalesce(sum(c.cost_usd), 0) FROM chat.llm_calls AS c
                WHERE c.org_id = p_org_id AND c.created_at >= date_trunc('month', now())
                  AND NOT (c.status = 'streaming'
                           AND EXISTS (SELECT 1 FROM chat.budget_holds AS h
                                        WHERE h.message_id = c.message_id
                                          AND h.created_at
                                              > now() - make_interval(secs => p_ttl_seconds)))),
              (SELECT coalesce(sum(h.amount_usd), 0) FROM chat.budget_holds AS h
                WHERE h.org_id = p_org_id AND h.message_id <> p_message_id
                  AND h.created_at > now() - make_interval(secs => p_ttl_seconds))
              INTO spent_usd, held_usd;
            allowed := budget_usd > 0 AND spent_usd + held_usd + p_amount <= budget_usd;
            IF allowed THEN
                -- One hold per answer: a retried attempt replaces its answer's hold.
                INSERT INTO chat.budget_holds (message_id, org_id, amount_usd)
                VALUES (p_message_id, p_org_id, p_amount)
                ON CONFLICT (message_id)
                DO UPDATE SET amount_usd = excluded.amount_usd, created_at = now();
            END IF;
        END
        $$
        """
    )
    role = app_role()
    if role is not None:
        quoted = role.replace('"', '""')
        op.execute(f'GRANT EXECUTE ON FUNCTION {SIGNATURE} TO "{quoted}"')


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
