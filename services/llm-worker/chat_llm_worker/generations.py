"""The answers this worker streams, or recently streamed: what replays and stops act on.

Per assistant message it holds the request, the attempt, every token event published (already
coalesced: a list append on the hot path, nothing more), the final event and a handle that
cancels the stream. An answer stays `REPLAY_GRACE_SECONDS` after its final event, so a client
that reconnects can still be sent what it missed; later history has the answer whole.

A stop for a message this worker does not hold is remembered just as long: its request may
still be queued, and the worker that takes it ends it at once (docs/decisions/0006).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from chat_contracts.control import AnyWorkerControl, ReplayReply, ReplayRequest, StopRequest
from chat_contracts.events import CompleteEvent, ErrorEvent, TokenEvent
from chat_contracts.work import LlmRequest

log = logging.getLogger("chat_llm_worker")

Replayable = TokenEvent | CompleteEvent | ErrorEvent


@dataclass
class Generation:
    request: LlmRequest
    attempt: int
    events: list[Replayable] = field(default_factory=list)
    ended_at: float | None = None
    # The user stopped it / the worker lost the broker (the attempt is abandoned).
    stopped: bool = False
    lost: bool = False
    # Set by either: whatever the answer waits for (the session's turn, queued) is over.
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    # Cancels the provider's stream while it runs.
    cancel: Callable[[], object] | None = None

    def record(self, event: Replayable) -> None:
        self.events.append(event)

    @property
    def seq(self) -> int:
        """The seq of the last event published."""
        return self.events[-1].seq if self.events else 0

    def stop(self) -> None:
        self.stopped = True
        self._wake()

    def abandon(self) -> None:
        self.lost = True
        self._wake()

    def _wake(self) -> None:
        self.woken.set()
        if self.cancel is not None:
            self.cancel()

    def replay(self, asked: ReplayRequest) -> ReplayReply:
        after = asked.after_seq if asked.attempt == self.attempt else 0
        events = [event for event in self.events if event.seq > after]
        return ReplayReply(
            message_id=self.request.message_id,
            attempt=self.attempt,
            events=events,
            # The final event is among them (recorded once published, before the answer's
            # handler returns: `ended_at` may come a moment later).
            ended=bool(events) and isinstance(events[-1], CompleteEvent | ErrorEvent),
        )


def _owns(request: LlmRequest, asker: StopRequest | ReplayRequest) -> bool:
    """Is the asker (whose org and user the gateway took from the socket) the request's own?"""
    return (
        request.session_id == asker.session_id
        and request.user.org_id == asker.org_id
        and request.user.user_id == asker.user_id
    )


class Generations:
    def __init__(self, grace_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace = grace_seconds
        self._clock = clock
        self._held: dict[UUID, Generation] = {}
        self._stops: dict[UUID, tuple[StopRequest, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def _forget_expired(self) -> None:
        horizon = self._clock() - self._grace
        for message_id, generation in list(self._held.items()):
            if generation.ended_at is not None and generation.ended_at < horizon:
                del self._held[message_id]
        for message_id, (_, at) in list(self._stops.items()):
            if at < horizon:
                del self._stops[message_id]

    def begin(self, request: LlmRequest, attempt: int) -> Generation:
        """Hold a new attempt of `request` (replacing an earlier one this worker held); it is
        stopped already if a matching stop overtook it."""
        self._forget_expired()
        generation = Generation(request, attempt)
        self._held[request.message_id] = generation
        early = self._stops.pop(request.message_id, None)
        if early is not None and _owns(request, early[0]):
            generation.stop()
        return generation

    def end(self, generation: Generation) -> None:
        """The answer's final event is published: keep it for replays during the grace."""
        generation.ended_at = self._clock()

    def drop(self, generation: Generation) -> None:
        """An abandoned attempt: another delivery (maybe on another worker) takes over, and
        only that one may answer replays."""
        if self._held.get(generation.request.message_id) is generation:
            del self._held[generation.request.message_id]

    def get(self, message_id: UUID) -> Generation | None:
        return self._held.get(message_id)

    def stop_waiting(self, message_id: UUID) -> bool:
        """Is a stop remembered for a message this worker has not taken (yet)?"""
        return message_id in self._stops

    def abandon_all(self) -> None:
        """The broker connection is lost: every answer in progress ends its attempt."""
        for generation in self._held.values():
            if generation.ended_at is None:
                generation.abandon()

    def stop(self, stop: StopRequest) -> bool:
        """Stop the answer if held (and the stop's sender owns it); otherwise remember it.
        True when an answer in progress was told to stop."""
        self._forget_expired()
        generation = self._held.get(stop.message_id)
        if generation is None:
            self._stops[stop.message_id] = (stop, self._clock())
            return False
        if generation.ended_at is not None or not _owns(generation.request, stop):
            return False
        generation.stop()
        return True

    def on_control(self, control: AnyWorkerControl) -> ReplayReply | None:
        """Act on a control message: a stop (nothing to reply), or a replay (the reply, if this
        worker holds the answer)."""
        if isinstance(control, StopRequest):
            if self.stop(control):
                log.info("stopping an answer", extra={"message_id": str(control.message_id)})
            return None
        return self.replay(control)

    def replay(self, asked: ReplayRequest) -> ReplayReply | None:
        """The reply for a replay request, or None when this worker does not hold the answer
        (or holds an older attempt than the asker has seen: someone else streams it now)."""
        self._forget_expired()
        generation = self._held.get(asked.message_id)
        if generation is None or asked.attempt > generation.attempt:
            return None
        if not _owns(generation.request, asked):
            return None
        return generation.replay(asked)
