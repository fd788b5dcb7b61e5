"""The hub's per-socket guarantees, against a recording stand-in for a WebSocket: an answer's
events reach a socket once and in order (whatever came both replayed and live), heartbeats go
out, a silent client is closed."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest

from chat_contracts.codes import CloseCode
from chat_gateway import hub as hub_module
from chat_gateway.frames import Outgoing
from chat_gateway.hub import MAX_TRACKED, Client, SessionHub
from tests.support.sockets import RecordingSocket, client_on, settle


def event(message_id: UUID, attempt: int, seq: int, *, final: bool = False) -> Outgoing:
    return Outgoing(f"{attempt}.{seq}", message_id, attempt, seq, final=final)


def send(client: Client, outgoing: Outgoing) -> None:
    client.post(outgoing)


async def test_an_event_at_or_below_what_was_sent_is_dropped_and_a_later_attempt_resets() -> None:
    socket = RecordingSocket()
    client = client_on(socket)
    answer, other = uuid4(), uuid4()
    for outgoing in (
        event(answer, 1, 1),
        event(answer, 1, 2),
        event(answer, 1, 2),  # a duplicate
        event(answer, 1, 1),  # late
        event(other, 1, 1),  # another answer has its own count
        event(answer, 2, 0),  # `retrying` of attempt 2
        event(answer, 2, 0),  # the same `retrying` again
        event(answer, 1, 3),  # the superseded attempt goes on
        event(answer, 2, 1),
        event(answer, 1, 9),
        event(answer, 2, 2),
    ):
        send(client, outgoing)
    client.send("not an answer's event")
    client.send("not an answer's event")
    await settle()
    assert socket.sent == [
        "1.1",
        "1.2",
        "1.1",
        "2.0",
        "2.1",
        "2.2",
        "not an answer's event",
        "not an answer's event",
    ]


async def test_a_join_sends_joined_then_the_replay_then_what_was_held_without_repeats() -> None:
    socket = RecordingSocket()
    client = client_on(socket)
    answer = uuid4()
    client.defer()
    # Live events that arrived while history was read and the worker replayed.
    for seq in (5, 6, 7):
        send(client, event(answer, 1, seq))
    client.send("heartbeat")
    client.floor(answer, 1, 3)  # the client has up to seq 3
    replayed = [event(answer, 1, seq) for seq in (3, 4, 5, 6)]
    await settle()
    assert socket.sent == []  # nothing before `joined`
    client.release("joined", *replayed)
    send(client, event(answer, 1, 8))
    await settle()
    assert socket.sent == ["joined", "1.4", "1.5", "1.6", "1.7", "heartbeat", "1.8"]


async def test_a_finished_answer_is_forgotten_after_a_while_and_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(hub_module.time, "monotonic", lambda: now[0])
    socket = RecordingSocket()
    client = client_on(socket, queue_size=2 * MAX_TRACKED)
    done, later = uuid4(), uuid4()
    send(client, event(done, 1, 1))
    send(client, event(done, 1, 2, final=True))
    send(client, event(done, 1, 2, final=True))  # dropped: remembered
    now[0] += hub_module.FORGET_SECONDS + 1
    send(client, event(later, 1, 1, final=True))  # the next final event sweeps the old ones
    assert done.int not in client._sent
    for _ in range(MAX_TRACKED + 10):
        send(client, event(uuid4(), 1, 1))
    assert len(client._sent) <= MAX_TRACKED
    await settle()
    assert socket.sent[:3] == ["1.1", "1.2", "1.1"]


async def test_the_tick_sends_heartbeats_and_closes_silent_sockets_with_4408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [500.0]
    monkeypatch.setattr(hub_module.time, "monotonic", lambda: now[0])

    async def nothing(_session_id: UUID) -> None:
        return None

    hub = SessionHub(nothing, nothing)
    talking, silent = RecordingSocket(), RecordingSocket()
    talker, quiet = client_on(talking), client_on(silent)
    hub.connect(talker)
    hub.connect(quiet)
    now[0] += 10
    talker.heard()
    hub.tick(silence_seconds=5)
    hub.tick(silence_seconds=5)  # a second tick does not close it twice
    await settle()
    assert [json.loads(frame)["type"] for frame in talking.sent] == ["heartbeat", "heartbeat"]
    assert silent.sent == [("close", CloseCode.SILENT, "nothing received from the client")]
