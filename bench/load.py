"""The load generator: N chat sessions over real WebSockets, in a process of its own.

Each session mounts like a browser would (a fresh-connection GET of the page, a WebSocket, `join`
until `joined`), then asks in a loop: a Tier-2 question whose answer it knows in advance (the
scripted model's `echo:`), then "who am I" (Tier 1), then thinks for a random moment. Every frame
is checked: token `seq`s in order, the concatenated text equal to the expected answer and to
`complete.text`, so a lost, doubled or reordered token is counted, never hidden.

The harness talks to this process over a pipe:
    load → harness: ("warmed",) ("mounted", n) ("window_start",) ("window_end",) ("result", {...})
    harness → load: "go" (once the front process is ready, and after "warmed" and "mounted", once
                          it has sampled memory)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import websockets
from websockets.asyncio.client import ClientConnection

from bench.stats import summary
from chat_llm_worker.scripted import split_deltas

TIER1_TEXT = "who am I"
WORDS = ("agent", "token", "queue", "broker", "socket", "answer", "model", "budget", "worker")
Frame = dict[str, Any]


@dataclass(frozen=True)
class LoadPlan:
    http_url: str
    ws_url: str
    # One access token per session; None for the relay, which does not authenticate.
    tokens: tuple[str | None, ...]
    ttft_s: float
    rate: float
    answer_chars: int
    ramp_s: float
    window_s: float
    think_s: float
    drain_s: float
    seed: int = 0

    @property
    def sessions(self) -> int:
        return len(self.tokens)

    @property
    def answer_s(self) -> float:
        return self.ttft_s + len(split_deltas("x" * self.answer_chars)) / self.rate


@dataclass
class Samples:
    window: tuple[float, float] = (float("inf"), float("inf"))
    mount_s: list[float] = field(default_factory=list)
    mount_failures: int = 0
    page_status: set[int] = field(default_factory=set)
    first_token_s: list[float] = field(default_factory=list)
    tier1_s: list[float] = field(default_factory=list)
    # One entry per token (delta): from when the scripted model produced it (its schedule) to
    # receipt; and from when the worker read the event's oldest delta (`emitted_at`) to receipt.
    lag_s: list[float] = field(default_factory=list)
    after_worker_lag_s: list[float] = field(default_factory=list)
    window_tokens: int = 0
    window_frames: int = 0
    answers: int = 0
    failed_answers: int = 0  # ended with an error frame (counted by code in `errors`)
    broken_answers: int = 0
    lost_tokens: int = 0
    unfinished_answers: int = 0
    unfinished_tokens: int = 0
    duplicate_or_reordered: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def in_window(self, moment: float) -> bool:
        return self.window[0] <= moment < self.window[1]

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


def question(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars].strip()


async def fetch_page(url: str) -> int:
    """GET the page over a fresh connection, as a first visit would; returns the status."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close"
        writer.write(f"{request}\r\n\r\n".encode())
        response = await reader.read()
    finally:
        writer.close()
    return int(response.split(b" ", 2)[1])


