"""Answering one LLM request: the whole of one delivery (an attempt) of it.

Each delivery of a request is an attempt (`x-delivery-count` + 1) and every event says which;
a later attempt first says the answer starts again. Before the model is called the answer takes
its session's turn (`chat_llm_worker.turns`), which brings its earlier messages and budget hold,
and checks the budget (`chat_llm_worker.budget`); then the model call streams it
(`chat_llm_worker.streaming`). A stop can end it at any point; a lost broker link abandons the
attempt (not acknowledged: RabbitMQ delivers it again); on the last allowed delivery a failure
is told to the user before the request is dead-lettered.
"""

from __future__ import annotations

import logging

from chat_contracts.codes import ErrorCode
from chat_contracts.work import LlmRequest
from chat_llm_worker.budget import BudgetGate
from chat_llm_worker.generations import Generation, Generations
from chat_llm_worker.messages import FAILED_MESSAGE
from chat_llm_worker.providers import Provider, ProviderRequest
from chat_llm_worker.settings import LlmWorkerSettings
from chat_llm_worker.streaming import CallContext, ModelCall
from chat_llm_worker.turns import AnswerEnded, AttemptAbandoned, TurnTaker
from chat_runtime.timeline import mark_model_called
from chat_runtime.tracing import span
from chat_runtime.work import Attempt

log = logging.getLogger("chat_llm_worker")

# How long an answer waits for the worker's lost broker link before it gives the attempt up.
LINK_WAIT_SECONDS = 30.0


class Answerer:
    def __init__(
        self,
        settings: LlmWorkerSettings,
        provider: Provider,
        generations: Generations,
        turns: TurnTaker,
        budget: BudgetGate,
        calls: CallContext,
    ) -> None:
        self._settings = settings
        self._provider = provider
        self._generations = generations
        self._turns = turns
        self._budget = budget
        self._calls = calls
        self._events = calls.events

    async def answer(self, delivery: Attempt[LlmRequest]) -> None:
        """Answer one delivery of a request; raise (the request goes back to its queue) when the
        attempt failed or was abandoned."""
        gen = self._generations.begin(delivery.body, delivery.number)
        try:
            await self._run(gen)
        except Exception:
            # Lost broker link or not, the request is dead-lettered after this delivery.
            if delivery.last:
                await self._give_up(gen)
            else:
                self._generations.drop(gen)
            raise
        except BaseException:
            self._generations.drop(gen)
            raise
        self._generations.end(gen)

    async def _give_up(self, gen: Generation) -> None:
        """The last allowed delivery failed: say so before RabbitMQ sets the request aside."""
        try:
            await self._events.fail(gen, ErrorCode.FAILED, FAILED_MESSAGE)
        except Exception:
            log.exception("could not tell the user that the answer failed")
            self._generations.drop(gen)
            return
        self._generations.end(gen)

    async def _run(self, gen: Generation) -> None:
        if gen.attempt > 1:
            await self._events.retrying(gen)
        if gen.stopped:  # a stop overtook the request while it was queued
            await self._events.stopped(gen)
            return
        # The link publishes the tokens: when it is lost, the attempt would be too. Waiting for
        # it keeps a short outage from using up the request's deliveries.
        if not await self._calls.link.wait_connected(LINK_WAIT_SECONDS):
            raise AttemptAbandoned
        try:
            started = await self._turns.take(gen)
        except AnswerEnded:
            return
        settings = self._settings
        prompt = ProviderRequest(
            system=settings.system_prompt,
            context=started.context if started is not None else [],
            text=gen.request.text,
            max_tokens=settings.llm_max_tokens,
        )
        budget = started.budget if started is not None else None
        if not await self._budget.allows(gen, prompt, budget):
            return
        if gen.stopped:
            await self._events.stopped(gen)
            return
        mark_model_called()
        # The model's first token is an event on this span (see chat_runtime.timeline.stamp).
        with span("chat.llm.stream", **{"chat.llm.provider": self._provider.name}):
            await ModelCall(self._calls, gen, self._provider.stream(prompt)).run()
