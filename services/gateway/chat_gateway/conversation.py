"""One socket's conversation: the frames a client sends, and what each of them does."""

from __future__ import annotations

import logging
import time
from uuid import UUID, uuid4

from pydantic import ValidationError

from chat_gateway.bridge import BackendUnavailable, BrokerBridge
from chat_gateway.hub import Client, SessionHub
from chat_gateway.settings import GatewaySettings
from chat_shared.contracts import OpenSession, SessionSnapshot, UserMessage
from chat_shared.logs import bind_correlation_id
from chat_shared.protocol import (
    AcceptedFrame,
    ErrorCode,
    ErrorFrame,
    JoinedFrame,
    JoinFrame,
    PingFrame,
    PongFrame,
    SendFrame,
    ServerFrame,
    UserInfo,
    client_frame_adapter,
)
from chat_shared.telemetry import instruments
from chat_shared.tracing import chat_attributes, turn_span

log = logging.getLogger("chat_gateway.conversation")


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
                await self.join(frame.session_id)
            case SendFrame():
                await self.send(frame)
            case PingFrame():
                self.reply(PongFrame())

    async def _open(self, session_id: UUID | None) -> SessionSnapshot | None:
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
            self.error(
                ErrorCode.UNAVAILABLE,
                "The chat history service is not answering. Try again in a moment.",
                retryable=True,
            )
            return None

    async def join(self, session_id: UUID | None, previous: UUID | None = None) -> bool:
        client = self.client
        if session_id is None:
            snapshot = await self._open(None)
            if snapshot is None or snapshot.session_id is None:
                return False
            client.hold()
            await self.hub.attach(client, snapshot.session_id)
        else:
            # Bound before history is read, so nothing published meanwhile is missed; but the
            # socket is attached only once history has confirmed the session is this user's.
            async with self.hub.holding(session_id):
                snapshot = await self._open(session_id)
                if snapshot is None:
                    return False
                if snapshot.status != "ok":
                    self.error(ErrorCode.FORBIDDEN, "That session does not exist or is not yours.")
                    return False
                client.hold()
                await self.hub.attach(client, session_id)
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
        client.release(frame.model_dump_json())
        return True

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
        with bind_correlation_id(message.correlation_id), turn_span("chat.receive", ids):
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
