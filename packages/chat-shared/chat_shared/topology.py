"""The broker topology: every exchange, queue and routing key, defined once.

    gateway ──user_message──▶ {prefix}.events (topic) ──session.*.user_message──▶ orchestrator queue
                                     │  ▲                                      └──▶ history queue
                                     │  └── token / tool_call / tool_result / complete / error /
                                     │      routed / session_ended  (tools, llm-worker, history)
                                     └── session.<id>.* ──▶ each gateway replica's own queue
    orchestrator ──tool.request / llm.request──▶ {prefix}.work (direct) ──▶ tools / llm queues
    gateway, llm-worker ──request/reply──▶ history RPC queue
    gateway, chatctl ──user_signed_out──▶ {prefix}.control (fanout) ──▶ every gateway replica
    gateway, llm-worker ──stop, replay──▶ {prefix}.llm-control (fanout) ──▶ every llm-worker
    quorum work queues ──after N deliveries──▶ {prefix}.dlx ──▶ dead-letter queue

See docs/architecture.md for who publishes and who consumes what, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

# Events of a session travel on `session.<session_id>.<event>`.
SESSION_EVENT_PREFIX: Final = "session"
TOOL_REQUEST_KEY: Final = "tool.request"
LLM_REQUEST_KEY: Final = "llm.request"
# A work message that failed this many deliveries goes to the dead-letter queue.
MAX_DELIVERIES: Final = 5

# Session events the history service persists. Tokens are deliberately absent: the
# assistant message is persisted once, from its `complete` (or `error`) event. `delivered`
# (a gateway sent an answer's first event to a socket) only feeds the message's timeline.
PERSISTED_EVENTS: Final = (
    "user_message",
    "routed",
    "tool_call",
    "tool_result",
    "complete",
    "error",
    "delivered",
    "progress",
)
TOKEN_EVENT: Final = "token"  # noqa: S105 - an event name, not a secret


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


@dataclass(frozen=True)
class Topology:
    """Names of every exchange and queue, under one prefix."""

    prefix: str = "chat"

    # -- exchanges ---------------------------------------------------------------------
    @property
    def events(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.events", type=ExchangeType.TOPIC, durable=True)

    @property
    def work(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.work", type=ExchangeType.DIRECT, durable=True)

    @property
    def control(self) -> RabbitExchange:
        """Broadcasts to every gateway replica (sign-outs)."""
        return RabbitExchange(f"{self.prefix}.control", type=ExchangeType.FANOUT, durable=True)

    @property
    def llm_control(self) -> RabbitExchange:
        """Broadcasts to every LLM worker replica: stop a message, replay a message's events."""
        return RabbitExchange(f"{self.prefix}.llm-control", type=ExchangeType.FANOUT, durable=True)

    @property
    def dead_letters(self) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.dlx", type=ExchangeType.FANOUT, durable=True)

    # -- queues ------------------------------------------------------------------------
    def _work_queue(self, name: str, routing_key: str) -> RabbitQueue:
        # Quorum queues: replicated in a cluster, and they count deliveries, so a message
        # that keeps failing is dead-lettered instead of blocking the queue forever.
        return RabbitQueue(
            f"{self.prefix}.{name}",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=routing_key,
            arguments={
                "x-delivery-limit": MAX_DELIVERIES,
                "x-dead-letter-exchange": self.dead_letters.name,
            },
        )

    @property
    def orchestrator_inbox(self) -> RabbitQueue:
        return self._work_queue("orchestrator.user-messages", event_binding("user_message"))

    @property
    def tool_requests(self) -> RabbitQueue:
        return self._work_queue("tools.requests", TOOL_REQUEST_KEY)

    @property
    def llm_requests(self) -> RabbitQueue:
        return self._work_queue("llm.requests", LLM_REQUEST_KEY)

    @property
    def history_events(self) -> RabbitQueue:
        # Bound once per persisted event kind; see PERSISTED_EVENTS.
        return self._work_queue("history.events", event_binding(PERSISTED_EVENTS[0]))

    @property
    def history_rpc(self) -> RabbitQueue:
        # Requests are short-lived questions; nobody waits for an answer after a restart.
        return RabbitQueue(f"{self.prefix}.history.rpc", durable=False, auto_delete=False)

    @property
    def dead_letter_queue(self) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.dead-letters", durable=True)

    def gateway_queue(self, replica_id: str) -> str:
        """Each gateway replica's private queue: bound to the sessions it holds sockets for."""
        return f"{self.prefix}.gateway.{replica_id}"

    def llm_control_queue(self, replica_id: str) -> str:
        """Each LLM worker replica's private queue, bound to `llm_control`."""
        return f"{self.prefix}.llm-worker.{replica_id}.control"
