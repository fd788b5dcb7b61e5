"""Hop times of an answer (stamped as events are published) and the timeline built from them."""

from __future__ import annotations

from uuid import uuid4

import pytest

from chat_contracts.events import CompleteEvent, TokenEvent, ToolCallEvent
from chat_runtime.telemetry import otlp_metrics_wanted, traces_wanted
from chat_runtime.timeline import build_timeline, handling, mark_model_called, stamp
from chat_runtime.tracing import _span_destination


def _ids() -> dict[str, object]:
    return {"session_id": uuid4(), "correlation_id": uuid4(), "message_id": uuid4()}


def test_publishing_stamps_each_event_and_the_last_one_carries_the_turns_hops() -> None:
    ids = _ids()
    with handling(queued_at=100.0) as current:
        mark_model_called()
        first = stamp(TokenEvent(seq=1, text="a", **ids))  # type: ignore[arg-type]
        second = stamp(TokenEvent(seq=2, text="b", **ids))  # type: ignore[arg-type]
        last = stamp(
            CompleteEvent(seq=3, text="ab", org_id=uuid4(), user_id=uuid4(), **ids)  # type: ignore[arg-type]
        )
    assert first.emitted_at is not None and second.emitted_at is not None
    assert first.emitted_at <= second.emitted_at
    assert isinstance(last, CompleteEvent) and last.hops is not None
    assert last.hops.queued_at == 100.0
    assert last.hops.started_at == current.started_at
    assert last.hops.model_called_at is not None
    assert current.started_at <= last.hops.model_called_at <= first.emitted_at
    # The first output is the first event, not a later one.
    assert last.hops.first_output_at == first.emitted_at
    assert last.emitted_at is not None and last.emitted_at >= second.emitted_at


def test_outside_a_work_item_events_get_an_emit_time_and_no_hops() -> None:
    event = stamp(
        ToolCallEvent(
            seq=1, org_id=uuid4(), user_id=uuid4(), call_id=uuid4(), tool="t", input={}, **_ids()
        )  # type: ignore[arg-type]
    )
    assert event.emitted_at is not None


def test_the_segments_follow_the_path_and_add_up_to_the_total() -> None:
    timeline = build_timeline(
        message_id=uuid4(),
        correlation_id=uuid4(),
        status="complete",
        tier=2,
        trace_id="ab" * 16,
        times={
            "received": 10.000,
            "routed": 10.002,
            "queued": 10.003,
            "started": 10.010,
            "model_called": 10.015,
            "first_output": 10.415,
            "first_output_delivered": 10.417,
            "completed": 11.000,
            "persisted": 11.004,
        },
    )
    assert [h.name for h in timeline.hops] == [
        "received",
        "routed",
        "queued",
        "started",
        "model_called",
        "first_output",
        "first_output_delivered",
        "completed",
        "persisted",
    ]
    assert [s.name for s in timeline.segments] == [
        "routing",
        "dispatch",
        "queue_wait",
        "preparation",
        "time_to_first_output",
        "generation",
        "persistence",
    ]
    assert sum(s.ms for s in timeline.segments) == pytest.approx(1004, abs=0.01)
    summary = timeline.summary
    assert summary.total_ms == pytest.approx(1004, abs=0.01)
    assert summary.queue_wait_ms == pytest.approx(7, abs=0.01)
    assert summary.time_to_first_token_ms == pytest.approx(400, abs=0.01)
    assert summary.delivery_lag_ms == pytest.approx(2, abs=0.01)
    assert summary.first_output_seen_ms == pytest.approx(417, abs=0.01)
    assert timeline.hops[-1].offset_ms == pytest.approx(1004, abs=0.01)


def test_a_hop_not_reached_is_left_out_and_its_segment_spans_from_the_hop_before() -> None:
    # A Tier-1 answer asks no model; this one is not persisted yet and nobody saw it.
    timeline = build_timeline(
        message_id=uuid4(),
        correlation_id=uuid4(),
        status="pending",
        tier=1,
        trace_id=None,
        times={
            "received": 1.0,
            "routed": 1.001,
            "queued": 1.002,
            "started": 1.004,
            "first_output": 1.005,
            "completed": 1.006,
        },
    )
    assert [h.name for h in timeline.hops] == [
        "received",
        "routed",
        "queued",
        "started",
        "first_output",
        "completed",
    ]
    assert [(s.start, s.end) for s in timeline.segments][-2:] == [
        ("started", "first_output"),
        ("first_output", "completed"),
    ]
    assert timeline.summary.time_to_first_token_ms is None
    assert timeline.summary.delivery_lag_ms is None
    assert timeline.summary.total_ms == pytest.approx(6, abs=0.01)


def test_tracing_is_on_only_with_an_otlp_endpoint() -> None:
    assert not traces_wanted({})
    assert traces_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert traces_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert not traces_wanted({**endpoint, "OTEL_SDK_DISABLED": "true"})
    assert not traces_wanted({**endpoint, "OTEL_TRACES_EXPORTER": "none"})
    assert otlp_metrics_wanted(endpoint) and not otlp_metrics_wanted({})
    assert not otlp_metrics_wanted({**endpoint, "OTEL_METRICS_EXPORTER": "none"})


def test_span_names_do_not_grow_with_sessions_or_reply_queues() -> None:
    session = uuid4()
    assert (
        _span_destination(f"chat.events.session.{session}.token") == "chat.events.session.*.token"
    )
    assert (
        _span_destination("default.amq.rabbitmq.reply-to.g1h2AA1yZXBs.oYdkqh8Q==")
        == "default.amq.rabbitmq.reply-to"
    )


def test_a_token_the_worker_stamped_itself_is_published_as_it_is() -> None:
    token = TokenEvent(seq=2, text="a", emitted_at=5.0, **_ids())  # type: ignore[arg-type]
    with handling(queued_at=1.0):
        assert stamp(token) is token
    first = TokenEvent(seq=1, text="a", emitted_at=4.0, **_ids())  # type: ignore[arg-type]
    with handling(queued_at=1.0) as current:
        assert stamp(first).emitted_at == 4.0
    assert current.first_output_at == 4.0
