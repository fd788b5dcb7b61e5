"""Concurrent chat sessions that keep count of every token through a fault.

Each `FaultSession` is one browser tab: a WebSocket to one of the gateway replicas, `join`, then
`echo:` questions whose answers it knows in advance (the scripted model repeats them, see
`chat_llm_worker.scripted`, as bench/load.py does). When its socket closes it reconnects to the
*next* replica and rejoins with `after: {message_id, seq, attempt}` of the answer it is reading,
so a replay that leaves a hole, doubles or reorders a token is counted, never hidden.

Per answer it records: the token events received per (attempt, seq), duplicates, events out of
order, gaps (seqs that never arrived before `complete`), `retrying`/`queued`/`resync` frames, the
outcome (complete / stopped / error code / refused / nothing before the deadline: stuck), the
text shown vs `complete.text` vs the expected text, and when each event arrived (for recovery
times). `FaultReport` turns a fault's answers into one line of the table the suite prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat_llm_worker.scripted import ECHO_PREFIX, split_deltas

Frame = dict[str, Any]
WORDS = ("agent", "token", "queue", "broker", "socket", "answer", "model", "budget", "worker")
# Outcomes that end an answer; anything else after the deadline is `stuck`.
STREAM_EVENTS = ("token", "tool_call", "tool_result", "complete", "error", "retrying", "resync")


def expected_text(rng: random.Random, tag: str, chars: int) -> str:
    """An answer of about `chars` characters, unique to `tag` (so rows can be told apart)."""
    words = [tag]
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words)


@dataclass
class Answer:
    """One question and everything received of its answer, on one socket (tab)."""

    expected: str | None  # None: observed on a second tab, never sent from this one
    client_message_id: str
    sent_at: float
    reply_id: str | None = None
    user_message_id: str | None = None
    accepted_at: float | None = None
    refused: str | None = None  # error code of a `send` the server did not accept
    # attempt -> seq -> (text, deltas)
    events: dict[int, dict[int, tuple[str, int]]] = field(default_factory=dict)
    attempt: int = 1
    last_seq: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    out_of_order: int = 0
    stale: int = 0  # events of an attempt below the highest seen (to be dropped)
    retrying: list[int] = field(default_factory=list)
    retrying_at: list[float] = field(default_factory=list)
    queued: bool = False
    resyncs: int = 0
    resynced_whole: bool = False  # the answer ended meanwhile: history sent it whole
    event_times: list[float] = field(default_factory=list)
    first_token_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None  # complete | stopped | error:<code> | refused:<code> | stuck
    retryable: bool = False
    final: Frame | None = None
    final_text: str | None = None
    stop_sent_at: float | None = None
    fault_at: float | None = None  # when a fault hit this answer (its socket dropped, ...)
    missing: list[int] = field(default_factory=list)  # seqs of the final attempt never received
    done: asyncio.Event = field(default_factory=asyncio.Event)
    accepted: asyncio.Event = field(default_factory=asyncio.Event)

    # -- what the client saw ---------------------------------------------------------------
    def shown_text(self) -> str:
        received = self.events.get(self.attempt, {})
        return "".join(received[seq][0] for seq in sorted(received))

    def delivered_deltas(self) -> int:
        return sum(deltas for _, deltas in self.events.get(self.attempt, {}).values())

    def generated_deltas(self) -> int:
        return len(split_deltas(self.final_text)) if self.final_text is not None else 0

    @property
    def gaps(self) -> int:
        return len(self.missing)

    @property
    def intact(self) -> bool:
        """Ended and what streamed adds up: nothing missing, doubled or reordered, and the text
        is the expected one (stopped: the beginning of it)."""
        if self.outcome not in ("complete", "stopped") or self.final_text is None:
            return False
        if self.duplicates or self.out_of_order or self.missing:
            return False
        if not self.resyncs and not self.resynced_whole and self.shown_text() != self.final_text:
            return False
        if self.expected is None:
            return True
        if self.outcome == "complete":
            return self.final_text == self.expected
        return self.expected.startswith(self.final_text)

    # -- events ----------------------------------------------------------------------------
    def on_token(self, frame: Frame, at: float) -> None:
        attempt, seq = int(frame.get("attempt", 1)), int(frame["seq"])
        if attempt < self.attempt:
            self.stale += 1
            return
        if attempt > self.attempt:
            self.attempt = attempt
        received = self.events.setdefault(attempt, {})
        if seq in received:
            self.duplicates += 1
            return
        last = self.last_seq.get(attempt, 0)
        if seq < last:
            self.out_of_order += 1
        received[seq] = (frame.get("text", ""), int(frame.get("deltas", 1)))
        self.last_seq[attempt] = max(last, seq)
        self.event_times.append(at)
        if self.first_token_at is None:
            self.first_token_at = at

    def on_retrying(self, frame: Frame, at: float) -> None:
        self.retrying.append(int(frame["attempt"]))
        self.retrying_at.append(at)
        self.attempt = max(self.attempt, int(frame["attempt"]))
        self.event_times.append(at)

    def end(self, outcome: str, at: float, frame: Frame | None = None) -> None:
        if self.outcome is not None:
            return
        self.outcome, self.ended_at, self.final = outcome, at, frame
        if frame is not None and frame["type"] == "complete":
            attempt = int(frame.get("attempt", 1))
            if attempt >= self.attempt:
                self.attempt = attempt
            self.final_text = frame["text"]
            if not self.resyncs and not self.resynced_whole:
                received = self.events.get(self.attempt, {})
                self.missing = [s for s in range(1, int(frame["seq"])) if s not in received]
        if outcome not in ("stuck", "unconfirmed"):  # the client's own verdicts, not events
            self.event_times.append(at)
        self.done.set()


@dataclass(frozen=True)
class LoadConfig:
    answer_chars: int = 600
    answer_deadline_s: float = 45.0  # no outcome this long after sending: stuck
    join_deadline_s: float = 60.0  # rejoining keeps trying this long (history may be down)
    ping_s: float | None = None  # send `ping` this often (a silent client is closed)


class FaultSession:
    """One tab. `urls`: the gateway replicas' WebSocket URLs; it starts on `urls[first]`."""

    def __init__(
        self,
        index: int,
        token: str,
        urls: list[str],
        config: LoadConfig,
        *,
        session_id: str | None = None,
        observe: bool = False,
        seed: int = 0,
    ) -> None:
        self.index = index
        self.token = token
        self.urls = urls
        self.replica = index % len(urls)
        self.config = config
        self.session_id = session_id
        self.observe = observe  # a second tab: follow answers sent from elsewhere
        self.rng = random.Random(seed * 7919 + index)
        self.ws: ClientConnection | None = None
        self.answers: dict[str, Answer] = {}  # by reply id
        self.pending: dict[str, Answer] = {}  # by client_message_id, until accepted
        self.sent: list[Answer] = []
        self.connected = asyncio.Event()
        self.closing = False
        self.close_codes: list[int | None] = []
        self.reconnects = 0
        self.heartbeats = 0
        self.frames = 0
        self.foreign = 0  # stream events of an answer this tab knows nothing about
        # Frames of an answer whose `accepted` has not arrived yet (kept, then replayed).
        self.early: dict[str, list[tuple[Frame, float]]] = {}
        self.joined_replicas: list[int] = []  # the replica of each successful join, in order
        self.join_errors: list[str] = []
        self._pump: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()
        self._drop_next_close = False

    # -- connection ------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()
        self._pump = asyncio.create_task(self._run())
        if self.config.ping_s:
            self._pinger = asyncio.create_task(self._ping())

    async def _connect(self) -> None:
        """Connect and join, trying the replicas in turn with backoff until the deadline."""
        deadline = time.monotonic() + self.config.join_deadline_s
        delay = 0.1
        while True:
            url = self.urls[self.replica]
            try:
                ws = await websockets.connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    compression=None,
                    max_size=2**22,
                    open_timeout=5,
                    ping_interval=None,
                )
                joined = await self._join(ws)
                if joined is not None:
                    self.joined_replicas.append(self.replica)
                    self.ws = ws
                    self.connected.set()
                    self._on_joined(joined)
                    return
                await ws.close()
            except (OSError, InvalidStatus, ConnectionClosed, TimeoutError) as exc:
                self.join_errors.append(f"{type(exc).__name__}: {exc}"[:120])
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"session {self.index} could not rejoin in {self.config.join_deadline_s}s: "
                    f"{self.join_errors[-3:]}"
                )
            self.replica = (self.replica + 1) % len(self.urls)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def resume_point(self) -> Frame | None:
        """Where the answer being read stands: the oldest answer without an outcome."""
        for answer in self.answers.values():
            if answer.outcome is None and answer.reply_id is not None:
                return {
                    "message_id": answer.reply_id,
                    "seq": answer.last_seq.get(answer.attempt, 0),
                    "attempt": answer.attempt,
                }
        return None

    async def _join(self, ws: ClientConnection) -> Frame | None:
        payload: Frame = {"type": "join"}
        if self.session_id is not None:
            payload["session_id"] = self.session_id
        after = self.resume_point()
        if after is not None:
            payload["after"] = after
        await ws.send(json.dumps(payload))
        while True:
            frame: Frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "joined":
                return frame
            if frame["type"] == "error":
                self.join_errors.append(f"join: {frame.get('code')}: {frame.get('message')}")
                return None
            # Anything else before `joined` would be a protocol breach: keep it visible.
            self.join_errors.append(f"before joined: {frame['type']}")

    def _on_joined(self, frame: Frame) -> None:
        self.session_id = frame["session_id"]
        self._joined.set()
        # An answer that ended while this tab was away is in the session's history.
        for message in frame.get("messages", []):
            answer = self.answers.get(str(message["message_id"]))
            if answer is None or answer.outcome is not None:
                continue
            if message["status"] in ("complete", "stopped"):
                answer.resynced_whole = True
                answer.end(
                    message["status"],
                    time.time(),
                    {"type": "complete", "text": message["text"], "seq": 0, "attempt": 0},
                )
            elif message["status"] == "error":
                answer.resynced_whole = True
                answer.end(f"error:{message.get('error_code')}", time.time())

    async def _run(self) -> None:
        while not self.closing:
            assert self.ws is not None
            try:
                raw = await self.ws.recv()
            except ConnectionClosed as exc:
                self.close_codes.append(exc.rcvd.code if exc.rcvd else None)
                self.connected.clear()
                if self.closing:
                    return
                self.reconnects += 1
                self.replica = (self.replica + 1) % len(self.urls)
                try:
                    await self._connect()
                except RuntimeError as error:
                    self.join_errors.append(str(error))
                    return
                continue
            self._dispatch(json.loads(raw), time.time())

    async def _ping(self) -> None:
        assert self.config.ping_s is not None
        while not self.closing:
            await asyncio.sleep(self.config.ping_s)
            if self.ws is not None and self.connected.is_set():
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send('{"type":"ping"}')

    async def drop(self) -> None:
        """Cut the socket as a network drop would (no close handshake); the tab reconnects."""
        if self.ws is not None:
            self.ws.transport.abort()
            await asyncio.sleep(0)

    async def close(self) -> None:
        self.closing = True
        for task in (self._pinger,):
            if task is not None:
                task.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._pump is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._pump, 5)

    # -- frames ----------------------------------------------------------------------------
    def _answer_for(self, frame: Frame) -> Answer | None:
        message_id = frame.get("message_id")
        if message_id is None:
            return None
        answer = self.answers.get(str(message_id))
        if answer is None and self.observe and frame["type"] in STREAM_EVENTS:
            answer = Answer(expected=None, client_message_id="", sent_at=time.time())
            answer.reply_id = str(message_id)
            self.answers[answer.reply_id] = answer
        if answer is None and self.pending and frame["type"] in (*STREAM_EVENTS, "queued"):
            # Perhaps the answer to a `send` whose `accepted` is still on its way.
            self.early.setdefault(str(message_id), []).append((frame, time.time()))
            return None
        if answer is None and frame["type"] in STREAM_EVENTS:
            self.foreign += 1
        return answer

    def _dispatch(self, frame: Frame, at: float) -> None:
        self.frames += 1
        kind = frame["type"]
        if kind == "heartbeat":
            self.heartbeats += 1
            return
        if kind == "accepted":
            answer = self.pending.pop(frame["client_message_id"], None)
            if answer is not None:
                answer.reply_id = str(frame["reply_message_id"])
                answer.user_message_id = str(frame["message_id"])
                answer.accepted_at = at
                self.answers[answer.reply_id] = answer
                answer.accepted.set()
                for early, early_at in self.early.pop(answer.reply_id, []):
                    self._dispatch(early, early_at)
            return
        if kind == "error" and frame.get("client_message_id") and not frame.get("message_id"):
            answer = self.pending.pop(frame["client_message_id"], None)
            if answer is not None:
                answer.refused = frame["code"]
                answer.end(f"refused:{frame['code']}", at)
                answer.accepted.set()
            return
        answer = self._answer_for(frame)
        if answer is None:
            return
        if kind == "token":
            answer.on_token(frame, at)
        elif kind == "retrying":
            answer.on_retrying(frame, at)
        elif kind == "queued":
            answer.queued = True
        elif kind == "resync":
            answer.event_times.append(at)
            message = frame.get("message")
            if message is None:
                answer.resyncs += 1
            else:
                answer.resynced_whole = True
                status = message["status"]
                outcome = status if status in ("complete", "stopped") else f"error:{status}"
                answer.end(outcome, at, {"type": "complete", "text": message["text"], "seq": 0})
        elif kind == "complete":
            answer.end(frame.get("status", "complete"), at, frame)
        elif kind == "error":
            answer.retryable = bool(frame.get("retryable"))
            answer.end(f"error:{frame['code']}", at, frame)

    # -- asking ----------------------------------------------------------------------------
    async def send(self, expected: str | None = None, *, text: str | None = None) -> Answer:
        """Send a question (by default one whose answer is `expected`); returns once accepted,
        refused, or unconfirmed after the deadline (then `outcome` says so)."""
        if expected is None and text is None:
            tag = f"s{self.index}m{len(self.sent)}x{uuid4().hex[:6]}"
            expected = expected_text(self.rng, tag, self.config.answer_chars)
        body = text if text is not None else f"{ECHO_PREFIX} {expected}"
        answer = Answer(expected=expected, client_message_id=uuid4().hex, sent_at=time.time())
        self.sent.append(answer)
        self.pending[answer.client_message_id] = answer
        payload = {"type": "send", "text": body, "client_message_id": answer.client_message_id}
        try:
            await asyncio.wait_for(self.connected.wait(), self.config.join_deadline_s)
            assert self.ws is not None
            await self.ws.send(json.dumps(payload))
            await asyncio.wait_for(answer.accepted.wait(), self.config.answer_deadline_s)
        except (ConnectionClosed, TimeoutError):
            # Never confirmed: the gateway may or may not have taken it. Not an accepted
            # message, so not counted as lost; reported as `unconfirmed`.
            self.pending.pop(answer.client_message_id, None)
            answer.end("unconfirmed", time.time())
        return answer

    async def stop(self, answer: Answer) -> None:
        assert answer.reply_id is not None and self.ws is not None
        answer.stop_sent_at = time.time()
        await self.ws.send(json.dumps({"type": "stop", "message_id": answer.reply_id}))

    async def wait(self, answer: Answer) -> Answer:
        """Until the answer's outcome, or `stuck` after the deadline."""
        if answer.outcome is None:
            remaining = answer.sent_at + self.config.answer_deadline_s - time.time()
            try:
                await asyncio.wait_for(answer.done.wait(), max(0.1, remaining))
            except TimeoutError:
                answer.end("stuck", time.time())
        return answer

    async def ask(self, expected: str | None = None) -> Answer:
        return await self.wait(await self.send(expected))

    async def converse(self, turns: int, think_s: float = 0.2) -> list[Answer]:
        done = []
        for _ in range(turns):
            done.append(await self.ask())
            await asyncio.sleep(self.rng.uniform(0, think_s))
        return done

    async def wait_tokens(self, answer: Answer, deltas: int, timeout: float = 20) -> bool:
        """Until `deltas` of the answer arrived (mid-stream), or it ended first."""
        deadline = time.monotonic() + timeout
        while answer.delivered_deltas() < deltas and answer.outcome is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return answer.outcome is None


