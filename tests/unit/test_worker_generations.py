"""The worker's registry of answers: what a replay sends, who may stop what, how long it lasts."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

from chat_contracts.control import ReplayRequest, StopRequest
from chat_contracts.events import CompleteEvent, TokenEvent
from chat_contracts.work import LlmRequest
from chat_devtools.questions import an_llm_request as request
from chat_llm_worker.generations import Generations
from tests.support.clock import Clock


def ids(asked: LlmRequest) -> dict[str, Any]:
    return {
        "session_id": asked.session_id,
        "message_id": asked.message_id,
        "org_id": asked.user.org_id,
        "user_id": asked.user.user_id,
    }


def token(asked: LlmRequest, seq: int, attempt: int = 1) -> TokenEvent:
    return TokenEvent(
        session_id=asked.session_id,
        correlation_id=asked.correlation_id,
        message_id=asked.message_id,
        seq=seq,
        attempt=attempt,
        text=f"t{seq}",
    )


def complete(asked: LlmRequest, seq: int) -> CompleteEvent:
    return CompleteEvent(
        session_id=asked.session_id,
        correlation_id=asked.correlation_id,
        message_id=asked.message_id,
        org_id=asked.user.org_id,
        user_id=asked.user.user_id,
        seq=seq,
        text="t1t2",
    )


def stop(asked: LlmRequest, **changes: Any) -> StopRequest:
    return StopRequest(**{**ids(asked), "requested_at": time.time(), **changes})


def test_replay_of_the_same_attempt_starts_after_the_asked_seq() -> None:
    generations = Generations(60)
    asked = request()
    gen = generations.begin(asked, attempt=1)
    for seq in (1, 2, 3):
        gen.record(token(asked, seq))
    reply = generations.replay(ReplayRequest(**ids(asked), attempt=1, after_seq=1))
    assert reply is not None
    assert [e.seq for e in reply.events] == [2, 3] and not reply.ended


def test_replay_of_an_older_attempt_sends_the_whole_current_one() -> None:
    generations = Generations(60)
    asked = request()
    gen = generations.begin(asked, attempt=2)
    gen.record(token(asked, 1, attempt=2))
    reply = generations.replay(ReplayRequest(**ids(asked), attempt=1, after_seq=7))
    assert reply is not None and reply.attempt == 2
    assert [e.seq for e in reply.events] == [1]
    # An asker who saw a later attempt than this worker holds: someone else streams it.
    assert generations.replay(ReplayRequest(**ids(asked), attempt=3)) is None


def test_an_ended_answer_is_replayed_with_its_final_event_during_the_grace_only() -> None:
    clock = Clock()
    generations = Generations(60, clock)
    asked = request()
    gen = generations.begin(asked, attempt=1)
    gen.record(token(asked, 1))
    gen.record(complete(asked, 2))
    generations.end(gen)
    clock.now += 59
    reply = generations.replay(ReplayRequest(**ids(asked)))
    assert reply is not None and reply.ended and [e.seq for e in reply.events] == [1, 2]
    clock.now += 2
    assert generations.replay(ReplayRequest(**ids(asked))) is None
    assert len(generations) == 0


def test_only_the_owner_may_replay_or_stop() -> None:
    generations = Generations(60)
    asked = request()
    gen = generations.begin(asked, attempt=1)
    assert generations.replay(ReplayRequest(**{**ids(asked), "user_id": uuid4()})) is None
    assert generations.replay(ReplayRequest(**{**ids(asked), "org_id": uuid4()})) is None
    assert not generations.stop(stop(asked, user_id=uuid4()))
    assert not generations.stop(stop(asked, session_id=uuid4()))
    assert not gen.stopped
    assert generations.stop(stop(asked))
    assert gen.stopped and gen.woken.is_set()


def test_a_stop_cancels_the_running_stream() -> None:
    generations = Generations(60)
    asked = request()
    gen = generations.begin(asked, attempt=1)
    cancelled: list[bool] = []
    gen.cancel = lambda: cancelled.append(True)
    generations.stop(stop(asked))
    assert cancelled == [True]


def test_a_stop_that_overtakes_its_request_is_remembered_for_the_grace() -> None:
    clock = Clock()
    generations = Generations(60, clock)
    early, late, foreign = request(), request(), request()
    assert not generations.stop(stop(early))
    assert not generations.stop(stop(late))
    # A stop naming a message with somebody else's identity does not stop it.
    assert not generations.stop(stop(foreign, user_id=uuid4()))
    assert generations.stop_waiting(early.message_id)
    assert generations.begin(early, attempt=1).stopped
    assert not generations.stop_waiting(early.message_id)  # taken: used up
    assert not generations.begin(foreign, attempt=1).stopped
    clock.now += 61
    assert not generations.begin(late, attempt=1).stopped


def test_an_ended_answer_is_not_stopped_and_a_dropped_one_is_forgotten() -> None:
    generations = Generations(60)
    ended, dropped = request(), request()
    gen = generations.begin(ended, attempt=1)
    generations.end(gen)
    assert not generations.stop(stop(ended)) and not gen.stopped
    lost = generations.begin(dropped, attempt=1)
    generations.abandon_all()
    assert lost.lost and not gen.lost
    generations.drop(lost)
    assert generations.get(dropped.message_id) is None
