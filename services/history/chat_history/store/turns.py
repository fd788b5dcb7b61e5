"""The session's turn: one answer streams per session at a time (`sessions.active_message_id`).

A claim succeeds when no answer holds the turn, when the claimer holds it already (a retried
attempt; `active_since` is renewed), when the holder showed no sign of life for
`stale_after_seconds` (every progress report renews `active_since`), or with `interrupt`. The
turn is freed when its holder's final event is persisted.
"""

from __future__ import annotations

import logging
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.history import TurnReply
from chat_history.db import execute, fetch_row, fetch_value

log = logging.getLogger("chat_history.store")

# One statement (one round trip): `held` locks the owned session row, so concurrent claims are
# decided one after another; it is the holder before this claim, which is also the holder that
# refused it. No row: the asker has no such session.
_CLAIM = """
    WITH held AS (
        SELECT id, active_message_id, active_since FROM chat.sessions
         WHERE id = $1 AND org_id = $2 AND user_id = $3
           FOR UPDATE
    ), claimed AS (
        UPDATE chat.sessions AS s
           SET active_message_id = $4, active_since = now()
          FROM held
         WHERE s.id = held.id
           AND (held.active_message_id IS NULL
                OR held.active_message_id = $4
                OR held.active_since < now() - make_interval(secs => $5)
                OR $6)
        RETURNING s.id
    )
    SELECT held.active_message_id AS holder, EXISTS (SELECT 1 FROM claimed) AS claimed FROM held
"""
_CREATE_CLAIMED = """
    INSERT INTO chat.sessions (id, org_id, user_id, active_message_id, active_since)
    VALUES ($1, $2, $3, $4, now())
    ON CONFLICT (id) DO NOTHING
    RETURNING id
"""


async def claim_turn(
    conn: AsyncConnection,
    org_id: UUID,
    user_id: UUID,
    session_id: UUID,
    message_id: UUID,
    *,
    interrupt: bool,
    stale_after_seconds: float,
) -> TurnReply:
    """Give the session's turn to `message_id` if it is free, already its own, or stale (or
    take it over with `interrupt`); otherwise say who holds it."""
    owner = (session_id, org_id, user_id, message_id)
    row = await fetch_row(conn, _CLAIM, *owner, float(stale_after_seconds), interrupt)
    if row is not None:
        holder = row["holder"]
        if not row["claimed"]:
            return TurnReply(status="busy", holder_message_id=holder)
        return TurnReply(
            status="claimed",
            holder_message_id=holder if holder not in (None, message_id) else None,
        )
    # No such session of this user. `open_session` normally creates it first; if the claim
    # came first, create it holding the turn. An id taken by another user or org (invisible
    # under row-level security, but still a conflict) creates and changes nothing.
    if await fetch_value(conn, _CREATE_CLAIMED, *owner) is not None:
        return TurnReply(status="claimed")
    log.warning("refused a turn claim for a session the asker does not own")
    return TurnReply(status="busy")


_RELEASE = """
    UPDATE chat.sessions SET active_message_id = NULL, active_since = NULL
     WHERE id = $1 AND active_message_id = $2
"""
_KEEP = """
    UPDATE chat.sessions SET active_since = now() WHERE id = $1 AND active_message_id = $2
"""


async def release_turn(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """Free the session's turn if `message_id` holds it (its answer has ended)."""
    await execute(conn, _RELEASE, session_id, message_id)


async def keep_turn(conn: AsyncConnection, session_id: UUID, message_id: UUID) -> None:
    """A progress report proves the holder's worker is alive: the turn is not stale."""
    await execute(conn, _KEEP, session_id, message_id)
