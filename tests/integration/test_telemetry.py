"""Telemetry end to end: five services as processes exporting to a local OTLP receiver.

One Tier-1 and one Tier-2 message are sent once for the module; the tests then read what was
exported (spans), logged (the services' log files), recorded (the timeline) and scraped
(/metrics).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient, Frame
from chat_devtools.otlp import ExportedSpan, OtlpReceiver, running_otlp_receiver
from chat_devtools.seed import create_user, token_for
from chat_devtools.stack import Stack, StackFactory
from chat_llm_worker.providers import split_deltas
from tests.support.db import wait_for_rows

# Letters that no id, hex string or log word contains: any trace of them is a leak.
SECRET = "ZQXJ VKWPY QZXJV KQWXZ QQZJXV KZQJX WQVKZ JQXWV ZKQJW XVQZK JWQXV"
TIER_2_TEXT = f"echo: {SECRET}"
TIER_1_TEXT = "who am I?"
USER_NAME = "Zebulon Quaxworthy"

TIER_1_SERVICES = {"gateway", "orchestrator", "tools", "history"}
TIER_2_SERVICES = {"gateway", "orchestrator", "llm-worker", "history"}
CHAT_IDS = (
    "chat.correlation_id",
    "chat.session_id",
    "chat.message_id",
    "chat.reply_message_id",
    "chat.org_id",
)


@dataclass
class Question:
    """One message as the client saw it."""

    text: str
    sent_at: float
    accepted: Frame
    frames: list[Frame]
    first_frame_at: float
    last_frame_at: float

    @property
    def correlation_id(self) -> str:
        return str(self.accepted["correlation_id"])

    @property
    def reply_id(self) -> str:
        return str(self.accepted["reply_message_id"])


@dataclass
class Scene:
    stack: Stack
    receiver: OtlpReceiver
    user: UserRef
    client: ChatClient
    tier1: Question
    tier2: Question


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory, receiver: OtlpReceiver) -> Stack:
    return stack_factory(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
    )


async def _ask(client: ChatClient, text: str) -> Question:
    sent_at = time.time()
    accepted = await client.send(text)
    assert accepted["type"] == "accepted", accepted
    frames: list[Frame] = []
    first_frame_at = 0.0
    while True:
        frame = await client.recv(20)
        if frame.get("message_id") != accepted["reply_message_id"]:
            continue
        if not frames:
            first_frame_at = time.time()
        frames.append(frame)
        if frame["type"] in ("complete", "error"):
            return Question(text, sent_at, accepted, frames, first_frame_at, time.time())


@pytest.fixture(scope="module")
async def scene(stack: Stack, receiver: OtlpReceiver, database_url: str) -> AsyncIterator[Scene]:
    user = await create_user(database_url, name=USER_NAME)
    client = await ChatClient.connect(stack.ws_url, token_for(user))
    await client.join()
    tier1 = await _ask(client, TIER_1_TEXT)
    tier2 = await _ask(client, TIER_2_TEXT)
    assert tier1.frames[-1]["type"] == "complete" and tier2.frames[-1]["type"] == "complete"
    assert tier2.frames[-1]["text"] == SECRET
    # Both answers persisted, so every hop has been reached.
    await wait_for_rows(
        database_url,
        "SELECT 1 FROM chat.message_timings WHERE message_id IN (:a, :b) "
        "AND persisted_at IS NOT NULL AND first_output_delivered_at IS NOT NULL",
        count=2,
        a=tier1.reply_id,
        b=tier2.reply_id,
    )
    yield Scene(stack, receiver, user, client, tier1, tier2)
    await client.close()


def _spans_of(spans: list[ExportedSpan], correlation_id: str) -> list[ExportedSpan]:
    return [s for s in spans if s.attributes.get("chat.correlation_id") == correlation_id]


def _wait_for_trace(
    receiver: OtlpReceiver, question: Question, services: set[str]
) -> list[ExportedSpan]:
    """Every span of the question's trace, once all the services on its path have exported."""

    def complete(spans: list[ExportedSpan]) -> bool:
        mine = _spans_of(spans, question.correlation_id)
        names = {s.name for s in mine}
        return services <= {s.service for s in mine} and "chat.deliver complete" in names

    receiver.wait_for(complete)
    time.sleep(0.5)  # stragglers of the last batch
    mine = _spans_of(receiver.snapshot(), question.correlation_id)
    trace_ids = {s.trace_id for s in mine}
    assert len(trace_ids) == 1, f"{len(trace_ids)} traces for one message"
    return [s for s in receiver.snapshot() if s.trace_id in trace_ids]