class Session:
    def __init__(self, plan: LoadPlan, token: str | None, samples: Samples, seed: int) -> None:
        self.plan = plan
        self.token = token
        self.samples = samples
        self.rng = random.Random(seed)
        self.ws: ClientConnection | None = None
        # The answer being received, so a drain timeout can count what never arrived.
        self.pending_expected = 0
        self.pending_delivered = 0

    async def mount(self) -> None:
        started = time.time()
        self.samples.page_status.add(await fetch_page(self.plan.http_url))
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.ws = await websockets.connect(
            self.plan.ws_url, additional_headers=headers, compression=None, max_size=2**22
        )
        await self.ws.send('{"type":"join"}')
        joined = await self.recv()
        if joined["type"] != "joined":
            raise RuntimeError(f"join refused: {joined}")
        self.samples.mount_s.append(time.time() - started)

    async def recv(self) -> Frame:
        assert self.ws is not None
        frame: Frame = json.loads(await self.ws.recv())
        return frame

    async def send(self, text: str) -> tuple[float, str | None]:
        """Send a message; its send time and the id of the answer to come (None: refused)."""
        assert self.ws is not None
        client_message_id = uuid4().hex
        sent = time.time()
        payload = {"type": "send", "text": text, "client_message_id": client_message_id}
        await self.ws.send(json.dumps(payload))
        while True:
            frame = await self.recv()
            if frame["type"] == "accepted" and frame["client_message_id"] == client_message_id:
                return sent, frame["reply_message_id"]
            if frame["type"] == "error" and frame.get("client_message_id") == client_message_id:
                self.samples.error(frame["code"])
                return sent, None

    async def tier1(self) -> None:
        sent, reply_id = await self.send(TIER1_TEXT)
        if reply_id is None:
            return
        while True:
            frame = await self.recv()
            if frame.get("message_id") != reply_id:
                continue
            if frame["type"] == "complete":
                if self.samples.in_window(sent):
                    self.samples.tier1_s.append(time.time() - sent)
                return
            if frame["type"] == "error":
                self.samples.error(frame["code"])
                return

    async def tier2(self, chars: int | None = None) -> None:
        samples = self.samples
        expected = question(self.rng, chars or self.plan.answer_chars)
        self.pending_expected = len(split_deltas(expected))
        self.pending_delivered = 0
        sent, reply_id = await self.send(f"echo: {expected}")
        if reply_id is None:
            self.pending_expected = 0
            return
        texts: list[str] = []
        next_seq = 1
        in_order = True
        # (received, index of the event's first delta, deltas, emitted_at) of each token event
        events: list[tuple[float, int, int, float | None]] = []
        try:
            while True:
                frame = await self.recv()
                received = time.time()
                if frame.get("message_id") != reply_id:
                    continue
                kind = frame["type"]
                if kind == "token":
                    deltas = int(frame.get("deltas", 1))
                    if next_seq == 1 and samples.in_window(sent):
                        samples.first_token_s.append(received - sent - self.plan.ttft_s)
                    if frame["seq"] != next_seq:
                        in_order = False
                        samples.duplicate_or_reordered += 1
                    next_seq = frame["seq"] + 1
                    texts.append(frame["text"])
                    events.append(
                        (received, self.pending_delivered, deltas, frame.get("emitted_at"))
                    )
                    self.pending_delivered += deltas
                elif kind in ("complete", "error"):
                    break
        finally:
            # Also when cancelled at the end of the drain: what did arrive still counts.
            self._record_lags(events)
        samples.answers += 1
        self.pending_expected = 0
        text = "".join(texts)
        if kind == "error":
            # The user is told (e.g. `unavailable`: try again); what did stream must still be an
            # intact beginning of the answer.
            samples.error(frame["code"])
            samples.failed_answers += 1
            if not (in_order and frame.get("seq") == next_seq and expected.startswith(text)):
                samples.broken_answers += 1
            return
        intact = in_order and frame["seq"] == next_seq and text == expected == frame["text"]
        if not intact:
            samples.broken_answers += 1
        samples.lost_tokens += max(0, len(split_deltas(expected)) - self.pending_delivered)

    def _record_lags(self, events: list[tuple[float, int, int, float | None]]) -> None:
        """Lag of every delta received in the window.

        The scripted model emits delta j at start + j / rate. Each event's `emitted_at` is at or
        after its first delta's due time, so the earliest `emitted_at - j / rate` is the best
        estimate of `start` (it is exact unless every event was read late).
        """
        samples, interval = self.samples, 1 / self.plan.rate
        stamped = [(emitted - first * interval) for _, first, _, emitted in events if emitted]
        if not stamped:
            return
        start = min(stamped)
        for received, first, deltas, emitted in events:
            if not samples.in_window(received):
                continue
            samples.window_tokens += deltas
            samples.window_frames += 1
            samples.lag_s.extend(
                received - (start + j * interval) for j in range(first, first + deltas)
            )
            if emitted is not None:
                # Every delta of the event gets the lag of its oldest: an upper bound.
                samples.after_worker_lag_s.extend([received - emitted] * deltas)

    async def converse(self, stop: asyncio.Event, delay: float) -> None:
        await asyncio.sleep(delay)
        while not stop.is_set():
            await self.tier2()
            await self.tier1()
            await asyncio.sleep(self.rng.uniform(0, self.plan.think_s))

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


