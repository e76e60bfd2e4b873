"""Synthetic drift windows shared by the benchmark, the Evidently runner and the parity test.

Only numpy, so the same rows come out of the project venv and of
``bench/.venv-evidently`` (NumPy's ``default_rng`` streams are stable across
versions).  20 columns: 16 numeric (normal, lognormal, exponential and
integer-valued shapes) and 4 categorical (3 to 50 levels, skewed shares).
The current window moves six numeric columns by 0.3 standard deviations and
reweights one categorical column; the other 13 columns do not change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUMERIC = [f"num_{i:02d}" for i in range(16)]
CATEGORICAL = ["cat_a", "cat_b", "cat_c", "cat_d"]
FEATURES = NUMERIC + CATEGORICAL
LEVELS = {"cat_a": 3, "cat_b": 8, "cat_c": 20, "cat_d": 50}
DRIFTED = frozenset([*NUMERIC[:6], "cat_a"])
SHIFT = 0.3


def _numeric(rng: np.random.Generator, i: int, rows: int, moved: bool) -> np.ndarray:
    shape = i % 4
    if shape == 0:
        values = rng.normal(0.0, 1.0, rows)
        std = 1.0
    elif shape == 1:
        values = rng.lognormal(0.0, 0.5, rows)
        std = 0.6
    elif shape == 2:
        values = rng.exponential(1.0, rows)
        std = 1.0
    else:
        values = rng.poisson(6.0, rows).astype(np.float64)
        std = 6.0**0.5
    if moved:
        values = values + SHIFT * std
    return values * (1 + i) + 10.0 * i


def _categories(name: str) -> list[str]:
    return [f"{name}_{k:02d}" for k in range(LEVELS[name])]


def _codes(rng: np.random.Generator, name: str, rows: int, moved: bool) -> np.ndarray:
    levels = LEVELS[name]
    weights = 1.0 / np.arange(1, levels + 1)
    if moved:
        weights = weights[::-1]
    return rng.choice(levels, size=rows, p=weights / weights.sum()).astype(np.int32)


def window(rows: int, *, seed: int, drift: bool) -> dict[str, Any]:
    """Columns by name: float64 arrays, and ``(codes, categories)`` for categorical ones."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        columns[name] = _numeric(rng, i, rows, drift and name in DRIFTED)
    for name in CATEGORICAL:
        columns[name] = (_codes(rng, name, rows, drift and name in DRIFTED), _categories(name))
    return columns


def reference(rows: int) -> dict[str, Any]:
    return window(rows, seed=1, drift=False)


def current(rows: int) -> dict[str, Any]:
    return window(rows, seed=2, drift=True)


def labels(columns: dict[str, Any], name: str) -> np.ndarray:
    """A categorical column as an object array of strings."""
    codes, categories = columns[name]
    picked: np.ndarray = np.asarray(categories, dtype=object)[codes]
    return picked


def reset_peak_memory() -> bool:
    """Reset the process's peak RSS (Linux ``clear_refs``); ``False`` where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def memory_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process in KiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
