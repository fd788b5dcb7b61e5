from uuid import uuid4

import pytest
from pydantic import ValidationError

from chat_contracts.base import UserRef
from chat_contracts.events import CompleteEvent, TokenEvent, UserMessage, session_event_adapter
from chat_contracts.protocol import SendFrame, client_frame_adapter
from chat_contracts.topology import (
    Topology,
    event_binding,
    session_binding,
    session_id_from_key,
    session_key,
)


def _user() -> UserRef:
    return UserRef(user_id=uuid4(), org_id=uuid4(), email="a@example.com", name="A")


def test_events_round_trip_through_the_discriminated_union() -> None:
    user = _user()
    message = UserMessage(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        reply_message_id=uuid4(),
        client_message_id="c",
        user=user,
        text="hi",
        received_at=1.0,
    )
    token = TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=1, text="x"
    )
    for event in (message, token):
        parsed = session_event_adapter.validate_json(event.model_dump_json())
        assert parsed == event and type(parsed) is type(event)


def test_stream_events_count_from_one() -> None:
    with pytest.raises(ValidationError):
        TokenEvent(session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=0, text="")


def test_contracts_carry_their_version() -> None:
    event = CompleteEvent(
        session_id=uuid4(),
        correlation_id=uuid4(),
        message_id=uuid4(),
        seq=1,
        org_id=uuid4(),
        user_id=uuid4(),
        text="",
    )
    assert event.model_dump()["v"] == 1


def test_client_frames_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        client_frame_adapter.validate_json('{"type": "join", "org_id": "x"}')
    frame = client_frame_adapter.validate_json(
        '{"type": "send", "text": "hi", "client_message_id": "1"}'
    )
    assert isinstance(frame, SendFrame)


def test_routing_keys_of_a_session() -> None:
    session_id = uuid4()
    key = session_key(session_id, "token")
    assert key == f"session.{session_id}.token"
    assert session_id_from_key(key) == str(session_id)
    assert session_binding(session_id) == f"session.{session_id}.*"
    assert event_binding("complete") == "session.*.complete"


def test_topology_names_live_under_the_prefix() -> None:
    topology = Topology("abc")
    names = [
        topology.events.name,
        topology.work.name,
        topology.orchestrator_inbox.name,
        topology.llm_requests.name,
        topology.tool_requests.name,
        topology.history_events.name,
        topology.history_rpc.name,
        topology.gateway_queue("r1").name,
    ]
    assert all(name.startswith("abc.") for name in names)
    assert len(set(names)) == len(names)
    assert topology.llm_requests.arguments is not None
    assert topology.llm_requests.arguments["x-queue-type"] == "quorum"