async def _mount_all(plan: LoadPlan, samples: Samples) -> list[Session]:
    sessions = [
        Session(plan, token, samples, plan.seed * 100_003 + index)
        for index, token in enumerate(plan.tokens)
    ]
    gap = plan.ramp_s / max(1, len(sessions))

    async def mount(index: int, session: Session) -> Session | None:
        await asyncio.sleep(index * gap)
        try:
            await session.mount()
        except Exception as exc:
            samples.mount_failures += 1
            samples.error(f"mount: {exc!r}"[:200])
            await session.close()
            return None
        return session

    mounted = await asyncio.gather(*(mount(i, s) for i, s in enumerate(sessions)))
    return [s for s in mounted if s is not None]


async def _warm_up(plan: LoadPlan) -> None:
    """One session through every path, so the measured sessions meet warm services."""
    session = Session(plan, plan.tokens[0], Samples(), seed=-1)
    await session.mount()
    await session.tier2(chars=40)
    await session.tier1()
    await session.close()


async def _load(plan: LoadPlan, pipe: Connection) -> dict[str, Any]:
    loop = asyncio.get_running_loop()

    async def wait_go() -> None:
        await loop.run_in_executor(None, pipe.recv)

    await wait_go()  # the front process is (re)started meanwhile
    await _warm_up(plan)
    pipe.send(("warmed",))
    await wait_go()

    samples = Samples()
    sessions = await _mount_all(plan, samples)
    if not sessions:
        raise RuntimeError(f"no session could mount: {samples.errors}")
    pipe.send(("mounted", len(sessions)))
    await wait_go()

    # Sessions start spread over one answer's length so they do not stream in lockstep.
    spread = plan.answer_s
    start = time.time()
    samples.window = (start + spread + 1.0, start + spread + 1.0 + plan.window_s)
    stop = asyncio.Event()
    rng = random.Random(plan.seed)
    tasks = [
        asyncio.create_task(session.converse(stop, rng.uniform(0, spread))) for session in sessions
    ]
    await asyncio.sleep(samples.window[0] - time.time())
    pipe.send(("window_start",))
    await asyncio.sleep(samples.window[1] - time.time())
    pipe.send(("window_end",))
    stop.set()
    _done, unfinished = await asyncio.wait(tasks, timeout=plan.drain_s)
    for task in unfinished:
        task.cancel()
    for session in sessions:
        if session.pending_expected:
            samples.unfinished_answers += 1
            samples.unfinished_tokens += session.pending_expected - session.pending_delivered
    await asyncio.gather(*(session.close() for session in sessions))
    return _result(plan, samples, len(sessions))


def _result(plan: LoadPlan, samples: Samples, mounted: int) -> dict[str, Any]:
    window = samples.window[1] - samples.window[0]
    return {
        "sessions": plan.sessions,
        "mounted": mounted,
        "mount_failures": samples.mount_failures,
        "page_status": sorted(samples.page_status),
        "mount_ms": summary(samples.mount_s, 1000),
        "first_token_overhead_ms": summary(samples.first_token_s, 1000),
        "tier1_round_trip_ms": summary(samples.tier1_s, 1000),
        "token_lag_ms": summary(samples.lag_s, 1000),
        "token_lag_after_worker_ms": summary(samples.after_worker_lag_s, 1000),
        "delivered_tokens_per_s": round(samples.window_tokens / window, 1),
        "token_frames_per_s": round(samples.window_frames / window, 1),
        "tokens_per_frame": round(samples.window_tokens / max(1, samples.window_frames), 2),
        "answers": samples.answers,
        "failed_answers": samples.failed_answers,
        "lost_tokens": samples.lost_tokens,
        "broken_answers": samples.broken_answers,
        "duplicate_or_reordered_frames": samples.duplicate_or_reordered,
        "unfinished_answers": samples.unfinished_answers,
        "unfinished_tokens": samples.unfinished_tokens,
        "errors": samples.errors,
    }


def child_main(plan: LoadPlan, pipe: Connection) -> None:
    """Entry point of the load process."""
    import uvloop

    try:
        result = uvloop.run(_load(plan, pipe))
    except BaseException as exc:
        pipe.send(("failed", repr(exc)))
        raise
    pipe.send(("result", result))
