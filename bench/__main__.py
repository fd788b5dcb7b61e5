"""`python -m bench`: the benchmark, the five services against the minimal relay.

See docs/benchmarks.md for what it measures and how to read the results.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.harness import BenchConfig, run_bench
from bench.report import table, write_json, write_plot

DEFAULTS = BenchConfig()


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(part) for part in value.split(",") if part)


def _names(value: str) -> tuple[str, ...]:
    names = tuple(part for part in value.split(",") if part)
    unknown = set(names) - {"ours", "relay"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown system(s): {', '.join(sorted(unknown))}")
    return names


def _pair(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, setting


def parse(argv: list[str] | None = None) -> tuple[BenchConfig, Path, str]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=_ints, default=DEFAULTS.levels, help="sessions per level")
    parser.add_argument("--repeats", type=int, default=DEFAULTS.repeats)
    parser.add_argument("--window", type=float, default=DEFAULTS.window_s, help="seconds")
    parser.add_argument("--ttft-ms", type=float, default=DEFAULTS.ttft_ms)
    parser.add_argument("--rate", type=float, default=DEFAULTS.rate, help="deltas/s per answer")
    parser.add_argument("--answer-chars", type=int, default=DEFAULTS.answer_chars)
    parser.add_argument("--systems", type=_names, default=DEFAULTS.systems)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--name", default="latest", help="file name of the JSON and PNG")
    parser.add_argument(
        "--ours-env",
        action="append",
        type=_pair,
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the five services (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="folder for py-spy profiles of each window"
    )
    args = parser.parse_args(argv)
    config = BenchConfig(
        levels=args.levels,
        repeats=args.repeats,
        window_s=args.window,
        ttft_ms=args.ttft_ms,
        rate=args.rate,
        answer_chars=args.answer_chars,
        systems=args.systems,
        amqp_url=os.environ.get("AMQP_URL", DEFAULTS.amqp_url),
        # A role that may create databases (`make` exports DATABASE_URL as the services' own).
        postgres_url=os.environ.get("DATABASE_ADMIN_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULTS.postgres_url,
        log_dir=args.out / "logs.tmp",
        profile_dir=args.profile,
        ours_env=tuple(args.ours_env),
    )
    return config, args.out, args.name


def main(argv: list[str] | None = None) -> None:
    config, out, name = parse(argv)
    report = run_bench(config)
    write_json(report, out / f"{name}.json")
    write_plot(report, out / f"{name}.png")
    print(table(report))
    print(f"\nwrote {out / f'{name}.json'} and {out / f'{name}.png'}")


if __name__ == "__main__":
    main()
