"""What arrives on this replica's queue, handed on: an event to the sockets of its session (as
its frame), a sign-out to that user's sockets, a lost connection to every socket.

The inbound path reads one way: `bridge` (the broker) → `delivery` (here) → `frames` (the
event as the browser protocol's frame) → `hub` (the sockets). Each first event of an answer that
reaches a socket is reported for the message's timeline (`chat_gateway.telemetry.Deliveries`).
"""

from __future__ import annotations

import logging
from uuid import UUID

from pydantic import ValidationError

from chat_contracts.codes import CloseCode
from chat_contracts.control import UserSignedOut
from chat_contracts.events import SessionEndedEvent, StreamEvent, session_event_adapter
from chat_contracts.topology import session_id_from_key
from chat_gateway.frames import outgoing
from chat_gateway.hub import SessionHub
from chat_gateway.telemetry import Deliveries

log = logging.getLogger("chat_gateway.delivery")


class EventDelivery:
    def __init__(self, hub: SessionHub, deliveries: Deliveries) -> None:
        self._hub = hub
        self._deliveries = deliveries

    def event(self, routing_key: str, body: bytes) -> None:
        hub = self._hub
        try:
            session_id = UUID(session_id_from_key(routing_key))
            if not hub.clients(session_id):
                return
            event = session_event_adapter.validate_json(body)
            frame = outgoing(event)
        except (ValueError, ValidationError):
            log.warning("dropped an event that does not match its contract")
            return
        if frame is None:
            return
        # Each socket drops an answer's event it was already sent (see hub.Client).
        hub.deliver(session_id, frame, ends_session=isinstance(event, SessionEndedEvent))
        if isinstance(event, StreamEvent):
            self._deliveries.delivered(event)

    def control(self, body: bytes) -> None:
        try:
            signed_out = UserSignedOut.model_validate_json(body)
        except ValidationError:
            log.warning("dropped a control message that does not match its contract")
            return
        closed = self._hub.close_user(signed_out.user_id, CloseCode.SIGNED_OUT, signed_out.reason)
        if closed:
            log.info("closed the sockets of a signed-out user", extra={"sockets": closed})

    def connection_lost(self) -> None:
        # The replica's queue misses what is published meanwhile. The clients rejoin (here or
        # elsewhere) with `after`, and the workers replay it.
        closed = self._hub.close_all(CloseCode.SERVICE_RESTART, "reconnect")
        if closed:
            log.warning(
                "closed every socket: the broker connection was lost", extra={"sockets": closed}
            )
