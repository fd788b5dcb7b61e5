"""Where a question's time goes before its first token: the hop times history records.

The services write each answer's hop times to `chat.message_timings` (the timeline's); this
reads those of the answers received in a load level's window and summarises each hop, so a
first-token overhead can be split into gateway → orchestrator → worker → model → socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.stats import summary

# (name, from column, to column): consecutive hops of one answer. An answer's worker hops
# (queued, started, model called, first output) come with its final event: answers still
# streaming when the level ends have none.
HOPS = (
    ("gateway→orchestrator", "received_at", "routed_at"),
    ("orchestrator→work queued", "routed_at", "queued_at"),
    ("work queue→worker", "queued_at", "started_at"),
    ("worker→model called", "started_at", "model_called_at"),
    ("model called→first output", "model_called_at", "first_output_at"),
    ("first output→socket", "first_output_at", "first_output_delivered_at"),
    ("received→first output", "received_at", "first_output_at"),
)


async def _hops(admin_url: str, since: float, until: float) -> dict[str, Any]:
    columns = sorted({c for _, a, b in HOPS for c in (a, b)})
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT m.tier, "
            + ", ".join(f"extract(epoch FROM t.{c}) AS {c}" for c in columns)
            + " FROM chat.message_timings t JOIN chat.messages m ON m.id = t.message_id"
            " WHERE t.received_at >= to_timestamp($1) AND t.received_at < to_timestamp($2)",
            since,
            until,
        )
    finally:
        await conn.close()
    report: dict[str, Any] = {}
    for tier, rows_of_tier in (
        ("tier2", [r for r in rows if r["tier"] == 2]),
        ("tier1", [r for r in rows if r["tier"] == 1]),
    ):
        report[tier] = {
            name: summary(
                (float(r[b]) - float(r[a]) for r in rows_of_tier if r[a] and r[b]), scale=1000
            )
            for name, a, b in HOPS
        }
    return report


def hop_times(admin_url: str, since: float, until: float) -> dict[str, Any]:
    """Per tier, each hop's count, p50, p95, p99 and max in ms, of the answers received in
    [since, until) (epoch seconds)."""
    return asyncio.run(_hops(admin_url, since, until))