@pytest.mark.parametrize(("tier", "services"), [(1, TIER_1_SERVICES), (2, TIER_2_SERVICES)])
def test_one_message_is_one_trace_through_every_service_on_its_path(
    scene: Scene, tier: int, services: set[str]
) -> None:
    question = scene.tier1 if tier == 1 else scene.tier2
    trace = _wait_for_trace(scene.receiver, question, services)

    assert {s.service for s in trace} == services
    expected_ids = {
        "chat.correlation_id": question.correlation_id,
        "chat.session_id": str(question.accepted["session_id"]),
        "chat.message_id": str(question.accepted["message_id"]),
        "chat.reply_message_id": question.reply_id,
        "chat.org_id": str(scene.user.org_id),
    }
    for span in trace:
        carried = {key: span.attributes.get(key) for key in CHAT_IDS}
        assert carried == expected_ids, f"{span.service} {span.name}"
    roots = [s for s in trace if not s.parent_span_id]
    assert [(r.service, r.name) for r in roots] == [("gateway", "chat.receive")]
    # Parents are in the trace: it is one tree, not several fragments sharing an id.
    span_ids = {s.span_id for s in trace}
    assert all(s.parent_span_id in span_ids for s in trace if s.parent_span_id)

    names = [(s.service, s.name) for s in trace]
    assert ("orchestrator", "chat.route") in names
    assert ("gateway", "chat.deliver complete") in names
    if tier == 1:
        assert ("tools", "chat.tool.call") in names
        assert ("gateway", "chat.deliver tool_call") in names
    else:
        (llm,) = [s for s in trace if s.name == "chat.llm.stream"]
        assert [name for name, _ in llm.events] == ["first_token"]
        # No span per token: only the first token's publish and delivery are traced.
        # Many tokens (deltas: a token frame may join several), one traced.
        token_count = sum(f["deltas"] for f in question.frames if f["type"] == "token")
        assert token_count > 10
        token_spans = [s for s in trace if ".token" in s.name or s.name.endswith(" token")]
        assert len([s for s in token_spans if s.service == "gateway"]) == 1
        assert len([s for s in token_spans if s.service == "llm-worker"]) <= 2


def _leaks(question_texts: list[str], scene: Scene) -> list[str]:
    """Every string that must appear in no span and no log line."""
    leaks = [*question_texts, SECRET, scene.user.email, USER_NAME]
    leaks += [word for word in SECRET.split()]
    leaks += [d.strip() for d in split_deltas(SECRET) if len(d.strip()) >= 3]
    return leaks


def test_no_span_and_no_log_line_holds_message_text_tokens_or_personal_data(
    scene: Scene,
) -> None:
    _wait_for_trace(scene.receiver, scene.tier2, TIER_2_SERVICES)
    _wait_for_trace(scene.receiver, scene.tier1, TIER_1_SERVICES)
    leaks = _leaks([TIER_1_TEXT, TIER_2_TEXT], scene)
    # Tier 1 is "who am I": harmless words, but its answer carries the user's name and email.
    spans = scene.receiver.snapshot()
    assert len(spans) > 20
    for span in spans:
        for value in span.strings():
            found = [leak for leak in leaks if leak in value]
            assert not found, f"{span.service} span {span.name!r} holds {found}: {value!r}"
    lines = scene.stack.all_logs().splitlines()
    assert len(lines) > 20
    for line in lines:
        found = [leak for leak in leaks if leak in line]
        assert not found, f"log line holds {found}: {line}"


