"""Percentiles and medians, without numpy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

PERCENTILES = (50, 95, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(values: Iterable[float], scale: float = 1.0) -> dict[str, float | int]:
    """count, p50, p95, p99 and max, multiplied by `scale` (e.g. 1000 for seconds → ms)."""
    ordered = sorted(values)
    result: dict[str, float | int] = {"count": len(ordered)}
    for p in PERCENTILES:
        result[f"p{p}"] = round(percentile(ordered, p) * scale, 3)
    result["max"] = round(ordered[-1] * scale, 3) if ordered else math.nan
    return result


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are numbers (None when there are none)."""
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(numbers) if numbers else None
