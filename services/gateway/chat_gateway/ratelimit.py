"""Rate limits: sign-in failures (in PostgreSQL, shared by every replica) and a token bucket for
messages (in memory, per replica and user)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_gateway.tables import login_failures


async def login_blocked_for(
    conn: AsyncConnection, keys: list[tuple[str, int]], window_seconds: int
) -> float:
    """Seconds until a sign-in may be tried again, 0 if now. `keys` are (key, max failures)."""
    rows = await conn.execute(
        select(
            login_failures.c.key,
            login_failures.c.failures,
            func.extract("epoch", login_failures.c.window_started_at - func.now()).label("age"),
        ).where(login_failures.c.key.in_([key for key, _ in keys]))
    )
    limits = dict(keys)
    wait = 0.0
    for row in rows:
        remaining = window_seconds + float(row.age)
        if remaining > 0 and row.failures >= limits[row.key]:
            wait = max(wait, remaining)
    return wait


async def record_login_failure(conn: AsyncConnection, keys: list[str], window_seconds: int) -> None:
    expired = login_failures.c.window_started_at < func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, window_seconds
    )
    for key in keys:
        statement = insert(login_failures).values(key=key, failures=1)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[login_failures.c.key],
                set_={
                    "failures": case((expired, 1), else_=login_failures.c.failures + 1),
                    "window_started_at": case(
                        (expired, func.now()), else_=login_failures.c.window_started_at
                    ),
                },
            )
        )


async def clear_login_failures(conn: AsyncConnection, key: str) -> None:
    await conn.execute(delete(login_failures).where(login_failures.c.key == key))


@dataclass
class TokenBucket:
    """`capacity` messages at once, refilled at `capacity` per minute."""

    capacity: float
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self) -> float:
        """0 if a message may be sent now (and counts it), else seconds to wait."""
        now = time.monotonic()
        rate = self.capacity / 60
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return math.ceil((1 - self.tokens) / rate * 10) / 10
