"""The benchmark's outputs: a JSON report, a PNG plot and a table on stdout."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

COLOURS = {"ours": "#1f77b4", "relay": "#d62728"}
LABELS = {"ours": "five services", "relay": "minimal relay"}


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def _series(report: dict[str, Any], system: str, *path: str) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for level in report["levels"]:
        value: Any = level.get(system)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not math.isnan(value):
            xs.append(level["offered_tokens_per_s"])
            ys.append(float(value))
    return xs, ys


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ("ours", "relay") if s in report["config"]["systems"]]
    figure, (lag_axes, rate_axes) = plt.subplots(1, 2, figsize=(12, 4.8))
    for system in systems:
        colour = COLOURS[system]
        for percentile, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
            xs, ys = _series(report, system, "token_lag_ms", percentile)
            lag_axes.plot(
                xs, ys, style, marker="o", color=colour, label=f"{LABELS[system]} {percentile}"
            )
        xs, ys = _series(report, system, "delivered_tokens_per_s")
        rate_axes.plot(xs, ys, "-", marker="o", color=colour, label=LABELS[system])
    lag_axes.set_yscale("log")
    lag_axes.set_xlabel("offered load (tokens/s: sessions x token rate)")
    lag_axes.set_ylabel("token delivery lag, model emits → client receives (ms)")
    lag_axes.axhline(200, color="grey", linewidth=0.8)
    lag_axes.grid(True, which="both", alpha=0.3)
    lag_axes.legend(fontsize=8)
    top = max((level["offered_tokens_per_s"] for level in report["levels"]), default=1)
    rate_axes.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered")
    rate_axes.set_xlabel("offered load (tokens/s)")
    rate_axes.set_ylabel("delivered tokens/s")
    rate_axes.grid(True, alpha=0.3)
    rate_axes.legend(fontsize=8)
    config, machine = report["config"], report["machine"]
    loads = [run["loadavg_1m_before"] for run in report["runs"]] or [math.nan]
    figure.suptitle(
        f"Token delivery, medians of {config['repeats']} repeats · {machine['cpus']} CPUs, "
        f"load average {min(loads):.1f}-{max(loads):.1f} · TTFT {config['ttft_ms']:.0f} ms, "
        f"{config['rate']:.0f} tokens/s per session, answers of {config['answer_chars']} chars "
        f"· {report['started_at']}",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    rows = [
        (
            "sessions",
            "system",
            "tok/s",
            "tok/frame",
            "lag p50",
            "p95",
            "p99",
            "max",
            "mount p95",
            "1st-tok p95",
            "tier1 p95",
            "lost",
            "cpu s/1k tok",
            "KB/socket",
        )
    ]
    for level in report["levels"]:
        for system in ("ours", "relay"):
            r = level.get(system)
            if not r:
                continue
            lag = r["token_lag_ms"]
            rows.append(
                (
                    str(level["sessions"]),
                    system,
                    _fmt(r["delivered_tokens_per_s"]),
                    _fmt(r["tokens_per_frame"]),
                    _fmt(lag["p50"]),
                    _fmt(lag["p95"]),
                    _fmt(lag["p99"]),
                    _fmt(lag["max"]),
                    _fmt(r["mount_ms"]["p95"]),
                    _fmt(r["first_token_overhead_ms"]["p95"]),
                    _fmt(r["tier1_round_trip_ms"]["p95"]),
                    _fmt(r["lost_tokens"]),
                    _fmt(r["cpu_s_per_1000_tokens"].get("all_services")),
                    _fmt(r["memory_per_socket_kb"]),
                )
            )
        ratios = level.get("ours_over_relay")
        if ratios:
            rows.append(
                (
                    "",
                    "ours/relay",
                    _fmt(ratios["delivered_tokens_per_s"]),
                    "",
                    _fmt(ratios["token_lag_p50"]),
                    _fmt(ratios["token_lag_p95"]),
                    _fmt(ratios["token_lag_p99"]),
                    "",
                    _fmt(ratios["mount_p95"]),
                    _fmt(ratios["first_token_overhead_p95"]),
                    _fmt(ratios["tier1_round_trip_p95"]),
                    "",
                    _fmt(ratios["cpu_s_per_1000_tokens"]),
                    "",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
