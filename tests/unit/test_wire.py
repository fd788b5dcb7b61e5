"""The wire defined once: where each message is routed, what each service may publish, and the
topology's flows agreeing with the queues' bindings."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import get_args
from uuid import uuid4

import pytest

from chat_contracts.control import ReplayRequest, StopRequest, UserSignedOut
from chat_contracts.events import (
    LIVE_EVENTS,
    PERSISTED_EVENTS,
    AnySessionEvent,
    CompleteEvent,
    TokenEvent,
    event_type,
)
from chat_contracts.history import HoldPrice, StartAnswer
from chat_contracts.topology import LLM_REQUEST_KEY, Topology, session_key
from chat_devtools.questions import a_user, an_llm_request
from chat_runtime.wire import PERSISTENT, TRANSIENT, UndeclaredPublish, Wire

TOPOLOGY = Topology("t")


def _token() -> TokenEvent:
    return TokenEvent(
        session_id=uuid4(), correlation_id=uuid4(), message_id=uuid4(), seq=1, text="a"
    )


def test_a_token_goes_transient_on_its_sessions_key_with_its_correlation_id() -> None:
    token = _token()
    envelope = Wire(TOPOLOGY, "llm-worker").encode(token)
    assert (envelope.exchange, envelope.routing_key) == (
        TOPOLOGY.events.name,
        session_key(token.session_id, "token"),
    )
    assert envelope.delivery_mode == TRANSIENT
    assert envelope.correlation_id == str(token.correlation_id)
    assert TokenEvent.model_validate_json(envelope.body) == token


def test_work_control_and_questions_have_their_own_routes() -> None:
    user = a_user()
    request = an_llm_request(user=user)
    work = Wire(TOPOLOGY, "orchestrator").encode(request)
    assert (work.exchange, work.routing_key, work.delivery_mode) == (
        TOPOLOGY.work.name,
        LLM_REQUEST_KEY,
        PERSISTENT,
    )
    gateway = Wire(TOPOLOGY, "gateway")
    stop = gateway.encode(
        StopRequest(
            session_id=uuid4(),
            message_id=uuid4(),
            org_id=user.org_id,
            user_id=user.user_id,
            requested_at=time.time(),
        )
    )
    assert (stop.exchange, stop.delivery_mode) == (TOPOLOGY.llm_control.name, TRANSIENT)
    signed_out = gateway.encode(UserSignedOut(user_id=user.user_id, reason="logout"))
    assert signed_out.exchange == TOPOLOGY.control.name
    question = Wire(TOPOLOGY, "llm-worker").encode(
        StartAnswer(
            org_id=user.org_id,
            user_id=user.user_id,
            session_id=uuid4(),
            message_id=uuid4(),
            exclude_message_id=uuid4(),
            hold=HoldPrice(
                input_per_mtok=Decimal(1), output_per_mtok=Decimal(1), prompt_chars=1, max_tokens=1
            ),
        )
    )
    assert (question.exchange, question.routing_key) == ("", TOPOLOGY.history_rpc.name)


def test_a_service_cannot_publish_what_its_flows_do_not_give_it() -> None:
    with pytest.raises(UndeclaredPublish, match="gateway does not publish TokenEvent"):
        Wire(TOPOLOGY, "gateway").encode(_token())
    with pytest.raises(UndeclaredPublish):
        Wire(TOPOLOGY, "tools").encode(
            ReplayRequest(session_id=uuid4(), message_id=uuid4(), org_id=uuid4(), user_id=uuid4())
        )


def test_every_session_event_is_persisted_or_live_and_history_binds_the_persisted_alone() -> None:
    kinds = {event_type(model) for model in get_args(get_args(AnySessionEvent)[0])}
    assert set(PERSISTED_EVENTS) | set(LIVE_EVENTS) == kinds
    assert not set(PERSISTED_EVENTS) & set(LIVE_EVENTS)
    assert "token" in LIVE_EVENTS and "complete" in PERSISTED_EVENTS
    bound = {binding.key.rsplit(".", 1)[1] for binding in TOPOLOGY.history_events.bindings}
    assert bound == set(PERSISTED_EVENTS)


def test_the_flows_say_who_receives_each_event() -> None:
    receivers = {flow.message: {queue.name for queue in flow.queues} for flow in TOPOLOGY.flows()}
    gateway_queue = TOPOLOGY.gateway_queue("{replica_id}").name
    assert receivers[TokenEvent] == {gateway_queue}  # never history: no tokens in the database
    assert receivers[CompleteEvent] == {gateway_queue, TOPOLOGY.history_events.name}
    assert TOPOLOGY.orchestrator_inbox.name in next(
        {q.name for q in flow.queues}
        for flow in TOPOLOGY.flows()
        if flow.routing_key.endswith(".user_message")
    )
    for flow in TOPOLOGY.flows():
        assert flow.publishers, flow.message
        assert flow.queues, f"{flow.message.__name__} reaches no queue"
