"""One socket's conversation: the frames a client sends, and what each of them does."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID, uuid4

from pydantic import ValidationError

from chat_contracts.codes import ErrorCode
from chat_contracts.control import ReplayReply, ReplayRequest, StopRequest
from chat_contracts.events import UserMessage
from chat_contracts.history import HistoryMessage, OpenSession, SessionSnapshot
from chat_contracts.protocol import (
    AcceptedFrame,
    ErrorFrame,
    JoinedFrame,
    JoinFrame,
    PingFrame,
    PongFrame,
    ResumePoint,
    ResyncFrame,
    RetryingFrame,
    SendFrame,
    ServerFrame,
    StopFrame,
    UserInfo,
    client_frame_adapter,
)
from chat_gateway.bridge import BackendUnavailable, BrokerBridge
from chat_gateway.frames import Outgoing, outgoing, retrying_text
from chat_gateway.hub import Client, SessionHub
from chat_gateway.settings import GatewaySettings
from chat_runtime.logs import bind_correlation_id
from chat_runtime.telemetry import instruments
from chat_runtime.tracing import chat_attributes, question_span

log = logging.getLogger("chat_gateway.conversation")

# Above every real attempt: nothing more of an answer that history shows ended is sent.
BEYOND_EVERY_ATTEMPT = (1 << 62, 0)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    return f"invalid frame: {where}: {first['msg']}"


class Conversation:
    def __init__(
        self, client: Client, hub: SessionHub, bridge: BrokerBridge, settings: GatewaySettings
    ) -> None:
        self.client = client
        self.hub = hub
        self.bridge = bridge
        self.settings = settings

    def reply(self, frame: ServerFrame) -> None:
        self.client.send(frame.model_dump_json())

    def error(
        self,
        code: str,
        message: str,
        *,
        client_message_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        instruments().errors.add(1, {"code": code})
        self.reply(
            ErrorFrame(
                code=code,
                message=message,
                client_message_id=client_message_id,
                retryable=retryable,
            )
        )

    async def on_text(self, raw: str) -> None:
        if len(raw.encode()) > self.settings.max_frame_bytes:
            self.error(ErrorCode.BAD_REQUEST, "frame too large")
            return
        try:
            frame = client_frame_adapter.validate_json(raw)
        except ValidationError as exc:
            self.error(ErrorCode.BAD_REQUEST, _describe(exc))
            return
        match frame:
            case JoinFrame():
                await self.join(frame.session_id, after=frame.after)
            case SendFrame():
                await self.send(frame)
            case StopFrame():
                await self.stop(frame)
            case PingFrame():
                self.reply(PongFrame())

    async def _open(self, session_id: UUID | None) -> SessionSnapshot | None:
        """The session from history; None if history does not answer."""
        user = self.client.user
        request = OpenSession(
            org_id=user.org_id,
            user_id=user.user_id,
            session_id=session_id,
            history_limit=self.settings.history_limit,
        )
        try:
            return SessionSnapshot.model_validate_json(await self.bridge.ask_history(request))
        except BackendUnavailable:
            return None

    def _history_unavailable(self) -> None:
        self.error(
            ErrorCode.UNAVAILABLE,
            "The chat history service is not answering. Try again in a moment.",
            retryable=True,
        )

    async def join(
        self,
        session_id: UUID | None,
        previous: UUID | None = None,
        after: ResumePoint | None = None,
    ) -> bool:
        client = self.client
        then: list[Outgoing] = []
        if session_id is None:
            snapshot = await self._open(None)
            if snapshot is None or snapshot.session_id is None:
                self._history_unavailable()
                return False
            if not await self._attach(snapshot.session_id):
                return False
        else:
            # Bound, and the socket's frames deferred, before history is read: nothing
            # published meanwhile is missed. What was deferred is dropped unless history
            # confirms that the session is this user's.
            if not await self._attach(session_id):
                return False
            snapshot = await self._open(session_id)
            if snapshot is None or snapshot.status != "ok":
                client.discard_deferred()
                await self.hub.detach(client)
                if snapshot is None:
                    self._history_unavailable()
                else:
                    self.error(ErrorCode.FORBIDDEN, "That session does not exist or is not yours.")
                return False
            snapshot, then = await self._catch_up(session_id, snapshot, after)
        assert snapshot.session_id is not None
        client.session_ended = snapshot.ended
        user = client.user
        frame = JoinedFrame(
            session_id=snapshot.session_id,
            user=UserInfo(id=user.user_id, org_id=user.org_id, email=user.email, name=user.name),
            messages=snapshot.messages,
            ended=snapshot.ended,
            previous_session_id=previous,
        )
        client.release(frame.model_dump_json(), *then)
        return True

    async def _attach(self, session_id: UUID) -> bool:
        try:
            await self.hub.attach(self.client, session_id)
        except BackendUnavailable:
            log.warning("could not bind a session", exc_info=True)
            self.error(
                ErrorCode.UNAVAILABLE,
                "The connection to the message broker is being restored. Try again in a moment.",
                retryable=True,
            )
            return False
        return True

    async def _catch_up(
        self, session_id: UUID, snapshot: SessionSnapshot, after: ResumePoint | None
    ) -> tuple[SessionSnapshot, list[Outgoing]]:
        """The session for `joined`, and what the client must be sent after it, before the live
        events: the missed events of every answer history shows streaming (replayed by the
        worker holding it), or a `resync` where they cannot be had."""
        answers = {m.message_id: m for m in snapshot.messages if m.role == "assistant"}
        streaming = [m.message_id for m in answers.values() if m.status == "pending"]
        then: list[Outgoing] = []
        points = dict.fromkeys(streaming, (1, 0))
        if after is not None:
            known = answers.get(after.message_id)
            if known is not None and known.status != "pending":
                # It ended meanwhile: the whole answer from history, and nothing more of it.
                self.client.floor(after.message_id, *BEYOND_EVERY_ATTEMPT)
                resync = ResyncFrame(message_id=after.message_id, reason="ended", message=known)
                then.append(Outgoing(resync.model_dump_json()))
            else:
                self.client.floor(after.message_id, after.attempt, after.seq)
                # Not in history (yet): its `routed` may not be persisted; the worker may have it.
                points[after.message_id] = (after.attempt, after.seq)
        replies = await asyncio.gather(
            *(self._replay(session_id, message_id, *point) for message_id, point in points.items())
        )
        ended: dict[UUID, HistoryMessage] = {}
        if None in replies:
            # No worker holds those: a Tier-1 answer, or one whose final event was published
            # just before the join and that history persists a moment later. Read history again:
            # what ended meanwhile is whole in `joined`.
            fresh = await self._open(session_id)
            if fresh is not None and fresh.status == "ok":
                snapshot = fresh
                ended = {
                    m.message_id: m
                    for m in fresh.messages
                    if m.role == "assistant" and m.status != "pending"
                }
        for (message_id, (attempt, seq)), reply in zip(points.items(), replies, strict=True):
            if reply is None:
                whole = ended.get(message_id)
                if whole is not None:
                    self.client.floor(message_id, *BEYOND_EVERY_ATTEMPT)
                if seq > 0:  # the client has part of it, and the rest before now is lost
                    resync = ResyncFrame(
                        message_id=message_id,
                        reason="ended" if whole is not None else "replay_unavailable",
                        message=whole,
                    )
                    then.append(Outgoing(resync.model_dump_json()))
                continue
            if reply.attempt > attempt:  # the reply starts at seq 1 of a later attempt
                retrying = RetryingFrame(
                    message_id=message_id,
                    attempt=reply.attempt,
                    message=retrying_text(reply.attempt),
                )
                then.append(Outgoing(retrying.model_dump_json(), message_id, reply.attempt, 0))
            for event in reply.events:
                frame = outgoing(event)
                if frame is not None:
                    then.append(frame)
        return snapshot, then

    async def _replay(
        self, session_id: UUID, message_id: UUID, attempt: int, after_seq: int
    ) -> ReplayReply | None:
        user = self.client.user
        reply = await self.bridge.ask_replay(
            ReplayRequest(
                session_id=session_id,
                message_id=message_id,
                org_id=user.org_id,
                user_id=user.user_id,
                attempt=attempt,
                after_seq=after_seq,
            )
        )
        if reply is not None and reply.message_id != message_id:
            log.warning("dropped a replay reply for another message")
            return None
        return reply

    async def stop(self, frame: StopFrame) -> None:
        """Ask the workers to stop an answer of the socket's session. Nothing is replied on
        success: the answer's `complete` (status `stopped`) comes as its events do."""
        session_id = self.client.session_id
        if session_id is None:
            self.error(ErrorCode.NOT_JOINED, "join a session before stopping an answer")
            return
        user = self.client.user
        request = StopRequest(
            session_id=session_id,
            message_id=frame.message_id,
            org_id=user.org_id,
            user_id=user.user_id,
            requested_at=time.time(),
        )
        try:
            await self.bridge.stop_answer(request)
        except BackendUnavailable:
            log.warning("could not publish a stop")
            self.error(
                ErrorCode.UNAVAILABLE,
                "The answer could not be stopped: the message broker is not reachable. Try again.",
                retryable=True,
            )
            return
        log.info("stop requested", extra={"session_id": str(session_id)})

    async def send(self, frame: SendFrame) -> None:
        wait = self.hub.bucket(self.client.user.user_id, self.settings.messages_per_minute).take()
        if wait:
            self.reply(
                ErrorFrame(
                    code=ErrorCode.RATE_LIMITED,
                    message=f"You are sending messages too fast. Try again in {wait:g} s.",
                    client_message_id=frame.client_message_id,
                    retryable=True,
                    retry_after=wait,
                )
            )
            return
        text = frame.text.strip()
        if not text:
            self.error(
                ErrorCode.BAD_REQUEST,
                "message text is empty",
                client_message_id=frame.client_message_id,
            )
            return
        if len(text) > self.settings.max_message_chars:
            self.error(
                ErrorCode.BAD_REQUEST,
                f"message text is longer than {self.settings.max_message_chars} characters",
                client_message_id=frame.client_message_id,
            )
            return
        if self.client.session_id is None:
            self.error(
                ErrorCode.NOT_JOINED,
                "join a session before sending",
                client_message_id=frame.client_message_id,
            )
            return
        # A timed-out session: this message starts a new one, and the client is told.
        if self.client.session_ended and not await self.join(None, previous=self.client.session_id):
            return
        session_id = self.client.session_id
        assert session_id is not None
        message = UserMessage(
            session_id=session_id,
            correlation_id=uuid4(),
            message_id=uuid4(),
            reply_message_id=uuid4(),
            client_message_id=frame.client_message_id,
            user=self.client.user,
            text=text,
            received_at=time.time(),
        )
        ids = chat_attributes(
            correlation_id=message.correlation_id,
            session_id=session_id,
            message_id=message.message_id,
            reply_message_id=message.reply_message_id,
            org_id=message.user.org_id,
        )
        with bind_correlation_id(message.correlation_id), question_span("chat.receive", ids):
            try:
                await self.bridge.publish_user_message(message)
            except BackendUnavailable:
                log.warning("could not publish a user message")
                self.error(
                    ErrorCode.UNAVAILABLE,
                    "Your message could not be delivered. It was not sent; try again.",
                    client_message_id=frame.client_message_id,
                    retryable=True,
                )
                return
            log.info("user message accepted", extra={"session_id": str(session_id)})
        self.reply(
            AcceptedFrame(
                client_message_id=frame.client_message_id,
                message_id=message.message_id,
                reply_message_id=message.reply_message_id,
                correlation_id=message.correlation_id,
                session_id=session_id,
            )
        )
