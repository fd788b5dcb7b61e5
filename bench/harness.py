"""Runs load levels against both systems, samples CPU and memory, and aggregates repeats.

For each repeat, both systems are started; for each load level, each system in turn gets a fresh
front process (gateway or relay server) and a fresh load process. The two systems alternate who
goes first from one repeat to the next, so drift in the machine's background load (other people's
test suites) does not always favour the same one. Figures of one repeat are compared with each
other (ratios), and the report quotes medians over repeats.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.load import LoadPlan, child_main
from bench.stats import median
from bench.systems import Ours, Relay, System, rabbitmq_pid
from chat_devtools.infra import Databases, fresh_database

# A level is saturated (and higher levels are skipped for that system in that repeat) when its
# p99 token lag passes this: the token path is what the levels scale.
SATURATED_P99_LAG_MS = 1000.0
PIPE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class BenchConfig:
    levels: tuple[int, ...] = (10, 25, 100, 200)
    repeats: int = 3
    window_s: float = 5.0
    ttft_ms: float = 300.0
    rate: float = 60.0
    answer_chars: int = 1050  # 300 deltas: 5 s at 60 deltas/s
    ramp_s: float = 1.0
    think_s: float = 0.2
    # After the window, answers in flight get this long to finish (then they are cut, counted as
    # unfinished and not checked); every answer that completed is checked for lost tokens.
    drain_s: float = 2.0
    systems: tuple[str, ...] = ("ours", "relay")
    llm_concurrency: int = 1000
    # Extra environment of the five services (experiments: e.g. TOKEN_PUBLISH_WINDOW=4).
    ours_env: tuple[tuple[str, str], ...] = ()
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    postgres_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    log_dir: Path = Path("bench/results/logs.tmp")
    # When set: py-spy records every service process during each window, into this folder.
    profile_dir: Path | None = None


def _cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _box_busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class _Pipe:
    def __init__(self, connection: Any, process: multiprocessing.process.BaseProcess) -> None:
        self._connection = connection
        self._process = process

    def expect(self, kind: str) -> tuple[Any, ...]:
        if not self._connection.poll(PIPE_TIMEOUT_S):
            raise RuntimeError(f"the load process sent nothing for {PIPE_TIMEOUT_S}s")
        message: tuple[Any, ...] = self._connection.recv()
        if message[0] == "failed":
            raise RuntimeError(f"the load process failed: {message[1]}")
        if message[0] != kind:
            raise RuntimeError(f"expected {kind!r} from the load process, got {message!r}")
        return message

    def go(self) -> None:
        self._connection.send("go")


def run_level(system: System, sessions: int, config: BenchConfig, seed: int) -> dict[str, Any]:
    plan = LoadPlan(
        http_url=system.http_url,
        ws_url=system.ws_url,
        tokens=system.tokens(sessions),
        ttft_s=config.ttft_ms / 1000,
        rate=config.rate,
        answer_chars=config.answer_chars,
        ramp_s=config.ramp_s,
        window_s=config.window_s,
        think_s=config.think_s,
        drain_s=config.drain_s,
        seed=seed,
    )
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=child_main, args=(plan, child), daemon=True)
    load_before = os.getloadavg()[0]
    process.start()  # it imports while the front process restarts
    assert process.pid is not None
    pipe = _Pipe(parent, process)
    try:
        system.fresh_front()
        pipe.go()
        front = system.front_pid()
        pipe.expect("warmed")
        rss_idle = _rss(front)
        pipe.go()
        mounted = pipe.expect("mounted")[1]
        rss_mounted = _rss(front)
        pipe.go()
        pids = {**system.pids(), "load-client": process.pid}
        broker = rabbitmq_pid()
        if broker is not None:
            pids["rabbitmq"] = broker
        pipe.expect("window_start")
        profilers = _start_profilers(config, system.name, sessions, seed, system.pids())
        cpu_start = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        box_start, wall_start = _box_busy_seconds(), time.monotonic()
        epoch_start = time.time()
        pipe.expect("window_end")
        cpu_end = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        box_end, wall_end = _box_busy_seconds(), time.monotonic()
        epoch_end = time.time()
        result: dict[str, Any] = pipe.expect("result")[1]
        for profiler in profilers:
            profiler.wait(30)
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    window = wall_end - wall_start
    tokens = result["delivered_tokens_per_s"] * window
    frames = result["token_frames_per_s"] * window
    cpu = {
        name: (cpu_end[name] or 0.0) - (cpu_start[name] or 0.0)
        for name in pids
        if cpu_start[name] is not None and cpu_end[name] is not None
    }
    result.update(
        {
            "system": system.name,
            "offered_tokens_per_s": sessions * config.rate,
            "loadavg_1m_before": round(load_before, 2),
            "box_cpu_busy_cores": round((box_end - box_start) / window, 2),
            "cpu_cores": {name: round(seconds / window, 3) for name, seconds in cpu.items()},
            "cpu_s_per_1000_tokens": {
                name: round(seconds / (tokens / 1000), 4) if tokens else None
                for name, seconds in cpu.items()
            },
            # Per token event (one broker message, one WebSocket frame): CPU per message.
            "cpu_us_per_token_event": {
                name: round(seconds / frames * 1e6, 1) if frames else None
                for name, seconds in cpu.items()
            },
            "front_rss_kb": round(rss_mounted / 1024),
            "memory_per_socket_kb": round((rss_mounted - rss_idle) / 1024 / max(1, mounted), 1),
        }
    )
    hop_times = getattr(system, "hop_times", None)
    if hop_times is not None:
        # What was asked in the window has answered (or been cut) by now: the drain is over.
        result["hops_ms"] = hop_times(epoch_start, epoch_end)
    system_cpu = sum(v for k, v in cpu.items() if k not in ("rabbitmq", "load-client"))
    result["cpu_s_per_1000_tokens"]["all_services"] = (
        round(system_cpu / (tokens / 1000), 4) if tokens else None
    )
    p99 = result["token_lag_ms"]["p99"]
    result["saturated"] = bool(p99 == p99 and p99 > SATURATED_P99_LAG_MS)
    return result


def _start_profilers(
    config: BenchConfig, system: str, sessions: int, repeat: int, pids: dict[str, int]
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process for the window (collapsed stacks; see bench/probes/profile_top.py)."""
    if config.profile_dir is None:
        return []
    config.profile_dir.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    profilers = []
    for name, pid in pids.items():
        out = config.profile_dir / f"{system}-{sessions}-r{repeat}-{name}.txt"
        command = [str(py_spy), "record", "-p", str(pid), "-d", str(int(config.window_s))]
        command += ["-f", "raw", "-r", "200", "--nonblocking", "-o", str(out)]
        profilers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return profilers