def _log_entries(stack: Stack, service: str) -> list[dict[str, Any]]:
    entries = []
    for line in stack.logs(service).splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def test_log_lines_of_a_question_carry_its_trace_and_there_is_one_per_question_not_per_token(
    scene: Scene,
) -> None:
    trace = _wait_for_trace(scene.receiver, scene.tier2, TIER_2_SERVICES)
    trace_id = trace[0].trace_id
    for service in ("gateway", "orchestrator", "llm-worker"):
        mine = [
            e
            for e in _log_entries(scene.stack, service)
            if e.get("correlation_id") == scene.tier2.correlation_id
        ]
        assert len(mine) == 1, (service, mine)
        assert mine[0]["level"] == "info"
        assert mine[0]["trace_id"] == trace_id
        assert re.fullmatch(r"[0-9a-f]{16}", mine[0]["span_id"])


async def _timeline(scene: Scene, message_id: str, token: str | None = None) -> httpx.Response:
    token = token if token is not None else token_for(scene.user)
    async with httpx.AsyncClient(base_url=scene.stack.gateway_url) as http:
        return await http.get(
            f"/api/messages/{message_id}/timeline",
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )


@pytest.mark.parametrize("tier", [1, 2])
async def test_the_timeline_of_a_completed_message_has_every_hop_in_order_and_adds_up(
    scene: Scene, tier: int, database_url: str
) -> None:
    question = scene.tier1 if tier == 1 else scene.tier2
    response = await _timeline(scene, question.reply_id)
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert timeline["status"] == "complete" and timeline["tier"] == tier
    assert timeline["correlation_id"] == question.correlation_id

    hops = {hop["name"]: hop["at"] for hop in timeline["hops"]}
    chain = ["received", "routed", "queued", "started"]
    chain += ["model_called"] if tier == 2 else []
    chain += ["first_output", "completed", "persisted"]
    assert [h["name"] for h in timeline["hops"]] == [
        *chain[: chain.index("first_output") + 1],
        "first_output_delivered",
        "completed",
        "persisted",
    ]
    # In order along the path, and within what the client itself saw (one clock here).
    times = [hops[name] for name in chain]
    assert times == sorted(times)
    assert question.sent_at <= hops["received"]
    assert hops["first_output"] <= hops["first_output_delivered"] <= question.first_frame_at
    assert hops["completed"] <= question.last_frame_at

    # The segments are the consecutive hops of the path and add up to the total.
    segments = timeline["segments"]
    assert [(s["start"], s["end"]) for s in segments] == list(itertools.pairwise(chain))
    assert all(s["ms"] >= 0 for s in segments)
    summary = timeline["summary"]
    assert sum(s["ms"] for s in segments) == pytest.approx(summary["total_ms"], abs=0.01)
    assert summary["total_ms"] == pytest.approx(
        (hops["persisted"] - hops["received"]) * 1000, abs=0.01
    )
    assert summary["queue_wait_ms"] == pytest.approx(
        (hops["started"] - hops["queued"]) * 1000, abs=0.01
    )
    assert summary["delivery_lag_ms"] == pytest.approx(
        (hops["first_output_delivered"] - hops["first_output"]) * 1000, abs=0.01
    )
    if tier == 2:
        # The scripted model waits SCRIPTED_TTFT_MS=50 before its first token.
        assert summary["time_to_first_token_ms"] >= 49
        rows = await wait_for_rows(
            database_url,
            "SELECT ttft_ms FROM chat.llm_calls WHERE correlation_id = :c",
            c=question.correlation_id,
        )
        assert summary["time_to_first_token_ms"] == pytest.approx(rows[0]["ttft_ms"], abs=20)
    else:
        assert summary["time_to_first_token_ms"] is None

    trace = _wait_for_trace(
        scene.receiver, question, TIER_1_SERVICES if tier == 1 else TIER_2_SERVICES
    )
    assert timeline["trace_id"] == trace[0].trace_id


