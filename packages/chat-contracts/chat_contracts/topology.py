"""The broker topology: every exchange, queue, binding and routing key, and who publishes what.

    gateway ──user_message──▶ {prefix}.events (topic) ──session.*.user_message──▶ orchestrator inbox
                                     │  ▲                                      └──▶ history events
                                     │  └── token / tool_call / tool_result / complete / error /
                                     │      routed / session_ended  (tools, llm-worker, history)
                                     └── session.<id>.* ──▶ each gateway replica's own queue
    orchestrator ──tool.request / llm.request──▶ {prefix}.work (direct) ──▶ tools / llm queues
    gateway, llm-worker ──request/reply──▶ history RPC queue ──▶ the asker's reply queue
    gateway, chatctl ──user_signed_out──▶ {prefix}.control (fanout) ──▶ every gateway replica
    gateway, llm-worker ──stop, replay──▶ {prefix}.llm-control (fanout) ──▶ every llm-worker
    quorum work queues ──after N deliveries──▶ {prefix}.dlx ──▶ dead-letter queue

Plain data, no broker client: `chat_runtime` declares it, publishes by it (`Topology.route`) and
subscribes with it; `docs/asyncapi.yaml` is generated from it (`Topology.flows`). See
docs/architecture.md for why it has this shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Final, NamedTuple
from uuid import UUID

from pydantic import BaseModel

from chat_contracts import control, events, history, work
from chat_contracts.events import PERSISTED_EVENTS, SessionEvent, event_type

# Events of a session travel on `session.<session_id>.<event>`.
SESSION_EVENT_PREFIX: Final = "session"
TOOL_REQUEST_KEY: Final = "tool.request"
LLM_REQUEST_KEY: Final = "llm.request"
# A work message that failed this many deliveries goes to the dead-letter queue.
MAX_DELIVERIES: Final = 5
# The services, and the operator's CLI, as the flows name them.
SERVICES: Final = ("gateway", "orchestrator", "llm-worker", "tools", "history", "chatctl")


def session_key(session_id: UUID | str, event: str) -> str:
    """The routing key of one event of one session."""
    return f"{SESSION_EVENT_PREFIX}.{session_id}.{event}"


def session_binding(session_id: UUID | str) -> str:
    """The binding that receives every event of one session."""
    return f"{SESSION_EVENT_PREFIX}.{session_id}.*"


def event_binding(event: str) -> str:
    """The binding that receives one kind of event of every session."""
    return f"{SESSION_EVENT_PREFIX}.*.{event}"


def session_id_from_key(routing_key: str) -> str:
    """The session id inside a `session.<id>.<event>` routing key."""
    return routing_key.split(".", 2)[1]


class ExchangeType(StrEnum):
    TOPIC = "topic"
    DIRECT = "direct"
    FANOUT = "fanout"


@dataclass(frozen=True)
class Exchange:
    name: str  # "" is the default exchange: a message goes to the queue its routing key names
    type: ExchangeType
    durable: bool = True
    summary: str = ""


DEFAULT_EXCHANGE: Final = Exchange("", ExchangeType.DIRECT, summary="RabbitMQ's default exchange")


@dataclass(frozen=True)
class Binding:
    exchange: Exchange
    # A topic binding's pattern, a direct one's key, "" on a fanout. `{session_id}`: bound per
    # session at run time.
    key: str = ""


@dataclass(frozen=True)
class Queue:
    """A queue, its bindings and its one consumer service (whose replicas compete for it)."""

    name: str
    consumer: str
    # None: only the default exchange reaches it, by its name.
    bindings: tuple[Binding, ...] = ()
    quorum: bool = False
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def exchange(self) -> Exchange:
        """The exchange of the first binding (the one a FastStream subscriber binds itself)."""
        return self.bindings[0].exchange if self.bindings else DEFAULT_EXCHANGE

    @property
    def routing_key(self) -> str:
        """The key of the first binding."""
        return self.bindings[0].key if self.bindings else self.name


class Route(NamedTuple):
    """Where a message is published (a tuple: one is built per token)."""

    exchange: str
    routing_key: str
    persistent: bool


@dataclass(frozen=True)
class Flow:
    """One kind of message: where it is published, by whom, and which queues receive it."""

    message: type[BaseModel]
    exchange: Exchange
    routing_key: str  # with `{session_id}` for session events; `{reply_to}` for replies
    publishers: tuple[str, ...]
    queues: tuple[Queue, ...]
    reply: type[BaseModel] | None = None  # request/reply: what the asker gets back


# What a session event kind may be published by (the runtime refuses any other publisher).
_EVENT_PUBLISHERS: Final[dict[type[SessionEvent], tuple[str, ...]]] = {
    events.UserMessage: ("gateway",),
    events.RoutedEvent: ("orchestrator",),
    events.TokenEvent: ("llm-worker",),
    events.ToolCallEvent: ("tools",),
    events.ToolResultEvent: ("tools",),
    events.CompleteEvent: ("tools", "llm-worker"),
    events.ErrorEvent: ("llm-worker",),
    events.DeliveredEvent: ("gateway",),
    events.SessionEndedEvent: ("history",),
    events.RetryingEvent: ("llm-worker",),
    events.QueuedEvent: ("llm-worker",),
    events.ProgressEvent: ("llm-worker",),
}
# Messages that need not survive a broker restart (everything else is published persistent):
# a token is replayed by its worker, `delivered` only dates a timeline, control is live.
_TRANSIENT: Final[frozenset[type[BaseModel]]] = frozenset(
    {
        events.TokenEvent,
        events.DeliveredEvent,
        control.UserSignedOut,
        control.StopRequest,
        control.ReplayRequest,
    }
)


def _topic_matches(binding: str, key: str) -> bool:
    """Does a topic binding (`*` one word, `#` any) receive a routing key (templates alike)?"""
    pattern = "^" + re.escape(binding).replace(r"\*", r"[^.]+").replace(r"\#", r".*") + "$"
    return re.match(pattern, key) is not None


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue, under one prefix (tests use a prefix each). Each is
    built once per instance (`cached_property`): routing a token reads them."""

    prefix: str = "chat"

    # -- exchanges ---------------------------------------------------------------------
    @cached_property
    def events(self) -> Exchange:
        return Exchange(
            f"{self.prefix}.events",
            ExchangeType.TOPIC,
            summary="Every session event, on `session.<session_id>.<type>`.",
        )

    @cached_property
    def work(self) -> Exchange:
        return Exchange(
            f"{self.prefix}.work", ExchangeType.DIRECT, summary="Work for the tools and the LLM."
        )

    @cached_property
    def control(self) -> Exchange:
        return Exchange(
            f"{self.prefix}.control",
            ExchangeType.FANOUT,
            summary="Broadcasts to every gateway replica (sign-outs).",
        )

    @cached_property
    def llm_control(self) -> Exchange:
        return Exchange(
            f"{self.prefix}.llm-control",
            ExchangeType.FANOUT,
            summary="Broadcasts to every LLM worker replica: stop an answer, replay one.",
        )

    @cached_property
    def dead_letters(self) -> Exchange:
        return Exchange(
            f"{self.prefix}.dlx",
            ExchangeType.FANOUT,
            summary="Where quorum queues put a message that failed every delivery.",
        )

    def exchanges(self) -> tuple[Exchange, ...]:
        return (self.events, self.work, self.control, self.llm_control, self.dead_letters)

    # -- durable queues (declared by every service at start) ----------------------------
    def _work_queue(
        self, name: str, consumer: str, exchange: Exchange, keys: tuple[str, ...], summary: str
    ) -> Queue:
        # Quorum queues: replicated in a cluster, and they count deliveries, so a message
        # that keeps failing is dead-lettered instead of blocking the queue forever.
        return Queue(
            f"{self.prefix}.{name}",
            consumer,
            tuple(Binding(exchange, key) for key in keys),
            quorum=True,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": MAX_DELIVERIES,
                "x-dead-letter-exchange": self.dead_letters.name,
            },
            summary=summary,
        )

    @cached_property
    def orchestrator_inbox(self) -> Queue:
        return self._work_queue(
            "orchestrator.user-messages",
            "orchestrator",
            self.events,
            (event_binding(event_type(events.UserMessage)),),
            "Every user message, to route (competing orchestrator replicas).",
        )

    @cached_property
    def tool_requests(self) -> Queue:
        return self._work_queue(
            "tools.requests", "tools", self.work, (TOOL_REQUEST_KEY,), "Tier-1 work."
        )

    @cached_property
    def llm_requests(self) -> Queue:
        return self._work_queue(
            "llm.requests",
            "llm-worker",
            self.work,
            (LLM_REQUEST_KEY,),
            "Tier-2 work (competing LLM worker replicas, prefetch LLM_CONCURRENCY).",
        )

    @cached_property
    def history_events(self) -> Queue:
        return self._work_queue(
            "history.events",
            "history",
            self.events,
            tuple(event_binding(event) for event in PERSISTED_EVENTS),
            "Every event history persists (never tokens).",
        )

    @cached_property
    def history_rpc(self) -> Queue:
        # Requests are short-lived questions; nobody waits for an answer after a restart.
        return Queue(
            f"{self.prefix}.history.rpc",
            "history",
            arguments={"x-queue-type": "classic"},
            summary="Questions to history; each reply goes to the asker's reply queue.",
        )

    @cached_property
    def dead_letter_queue(self) -> Queue:
        return Queue(
            f"{self.prefix}.dead-letters",
            "operators",
            (Binding(self.dead_letters),),
            durable=True,
            arguments={"x-queue-type": "classic"},
            summary="Messages set aside after every delivery failed; for operators to inspect.",
        )

    def durable_queues(self) -> tuple[Queue, ...]:
        """What every service declares at start, so no accepted message is unroutable."""
        return (
            self.dead_letter_queue,
            self.orchestrator_inbox,
            self.tool_requests,
            self.llm_requests,
            self.history_events,
            self.history_rpc,
        )

    # -- per-replica queues (exclusive: gone with the replica's connection) -------------------
    def _private(
        self, name: str, consumer: str, bindings: tuple[Binding, ...], summary: str
    ) -> Queue:
        return Queue(
            name,
            consumer,
            bindings,
            exclusive=True,
            auto_delete=True,
            summary=summary,
        )

    def gateway_queue(self, replica_id: str) -> Queue:
        """Each gateway replica's queue: the sessions it holds sockets for (bound and unbound
        as sockets come and go), and sign-outs."""
        return self._private(
            f"{self.prefix}.gateway.{replica_id}",
            "gateway",
            (Binding(self.events, session_binding("{session_id}")), Binding(self.control)),
            "Events of the sessions this gateway replica holds sockets for, and sign-outs.",
        )

    def gateway_replies(self, replica_id: str) -> Queue:
        return self._private(
            f"{self.prefix}.gateway.{replica_id}.replies",
            "gateway",
            (),
            "Replies to this gateway replica's questions (history, replays).",
        )

    def llm_control_queue(self, replica_id: str) -> Queue:
        """Each LLM worker replica's queue on the `llm-control` fanout."""
        return self._private(
            f"{self.prefix}.llm-worker.{replica_id}.control",
            "llm-worker",
            (Binding(self.llm_control),),
            "Stops and replay questions, heard by every LLM worker replica.",
        )

    def llm_worker_replies(self, replica_id: str) -> Queue:
        return self._private(
            f"{self.prefix}.llm-worker.{replica_id}.replies",
            "llm-worker",
            (),
            "Replies to this LLM worker replica's questions (history).",
        )

    # -- where a message goes ------------------------------------------------------------------
    def route(self, message: BaseModel) -> Route:
        """The exchange and routing key of a message, and whether it is published persistent."""
        persistent = type(message) not in _TRANSIENT
        match message:
            case SessionEvent():
                kind: str = message.type  # type: ignore[attr-defined]
                return Route(self.events.name, session_key(message.session_id, kind), persistent)
            case work.ToolRequest():
                return Route(self.work.name, TOOL_REQUEST_KEY, persistent)
            case work.LlmRequest():
                return Route(self.work.name, LLM_REQUEST_KEY, persistent)
            case control.UserSignedOut():
                return Route(self.control.name, "", persistent)
            case control.StopRequest() | control.ReplayRequest():
                return Route(self.llm_control.name, "", persistent)
            case history.OpenSession() | history.GetTimeline() | history.StartAnswer():
                return Route(DEFAULT_EXCHANGE.name, self.history_rpc.name, persistent)
        raise TypeError(f"{type(message).__name__} has no route")

    # -- the whole picture (docs/asyncapi.yaml is generated from it) --------------------------
    def replica_queues(self) -> tuple[Queue, ...]:
        replica = "{replica_id}"
        return (
            self.gateway_queue(replica),
            self.gateway_replies(replica),
            self.llm_control_queue(replica),
            self.llm_worker_replies(replica),
        )

    def queues(self) -> tuple[Queue, ...]:
        return self.durable_queues() + self.replica_queues()

    def _receivers(self, exchange: Exchange, routing_key: str) -> tuple[Queue, ...]:
        def receives(binding: Binding) -> bool:
            if binding.exchange != exchange:
                return False
            if exchange.type is ExchangeType.FANOUT:
                return True
            if exchange.type is ExchangeType.TOPIC:
                return _topic_matches(binding.key, routing_key)
            return binding.key == routing_key

        return tuple(q for q in self.queues() if any(receives(b) for b in q.bindings))

    def flows(self) -> tuple[Flow, ...]:
        """Every kind of message, its publishers and the queues bindings bring it to."""
        found: list[Flow] = []
        model: type[BaseModel]
        for model, publishers in _EVENT_PUBLISHERS.items():
            key = session_key("{session_id}", event_type(model))
            found.append(
                Flow(model, self.events, key, publishers, self._receivers(self.events, key))
            )
        for model, key in (
            (work.ToolRequest, TOOL_REQUEST_KEY),
            (work.LlmRequest, LLM_REQUEST_KEY),
        ):
            found.append(
                Flow(model, self.work, key, ("orchestrator",), self._receivers(self.work, key))
            )
        found.append(
            Flow(
                control.UserSignedOut,
                self.control,
                "",
                ("gateway", "chatctl"),
                self._receivers(self.control, ""),
            )
        )
        llm_control = self._receivers(self.llm_control, "")
        found.append(
            Flow(control.StopRequest, self.llm_control, "", ("gateway", "llm-worker"), llm_control)
        )
        found.append(
            Flow(
                control.ReplayRequest,
                self.llm_control,
                "",
                ("gateway",),
                llm_control,
                reply=control.ReplayReply,
            )
        )
        rpc = (self.history_rpc,)
        for model, reply, askers in (
            (history.OpenSession, history.SessionSnapshot, ("gateway",)),
            (history.GetTimeline, history.TimelineReply, ("gateway",)),
            (history.StartAnswer, history.StartReply, ("llm-worker",)),
        ):
            found.append(Flow(model, DEFAULT_EXCHANGE, self.history_rpc.name, askers, rpc, reply))
        return tuple(found)

    def publishers_of(self) -> dict[type[BaseModel], tuple[str, ...]]:
        return {flow.message: flow.publishers for flow in self.flows()}