async def start_sessions(
    tokens: list[str], urls: list[str], config: LoadConfig, seed: int = 0
) -> list[FaultSession]:
    sessions = [FaultSession(i, t, urls, config, seed=seed) for i, t in enumerate(tokens)]
    await asyncio.gather(*(s.start() for s in sessions))
    return sessions


async def close_sessions(sessions: list[FaultSession]) -> None:
    await asyncio.gather(*(s.close() for s in sessions))


@dataclass
class FaultReport:
    """One fault's figures: one line of the table."""

    fault: str
    sessions: int = 0
    answers: list[Answer] = field(default_factory=list)
    fault_at: float | None = None  # when the fault began
    fault_end: float | None = None  # when it ended (the broker is back, ...)
    recover_s: float | None = None  # set by the test when it measures something specific
    persisted_missing: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.answers if a.reply_id is not None]

    def count(self, outcome: str) -> int:
        return sum(1 for a in self.answers if a.outcome == outcome)

    @property
    def errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for a in self.answers:
            if a.outcome and (
                a.outcome.startswith(("error:", "refused:")) or a.outcome in ("unconfirmed",)
            ):
                label = a.outcome + ("(retryable)" if a.retryable else "")
                found[label] = found.get(label, 0) + 1
        return found

    @property
    def finished(self) -> list[Answer]:
        """Answers whose turn completed (complete or stopped), as streamed (not from history)."""
        return [a for a in self.answers if a.outcome in ("complete", "stopped")]

    @property
    def generated(self) -> int:
        return sum(a.generated_deltas() for a in self.finished if not a.resynced_whole)

    @property
    def delivered(self) -> int:
        return sum(a.delivered_deltas() for a in self.finished if not a.resynced_whole)

    @property
    def lost(self) -> int:
        """Deltas of completed turns that never arrived, where the client was not told."""
        return sum(
            max(0, a.generated_deltas() - a.delivered_deltas())
            for a in self.finished
            if not a.resyncs and not a.resynced_whole
        )

    @property
    def duplicated(self) -> int:
        return sum(a.duplicates for a in self.answers)

    @property
    def out_of_order(self) -> int:
        return sum(a.out_of_order for a in self.answers)

    @property
    def gaps(self) -> int:
        return sum(a.gaps for a in self.answers)

    @property
    def broken(self) -> list[Answer]:
        return [a for a in self.finished if not a.intact]

    @property
    def stuck(self) -> int:
        return self.count("stuck")

    @property
    def messages_lost(self) -> int:
        """Accepted user messages without an outcome, or not persisted."""
        return self.stuck + self.persisted_missing

    def measured_recovery(self) -> float | None:
        """Until every answer the fault hit got an event again: from each answer's own
        `fault_at` if set, else from the fault's end for every answer in flight at its start."""
        if self.recover_s is not None:
            return self.recover_s
        waits = []
        for a in self.answers:
            since = a.fault_at
            if since is None:
                if self.fault_at is None or a.sent_at > self.fault_at:
                    continue
                if a.ended_at is not None and a.ended_at < self.fault_at:
                    continue
                since = self.fault_end or self.fault_at
            after = [t for t in a.event_times if t >= since]
            waits.append(min(after) - since if after else float("inf"))
        return max(waits) if waits else None

    HEADER = (
        "fault",
        "sessions",
        "answers",
        "complete",
        "stopped",
        "errors",
        "stuck",
        "generated",
        "delivered",
        "lost",
        "dup",
        "ooo",
        "gaps",
        "retried",
        "resync",
        "recover_s",
        "msgs_lost",
    )

    def row(self) -> tuple[str, ...]:
        recovery = self.measured_recovery()
        errors = self.errors
        return (
            self.fault,
            str(self.sessions),
            str(len(self.answers)),
            str(self.count("complete")),
            str(self.count("stopped")),
            ",".join(f"{k}={v}" for k, v in sorted(errors.items())) or "0",
            str(self.stuck),
            str(self.generated),
            str(self.delivered),
            str(self.lost),
            str(self.duplicated),
            str(self.out_of_order),
            str(self.gaps),
            str(sum(1 for a in self.answers if a.retrying)),
            str(sum(1 for a in self.answers if a.resyncs or a.resynced_whole)),
            "-" if recovery is None else "never" if recovery == float("inf") else f"{recovery:.2f}",
            str(self.messages_lost),
        )

    def describe_broken(self, limit: int = 5) -> str:
        lines = []
        for a in [*self.broken, *[a for a in self.answers if a.outcome == "stuck"]][:limit]:
            lines.append(
                f"reply={a.reply_id} outcome={a.outcome} attempt={a.attempt} "
                f"gaps={a.missing[:10]} dup={a.duplicates} ooo={a.out_of_order} "
                f"retrying={a.retrying} resyncs={a.resyncs} shown={a.shown_text()[:60]!r} "
                f"final={(a.final_text or '')[:60]!r} expected={(a.expected or '')[:60]!r}"
            )
        return "\n".join(lines)


