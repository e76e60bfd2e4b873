"""Timing shared by the benchmarks: wall-clock samples of a call, and their p50 / p99."""

from __future__ import annotations

import statistics
import time
from typing import Any


def samples(call: Any, repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``call`` (``perf_counter``)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def p50_p99_ms(call: Any, repeats: int) -> tuple[float, float]:
    """Median and 99th percentile of ``repeats`` calls, in milliseconds."""
    return percentiles_ms(samples(call, repeats))


def percentiles_ms(times: list[float]) -> tuple[float, float]:
    """Median and 99th percentile of durations in seconds, in milliseconds."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]
    return statistics.median(ordered) * 1e3, p99 * 1e3
