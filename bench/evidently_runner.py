"""Run Evidently's DataDriftPreset; executed by ``bench/.venv-evidently/bin/python`` only.

Evidently stays out of the project venv (about 1 GB of dependencies, pins of its
own).  Two modes, each printing one JSON object on stdout:

``time ROWS [REPEAT]``
    Score the benchmark windows (``bench/_drift_data.py``) of ``ROWS`` rows
    ``REPEAT`` times (default 1) and report the median seconds, every run's
    seconds, the first run's peak extra RSS and the per-column verdicts.
``verdicts NPZ [NPZ ...]``
    Score arrays saved by the parity test (``reference__<col>``, ``current__<col>``
    and ``categorical`` naming the categorical columns) and report verdicts, one
    result per file (a list).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _drift_data as data

P_VALUE_METHODS = ("K-S p_value", "chi-square p_value", "Z-test p_value")


def _method_name(label: str) -> str:
    names = {
        "K-S p_value": "ks",
        "chi-square p_value": "chi_square",
        "Z-test p_value": "z",
        "Wasserstein distance (normed)": "wasserstein",
        "Jensen-Shannon distance": "jensen_shannon",
        "PSI": "psi",
    }
    return names.get(label, label)


def _run(
    reference: Any, current: Any, numeric: list[str], categorical: list[str]
) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    out: dict[str, Any] = {"columns": {}}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            out["share"] = metric["value"]["share"]
            out["dataset_drift"] = metric["value"]["share"] >= config.get("drift_share", 0.5)
        elif config["type"].endswith("ValueDrift"):
            method, threshold, score = config["method"], config["threshold"], metric["value"]
            if method == "K-S p_value":
                drifted = score <= threshold
            elif method in P_VALUE_METHODS:
                drifted = score < threshold
            else:
                drifted = score >= threshold
            out["columns"][config["column"]] = {
                "method": _method_name(method),
                "threshold": threshold,
                "score": score,
                "drifted": bool(drifted),
            }
    return out


def _frame(columns: dict[str, Any]) -> Any:
    import pandas as pd

    frame = {}
    for name, value in columns.items():
        if isinstance(value, tuple):
            codes, categories = value
            frame[name] = pd.Categorical.from_codes(codes, categories=categories)
        else:
            frame[name] = value
    return pd.DataFrame(frame)


def time_mode(rows: int, repeat: int = 1) -> dict[str, Any]:
    import statistics

    import evidently

    reference = _frame(data.reference(rows))
    current = _frame(data.current(rows))
    data.reset_peak_memory()
    before = data.memory_kib("VmRSS")
    started = time.perf_counter()
    result = _run(reference, current, data.NUMERIC, data.CATEGORICAL)
    runs = [time.perf_counter() - started]
    peak = data.memory_kib("VmHWM")
    for _ in range(repeat - 1):
        started = time.perf_counter()
        _run(reference, current, data.NUMERIC, data.CATEGORICAL)
        runs.append(time.perf_counter() - started)
    result |= {
        "seconds": statistics.median(runs),
        "runs": runs,
        "peak_extra_mb": max(peak - before, 0) / 1024,
        "version": evidently.__version__,
    }
    return result


def verdicts_mode(path: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    arrays = np.load(path, allow_pickle=False)
    categorical = [str(c) for c in arrays["categorical"]]
    names = sorted({k.split("__", 1)[1] for k in arrays.files if "__" in k})
    frames = {}
    for side in ("reference", "current"):
        frames[side] = pd.DataFrame({name: arrays[f"{side}__{name}"] for name in names})
    numeric = [n for n in names if n not in categorical]
    return _run(frames["reference"], frames["current"], numeric, categorical)


def main() -> None:
    warnings.filterwarnings("ignore")
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "time":
        repeat = int(arguments[1]) if len(arguments) > 1 else 1
        print(json.dumps(time_mode(int(arguments[0]), repeat)))
    else:
        print(json.dumps([verdicts_mode(path) for path in arguments]))


if __name__ == "__main__":
    main()