def format_table(reports: list[FaultReport]) -> str:
    rows = [FaultReport.HEADER, *(r.row() for r in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(FaultReport.HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"  {r.fault}: {note}" for r in reports for note in r.notes]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


async def missing_rows(database_url: str, answers: list[Answer], timeout: float = 30) -> int:
    """How many accepted messages are not persisted whole (the user's message, and its answer
    in a final status) after waiting up to `timeout` for the history service to catch up."""
    from tests.support.db import fetch

    accepted = [a for a in answers if a.reply_id is not None and a.user_message_id is not None]
    if not accepted:
        return 0
    ids = [a.user_message_id for a in accepted] + [a.reply_id for a in accepted]
    deadline = time.monotonic() + timeout
    while True:
        rows = await fetch(
            database_url,
            "SELECT id::text AS id, role, status FROM chat.messages WHERE id::text = ANY(:ids)",
            ids=ids,
        )
        status = {row["id"]: row["status"] for row in rows}
        missing = sum(
            1
            for a in accepted
            if a.user_message_id not in status
            or status.get(a.reply_id or "") not in ("complete", "stopped", "error")
        )
        if missing == 0 or time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.25)


async def until_mid_stream(
    sessions: list[FaultSession], deltas: int = 20, fraction: float = 1.0, timeout: float = 30
) -> list[Answer]:
    """Wait until `fraction` of the sessions have an answer with at least `deltas` received and
    no outcome yet; returns those answers."""
    deadline = time.monotonic() + timeout
    while True:
        streaming = [
            a
            for s in sessions
            for a in s.answers.values()
            if a.outcome is None and a.delivered_deltas() >= deltas
        ]
        if len(streaming) >= max(1, int(len(sessions) * fraction)):
            return streaming
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(streaming)} of {len(sessions)} sessions were mid-stream after "
                f"{timeout}s"
            )
        await asyncio.sleep(0.02)