def _systems(config: BenchConfig, databases: Databases, log_dir: Path) -> dict[str, System]:
    systems: dict[str, System] = {}
    if "ours" in config.systems:
        systems["ours"] = Ours(
            config.amqp_url,
            databases,
            log_dir / "ours",
            ttft_ms=config.ttft_ms,
            rate=config.rate,
            llm_concurrency=config.llm_concurrency,
            extra_env=dict(config.ours_env),
        )
    if "relay" in config.systems:
        systems["relay"] = Relay(
            config.amqp_url, log_dir / "relay", ttft_ms=config.ttft_ms, rate=config.rate
        )
    return systems


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Every repeat of every level of every system; returns the report (see `aggregate`)."""
    started = time.time()
    load_at_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with fresh_database(config.postgres_url) as databases:
        for repeat in range(config.repeats):
            log_dir = config.log_dir / f"repeat-{repeat}"
            systems = _systems(config, databases, log_dir)
            order = list(systems) if repeat % 2 == 0 else list(reversed(systems))
            try:
                for system in systems.values():
                    system.start()
                saturated: set[str] = set()
                for sessions in config.levels:
                    for name in order:
                        if name in saturated:
                            _log(f"repeat {repeat} {name} {sessions} sessions: skipped")
                            continue
                        _log(f"repeat {repeat} {name} {sessions} sessions (load {_load()})")
                        result = run_level(systems[name], sessions, config, seed=repeat)
                        result["repeat"] = repeat
                        runs.append(result)
                        _log(_one_line(result))
                        for line in _hop_lines(result):
                            _log(line)
                        if result["saturated"]:
                            saturated.add(name)
            finally:
                for system in systems.values():
                    system.stop()
    return aggregate(config, runs, started, load_at_start)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _one_line(r: dict[str, Any]) -> str:
    lag = r["token_lag_ms"]
    return (
        f"  delivered {r['delivered_tokens_per_s']:.0f} tok/s ({r['tokens_per_frame']} per frame), "
        f"lag p50/p99 {lag['p50']}/{lag['p99']} ms, mount p95 {r['mount_ms']['p95']} ms, "
        f"first-token p95 {r['first_token_overhead_ms']['p95']} ms, "
        f"tier-1 p95 {r['tier1_round_trip_ms']['p95']} ms, lost {r['lost_tokens']}, "
        f"failed {r['failed_answers']} {r['errors'] or ''}, "
        f"broken {r['broken_answers']}, unfinished {r['unfinished_answers']}, "
        f"busy {r['box_cpu_busy_cores']} cores, {r['memory_per_socket_kb']} KB/socket"
    )


def _hop_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for tier, hops in (r.get("hops_ms") or {}).items():
        parts = [f"{name} {h['p50']}/{h['p95']}" for name, h in hops.items() if h["count"]]
        if parts:
            lines.append(f"  {tier} hops p50/p95 ms: " + ", ".join(parts))
    return lines


# -- aggregation --------------------------------------------------------------------------------

RATIO_METRICS = {
    "token_lag_p50": ("token_lag_ms", "p50"),
    "token_lag_p95": ("token_lag_ms", "p95"),
    "token_lag_p99": ("token_lag_ms", "p99"),
    "mount_p95": ("mount_ms", "p95"),
    "first_token_overhead_p95": ("first_token_overhead_ms", "p95"),
    "tier1_round_trip_p95": ("tier1_round_trip_ms", "p95"),
    "delivered_tokens_per_s": ("delivered_tokens_per_s",),
    "cpu_s_per_1000_tokens": ("cpu_s_per_1000_tokens", "all_services"),
}


def _dig(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The element-wise median of several results of one level (numbers only; else the first)."""
    merged = _merge(results)
    merged["repeats"] = len(results)
    return merged


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, first in results[0].items():
        values = [r.get(key) for r in results]
        if isinstance(first, dict):
            merged[key] = _merge([v for v in values if isinstance(v, dict)])
        elif isinstance(first, bool):
            merged[key] = any(bool(v) for v in values)
        elif isinstance(first, int | float):
            m = median(float(v) for v in values if isinstance(v, int | float))
            merged[key] = None if m is None else round(m, 3)
        else:
            merged[key] = first
    return merged


