"""The wire, defined once: every message on the broker, the browser protocol, the topology.

It imports nothing but pydantic (an import-linter contract keeps it so): the page's types and
docs/asyncapi.yaml are generated from it, and every service imports it.

- `base`: the versioned base model, `UserRef`, usage, statuses;
- `events`: session events (`session.<id>.<type>`), and which of them history persists;
- `work`: the work the orchestrator hands on; `control`: broadcasts to every replica;
- `history`: questions to the history service and its answers;
- `protocol`, `codes`: the browser WebSocket protocol, its error and close codes;
- `topology`: exchanges, queues, bindings, routing keys, publishers and consumers.
"""

from chat_contracts.base import (
    CONTRACT_VERSION,
    FINAL_CALL_STATUSES,
    FINAL_MESSAGE_STATUSES,
    CallStatus,
    Contract,
    HopTimes,
    LlmCall,
    MessageStatus,
    Usage,
    UserRef,
    now,
)
from chat_contracts.codes import CloseCode, ErrorCode
from chat_contracts.events import (
    LIVE_EVENTS,
    PERSISTED_EVENTS,
    AnySessionEvent,
    CompleteEvent,
    DeliveredEvent,
    ErrorEvent,
    FinalEvent,
    LiveEvent,
    PersistedEvent,
    ProgressEvent,
    QueuedEvent,
    ReplayedEvent,
    RetryingEvent,
    RoutedEvent,
    SessionEndedEvent,
    SessionEvent,
    StreamEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
    UserMessage,
    session_event_adapter,
)
from chat_contracts.protocol import PROTOCOL_VERSION
from chat_contracts.topology import Topology, session_binding, session_key
from chat_contracts.work import LlmRequest, ToolRequest

__all__ = [
    "CONTRACT_VERSION",
    "FINAL_CALL_STATUSES",
    "FINAL_MESSAGE_STATUSES",
    "LIVE_EVENTS",
    "PERSISTED_EVENTS",
    "PROTOCOL_VERSION",
    "AnySessionEvent",
    "CallStatus",
    "CloseCode",
    "CompleteEvent",
    "Contract",
    "DeliveredEvent",
    "ErrorCode",
    "ErrorEvent",
    "FinalEvent",
    "HopTimes",
    "LiveEvent",
    "LlmCall",
    "LlmRequest",
    "MessageStatus",
    "PersistedEvent",
    "ProgressEvent",
    "QueuedEvent",
    "ReplayedEvent",
    "RetryingEvent",
    "RoutedEvent",
    "SessionEndedEvent",
    "SessionEvent",
    "StreamEvent",
    "TokenEvent",
    "ToolCallEvent",
    "ToolRequest",
    "ToolResultEvent",
    "Topology",
    "Usage",
    "UserMessage",
    "UserRef",
    "now",
    "session_binding",
    "session_event_adapter",
    "session_key",
]