async def test_a_timeline_is_served_only_to_the_messages_owner(
    scene: Scene, database_url: str
) -> None:
    colleague = await create_user(database_url)
    refused = await _timeline(scene, scene.tier2.reply_id, token_for(colleague))
    assert refused.status_code == 404
    assert "not one of your answers" in refused.json()["detail"]
    assert (await _timeline(scene, scene.tier2.reply_id, token="")).status_code == 401
    # The user's own question has no timeline: only answers do.
    own_question = await _timeline(scene, str(scene.tier2.accepted["message_id"]))
    assert own_question.status_code == 404
    assert (await _timeline(scene, "not-a-uuid")).status_code == 422


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        sample = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(sample.get(key) == want for key, want in labels.items()):
            total, found = total + float(value), True
    assert found, f"no sample of {name} {labels}"
    return total


async def test_each_service_serves_its_metrics_as_prometheus_text(
    scene: Scene, database_url: str
) -> None:
    stack = scene.stack
    broke = await create_user(database_url, budget_usd=0)  # type: ignore[arg-type]
    broke_client = await ChatClient.connect(stack.ws_url, token_for(broke))
    try:
        await broke_client.join()
        _, frames = await broke_client.ask("summarise what Finnest does")
        assert frames[-1]["code"] == "budget_exceeded"
        await broke_client.raw("not json")
        await broke_client.recv_type("error")
    finally:
        await broke_client.close()
    await asyncio.sleep(0.2)

    async with httpx.AsyncClient() as http:
        texts = {
            name: (await http.get(f"http://127.0.0.1:{stack.ports[name]}/metrics")).text
            for name in ("gateway", "orchestrator", "llm-worker", "tools", "history")
        }
    org = str(scene.user.org_id)
    # Output tokens are the model's deltas; a token frame may join several.
    tokens = sum(f["deltas"] for f in scene.tier2.frames if f["type"] == "token")

    # Every service froze its startup heap out of the garbage collector's sight.
    for name, text in texts.items():
        assert _metric(text, "chat_process_gc_frozen_objects") > 10_000, name
    assert _metric(texts["orchestrator"], "chat_messages_total", tier="1") >= 1
    assert _metric(texts["orchestrator"], "chat_messages_total", tier="2") >= 2
    worker = texts["llm-worker"]
    assert _metric(worker, "chat_llm_tokens_total", org_id=org, direction="output") == tokens
    assert _metric(worker, "chat_llm_tokens_total", org_id=org, direction="input") > 0
    assert _metric(worker, "chat_llm_cost_usd_total", org_id=org) == 0  # the scripted model
    assert _metric(worker, "chat_llm_time_to_first_token_seconds_count") >= 1
    assert _metric(worker, "chat_errors_total", code="budget_exceeded") >= 1
    assert _metric(worker, "chat_broker_publish_duration_seconds_count", kind="complete") >= 1
    # Tokens are not timed one by one.
    assert 'kind="token"' not in worker
    tools = texts["tools"]
    assert _metric(tools, "chat_tool_duration_seconds_count", tool="who_am_i", outcome="ok") >= 1
    gateway = texts["gateway"]
    assert _metric(gateway, "chat_gateway_open_sockets") >= 1  # the scene's client
    # Sampled: every event but tokens, and tokens 1, 17, 33, ... of each answer.
    assert _metric(gateway, "chat_gateway_delivery_lag_seconds_count") >= 1 + tokens // 16
    assert _metric(gateway, "chat_errors_total", code="bad_request") >= 1
    assert _metric(gateway, "chat_broker_publish_duration_seconds_count", kind="user_message") >= 3
    assert scene.receiver.metric_exports > 0
