"""History service settings."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from chat_runtime.settings import DatabaseSettings


class HistorySettings(DatabaseSettings):
    health_port: int = 8104
    # Events taken from the queue at once; also the largest batch written in one transaction
    # (chat_history/writer.py).
    history_prefetch: int = Field(default=32, ge=1)
    # Event batches written at once, each on its own connection, a session's events always in
    # the same one (chat_history/writer.py).
    history_write_lanes: int = Field(default=4, ge=1)
    # A session with no activity for this long is ended.
    session_idle_timeout_seconds: float = Field(default=600, gt=0)
    # How often idle sessions are looked for; by default a quarter of the timeout, at most 30 s.
    session_sweep_interval_seconds: float | None = None
    # The monthly budget of an org that has none set.
    default_org_budget_usd: Decimal = Decimal(0)
    # A budget hold whose call never reported back (a crashed worker) stops counting after this.
    budget_hold_ttl_seconds: int = 900

    @property
    def sweep_interval(self) -> float:
        if self.session_sweep_interval_seconds is not None:
            return self.session_sweep_interval_seconds
        return min(self.session_idle_timeout_seconds / 4, 30.0)
