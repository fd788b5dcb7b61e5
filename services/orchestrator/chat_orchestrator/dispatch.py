"""Hands each user message on: the routing decision first, then the work it calls for.

`routed` is confirmed before the work item is published: `routed` may be written twice
harmlessly, the work may not, so a user message redelivered because `routed` failed has
dispatched no work yet (docs/architecture.md, the orchestrator's order).
"""

from __future__ import annotations

import logging
from uuid import uuid4

from chat_contracts.base import now
from chat_contracts.events import RoutedEvent, UserMessage
from chat_contracts.work import LlmRequest, ToolRequest
from chat_orchestrator.routing import route
from chat_runtime.publisher import Publisher
from chat_runtime.tracing import span

log = logging.getLogger("chat_orchestrator")


class Dispatcher:
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    async def dispatch(self, message: UserMessage) -> None:
        with span("chat.route") as routing:
            decision = route(message.text)
            if routing is not None:
                routing.set_attributes(
                    {"chat.tier": decision.tier, "chat.tool": decision.tool or ""}
                )
        await self._publisher.publish(
            RoutedEvent(
                session_id=message.session_id,
                correlation_id=message.correlation_id,
                message_id=message.reply_message_id,
                user_message_id=message.message_id,
                org_id=message.user.org_id,
                user_id=message.user.user_id,
                tier=decision.tier,
                tool=decision.tool,
                pattern=decision.pattern,
                routed_at=now(),
            )
        )
        # What both kinds of work carry: whose answer it becomes, and when it was handed on.
        answer = {
            "session_id": message.session_id,
            "correlation_id": message.correlation_id,
            "message_id": message.reply_message_id,
            "user": message.user,
            "queued_at": now(),
        }
        work: ToolRequest | LlmRequest
        if decision.tool is not None:
            work = ToolRequest(**answer, call_id=uuid4(), tool=decision.tool, input=decision.input)
        else:
            work = LlmRequest(**answer, user_message_id=message.message_id, text=message.text)
        await self._publisher.publish(work)
        log.info("routed", extra={"tier": decision.tier, "tool": decision.tool})
