"""The benchmark harness, in miniature, so it cannot rot: both systems, one tiny level.

It checks that the harness runs end to end and that what it reports is consistent (every answer
intact, no token lost, figures present, JSON and PNG written). It asserts nothing about speed.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.harness import BenchConfig, run_bench
from bench.report import table, write_json, write_plot


def test_the_benchmark_runs_both_systems_and_reports_every_figure(
    amqp_url: str, postgres_url: str, tmp_path: Path
) -> None:
    config = BenchConfig(
        levels=(3,),
        repeats=1,
        window_s=1.5,
        ttft_ms=50,
        rate=200,
        answer_chars=80,
        ramp_s=0.2,
        think_s=0.05,
        drain_s=5,
        amqp_url=amqp_url,
        postgres_url=postgres_url,
        log_dir=tmp_path / "logs",
    )
    report = run_bench(config)
    write_json(report, tmp_path / "smoke.json")
    write_plot(report, tmp_path / "smoke.png")

    level = json.loads((tmp_path / "smoke.json").read_text())["levels"][0]
    for system in ("ours", "relay"):
        result = level[system]
        assert result["mounted"] == 3 and result["mount_failures"] == 0
        assert result["answers"] >= 3
        assert result["lost_tokens"] == 0 and result["broken_answers"] == 0
        assert result["errors"] == {}
        assert result["delivered_tokens_per_s"] > 0
        assert result["token_lag_ms"]["count"] > 0
        assert result["tier1_round_trip_ms"]["count"] > 0
        assert result["mount_ms"]["count"] == 3
        assert result["cpu_s_per_1000_tokens"]["all_services"] > 0
    assert set(level["ours"]["cpu_cores"]) >= {"gateway", "llm-worker", "history", "load-client"}
    assert level["ours_over_relay"]["token_lag_p99"] is not None
    assert (tmp_path / "smoke.png").read_bytes().startswith(b"\x89PNG")
    assert "ours/relay" in table(report)
