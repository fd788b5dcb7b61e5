"""Sessions: opened (or restored for their owner), touched by activity, ended when idle."""

from __future__ import annotations

from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncConnection

from chat_contracts.history import SessionSnapshot
from chat_history.db import execute, fetch_rows, fetch_value
from chat_history.store.messages import session_messages

_CREATE = "INSERT INTO chat.sessions (id, org_id, user_id) VALUES ($1, $2, $3)"
# The session's end, if the asker owns it (no row: not theirs, or no such session).
_OWNED = """
    SELECT ended_at IS NOT NULL AS ended FROM chat.sessions
     WHERE id = $1 AND org_id = $2 AND user_id = $3
"""


async def open_session(
    conn: AsyncConnection, org_id: UUID, user_id: UUID, session_id: UUID | None, limit: int
) -> SessionSnapshot:
    """A new session (no id), or the asker's own session with its last `limit` messages."""
    if session_id is None:
        new_id = uuid4()
        await execute(conn, _CREATE, new_id, org_id, user_id)
        return SessionSnapshot(status="ok", session_id=new_id)
    ended = await fetch_value(conn, _OWNED, session_id, org_id, user_id)
    if ended is None:
        # Another user's session and a session that does not exist look the same to the caller.
        return SessionSnapshot(status="forbidden")
    return SessionSnapshot(
        status="ok",
        session_id=session_id,
        ended=ended,
        messages=await session_messages(conn, org_id, user_id, session_id, limit),
    )


_TOUCH = (
    "UPDATE chat.sessions SET last_activity_at = greatest(last_activity_at, now()) WHERE id = $1"
)


async def touch_session(conn: AsyncConnection, session_id: UUID) -> None:
    await execute(conn, _TOUCH, session_id)


# A SECURITY DEFINER function: the sweep is cross-org.
_END_IDLE = "SELECT ended.id FROM chat.end_idle_sessions($1) AS ended(id)"


async def end_idle_sessions(conn: AsyncConnection, idle_seconds: float) -> list[UUID]:
    """End every org's sessions idle for `idle_seconds`; their ids."""
    return [row["id"] for row in await fetch_rows(conn, _END_IDLE, float(idle_seconds))]