def aggregate(
    config: BenchConfig,
    runs: list[dict[str, Any]],
    started: float,
    load_at_start: tuple[float, float, float],
) -> dict[str, Any]:
    levels: list[dict[str, Any]] = []
    for sessions in config.levels:
        entry: dict[str, Any] = {
            "sessions": sessions,
            "offered_tokens_per_s": sessions * config.rate,
        }
        for name in config.systems:
            mine = [r for r in runs if r["system"] == name and r["sessions"] == sessions]
            entry[name] = _median_of(mine) if mine else None
        if "ours" in config.systems and "relay" in config.systems:
            entry["ours_over_relay"] = _ratios(runs, sessions)
        levels.append(entry)
    return {
        "benchmark": "agent chat: the five services vs the minimal relay",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in load_at_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "commit": _commit(),
        },
        "levels": levels,
        "runs": runs,
    }


def _ratios(runs: list[dict[str, Any]], sessions: int) -> dict[str, float | None]:
    """ours / relay, per repeat (both measured in the same run), then the median."""
    ratios: dict[str, float | None] = {}
    repeats = {r["repeat"] for r in runs if r["sessions"] == sessions}
    for metric, path in RATIO_METRICS.items():
        per_repeat: list[float] = []
        for repeat in repeats:
            pair = {
                r["system"]: _dig(r, path)
                for r in runs
                if r["sessions"] == sessions and r["repeat"] == repeat
            }
            ours, relay = pair.get("ours"), pair.get("relay")
            if ours is not None and relay and relay == relay and ours == ours:
                per_repeat.append(ours / relay)
        m = median(per_repeat)
        ratios[metric] = None if m is None else round(m, 3)
    return ratios


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()
