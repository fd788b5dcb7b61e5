"""The gateway's inbound path without a broker: what arrives on the replica's queue reaches the
sockets of its session as frames (bridge → delivery → frames → hub)."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

from chat_contracts.codes import CloseCode
from chat_contracts.control import UserSignedOut
from chat_contracts.events import DeliveredEvent, TokenEvent
from chat_contracts.topology import session_key
from chat_gateway.delivery import EventDelivery
from chat_gateway.hub import SessionHub
from chat_gateway.telemetry import Deliveries
from tests.support.sockets import RecordingSocket, client_on, settle


class Reports:
    def __init__(self) -> None:
        self.published: list[DeliveredEvent] = []

    async def __call__(self, event: DeliveredEvent) -> None:
        self.published.append(event)


async def _bound(session_id: UUID) -> None:
    return None


async def _joined_hub(session_id: UUID) -> tuple[SessionHub, RecordingSocket]:
    hub = SessionHub(_bound, _bound)
    socket = RecordingSocket()
    client = client_on(socket)
    hub.connect(client)
    await hub.attach(client, session_id)
    client.release("joined")
    return hub, socket


async def test_a_token_of_a_followed_session_reaches_its_socket_as_a_frame() -> None:
    session_id = uuid4()
    hub, socket = await _joined_hub(session_id)
    reports = Reports()
    delivery = EventDelivery(hub, Deliveries(reports, org_of=hub.org_of))
    token = TokenEvent(
        session_id=session_id, correlation_id=uuid4(), message_id=uuid4(), seq=1, text="hi"
    )
    delivery.event(session_key(session_id, "token"), token.model_dump_json().encode())
    await settle()
    assert socket.sent[0] == "joined"
    frames = [json.loads(sent) for sent in socket.sent[1:]]
    assert frames == [
        {
            "type": "token",
            "message_id": str(token.message_id),
            "seq": 1,
            "attempt": 1,
            "text": "hi",
            "deltas": 1,
            "emitted_at": None,
        }
    ]
    # The answer's first event is reported for its timeline.
    assert [(r.message_id, r.seq) for r in reports.published] == [(token.message_id, 1)]


async def test_what_no_socket_follows_and_what_matches_no_contract_is_dropped() -> None:
    session_id = uuid4()
    hub, socket = await _joined_hub(session_id)
    delivery = EventDelivery(hub, Deliveries(Reports(), org_of=hub.org_of))
    delivery.event(session_key(uuid4(), "token"), b"not even json")  # not followed: not parsed
    delivery.event(session_key(session_id, "token"), b'{"type": "token"}')  # no contract
    delivery.event("not.a-uuid.token", b"{}")
    await settle()
    assert socket.sent == ["joined"]


async def test_a_sign_out_closes_the_users_sockets_and_a_lost_link_closes_them_all() -> None:
    session_id = uuid4()
    hub, socket = await _joined_hub(session_id)
    delivery = EventDelivery(hub, Deliveries(Reports(), org_of=hub.org_of))
    (client,) = hub.all_clients()
    delivery.control(UserSignedOut(user_id=uuid4(), reason="logout").model_dump_json().encode())
    await settle()
    assert ("close", CloseCode.SIGNED_OUT, "logout") not in socket.sent  # someone else
    delivery.control(
        UserSignedOut(user_id=client.user.user_id, reason="logout").model_dump_json().encode()
    )
    await settle()
    assert ("close", CloseCode.SIGNED_OUT, "logout") in socket.sent
    other = RecordingSocket()
    hub.connect(client_on(other))
    delivery.connection_lost()
    await settle()
    assert ("close", CloseCode.SERVICE_RESTART, "reconnect") in other.sent
