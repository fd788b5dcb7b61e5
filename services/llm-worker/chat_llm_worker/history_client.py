"""The question the worker asks the history service before each model call (`StartAnswer`: the
session's turn, the earlier messages and a budget hold, in one round trip).

Chat goes on while history is down (docs/decisions/0006): after a question times out, a circuit
breaker answers every question with `HistoryUnavailable` for `HISTORY_BREAKER_SECONDS` without
asking (so an answer does not wait a whole RPC timeout per question), then lets one question
through; its answer closes the breaker, its timeout opens it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel

from chat_contracts.history import HoldPrice, StartAnswer, StartReply
from chat_contracts.work import LlmRequest

log = logging.getLogger("chat_llm_worker")


class HistoryUnavailable(Exception):
    """History did not answer in time, or the breaker is open."""


class Breaker:
    def __init__(self, open_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._open_seconds = open_seconds
        self._clock = clock
        self._open_until: float | None = None
        self._probing = False

    @property
    def closed(self) -> bool:
        return self._open_until is None

    def allow(self) -> bool:
        """May a question be asked now? While open: no; once the pause is over: one at a time,
        until one is answered."""
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def release(self) -> None:
        """The question let through was not answered, for a reason of the asker's own."""
        self._probing = False

    def succeeded(self) -> None:
        if self._open_until is not None:
            log.info("history answers again")
        self._open_until = None
        self._probing = False

    def failed(self) -> None:
        if self._open_until is None:
            log.warning("history did not answer; not asking for %.0f s", self._open_seconds)
        self._open_until = self._clock() + self._open_seconds
        self._probing = False


class Asker(Protocol):
    async def ask(self, message: BaseModel, expires_in: float) -> bytes: ...


class HistoryClient:
    def __init__(self, link: Asker, timeout: float, breaker: Breaker) -> None:
        self._link = link
        self._timeout = timeout
        self.breaker = breaker

    async def _ask(self, request: StartAnswer) -> bytes:
        if not self.breaker.allow():
            raise HistoryUnavailable
        try:
            body = await self._link.ask(request, expires_in=self._timeout)
        except TimeoutError as exc:
            self.breaker.failed()
            raise HistoryUnavailable from exc
        except BaseException:
            # Not history's fault (e.g. the answer was cancelled): let the next one probe.
            self.breaker.release()
            raise
        self.breaker.succeeded()
        return body

    async def start(
        self,
        request: LlmRequest,
        *,
        context_limit: int,
        interrupt: bool,
        stale_after_seconds: float,
        hold: HoldPrice,
    ) -> StartReply | None:
        """Claim the session's turn for the request's answer and, once claimed, get its earlier
        messages and hold budget for the call. None while history is unavailable: the answer goes
        ahead without earlier messages and without the turn (one answer per session is not worth
        no answer), on the outage allowance."""
        try:
            body = await self._ask(
                StartAnswer(
                    org_id=request.user.org_id,
                    user_id=request.user.user_id,
                    session_id=request.session_id,
                    message_id=request.message_id,
                    exclude_message_id=request.user_message_id,
                    context_limit=context_limit,
                    interrupt=interrupt,
                    stale_after_seconds=stale_after_seconds,
                    hold=hold,
                )
            )
        except HistoryUnavailable:
            log.warning("history unavailable: answering without earlier messages or the turn")
            return None
        return StartReply.model_validate_json(body)
