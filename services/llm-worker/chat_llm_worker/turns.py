"""Taking the session's turn before the model is called: one answer streams per session at a
time, and `BUSY_POLICY` says what a message sent meanwhile does.

- `queue`: the answer says it waits (`queued`, once), then asks again after 20 ms, 40 ms, ... up
  to every 250 ms until the turn is its own or it is stopped. The answer before has usually just
  ended, and history frees the turn tens of milliseconds later, as it persists its final event;
- `reject`: an `error` (`busy`) after asking again for one second (without that second, a
  message sent right after an answer was often refused);
- `interrupt`: the claim takes the turn over, and the answer holding it is told to stop.

The claim comes with what else the answer needs from history (`StartAnswer`: earlier messages
and a budget hold), in one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib

from chat_contracts.base import now
from chat_contracts.codes import ErrorCode
from chat_contracts.control import StopRequest
from chat_contracts.history import HoldPrice, StartReply
from chat_llm_worker.generations import Generation
from chat_llm_worker.history_client import HistoryClient
from chat_llm_worker.link import WorkerLink
from chat_llm_worker.messages import BUSY_MESSAGE
from chat_llm_worker.outcomes import AnswerEvents
from chat_llm_worker.settings import LlmWorkerSettings, Price

# How often a queued answer asks for the session's turn again: soon at first, then less and
# less often, down to every CLAIM_INTERVAL_SECONDS.
CLAIM_FIRST_RETRY_SECONDS = 0.02
CLAIM_INTERVAL_SECONDS = 0.25
# BUSY_POLICY=reject: how long a message is still busy before it is refused.
REJECT_AFTER_SECONDS = 1.0


class AnswerEnded(Exception):
    """The answer ended before its model call: refused (busy) or stopped while it waited.
    Its final event is published."""


class AttemptAbandoned(Exception):
    """The worker lost the broker mid-answer: the request is not acknowledged, and RabbitMQ
    delivers it again (to this worker once it reconnects, or to another)."""


class TurnTaker:
    def __init__(
        self,
        settings: LlmWorkerSettings,
        price: Price,
        history: HistoryClient,
        link: WorkerLink,
        events: AnswerEvents,
    ) -> None:
        self._settings = settings
        self._price = price
        self._history = history
        self._link = link
        self._events = events

    def _hold_price(self, gen: Generation) -> HoldPrice:
        return HoldPrice(
            input_per_mtok=self._price.input_per_mtok,
            output_per_mtok=self._price.output_per_mtok,
            prompt_chars=len(self._settings.system_prompt) + len(gen.request.text),
            max_tokens=self._settings.llm_max_tokens,
        )

    async def take(self, gen: Generation) -> StartReply | None:
        """The claimed turn with the answer's earlier messages and budget hold; None when
        history is unavailable (the answer goes ahead without them). Raises `AnswerEnded` when
        the answer was refused or stopped instead, `AttemptAbandoned` when the broker is lost."""
        settings = self._settings
        request = gen.request
        interrupt = settings.busy_policy == "interrupt"
        queued = False
        reject_after = asyncio.get_running_loop().time() + REJECT_AFTER_SECONDS
        hold = self._hold_price(gen)
        pause = CLAIM_FIRST_RETRY_SECONDS
        while True:
            reply = await self._history.start(
                request,
                context_limit=settings.context_messages,
                interrupt=interrupt,
                stale_after_seconds=settings.turn_stale_seconds,
                hold=hold,
            )
            if reply is None or reply.turn.status == "claimed":
                holder = reply.turn.holder_message_id if reply is not None else None
                if interrupt and holder is not None and holder != request.message_id:
                    await self._link.broadcast_stop(
                        StopRequest(
                            session_id=request.session_id,
                            message_id=holder,
                            org_id=request.user.org_id,
                            user_id=request.user.user_id,
                            requested_at=now(),
                        )
                    )
                return reply
            if settings.busy_policy == "reject":
                # The answer before may have just ended, its final event not yet persisted by
                # history (which frees the turn then): ask again for a moment before refusing.
                if asyncio.get_running_loop().time() < reject_after:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, CLAIM_INTERVAL_SECONDS)
                    continue
                await self._events.fail(gen, ErrorCode.BUSY, BUSY_MESSAGE, retryable=True)
                raise AnswerEnded
            if not queued:
                queued = True
                await self._events.queued(gen, reply.turn.holder_message_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gen.woken.wait(), pause)
            pause = min(pause * 2, CLAIM_INTERVAL_SECONDS)
            if gen.lost:
                raise AttemptAbandoned
            if gen.stopped:
                await self._events.stopped(gen)
                raise AnswerEnded
