"""Drift scoring benchmark: Flywheel vs plain scipy vs Evidently, same data, same run.

Run: ``.venv/bin/python bench/drift.py [--rows 10000 100000 1000000] [--repeat 21]
[--no-evidently]``

Windows of 10k, 100k and 1M rows x 20 columns (16 numeric, 4 categorical; see
``bench/_drift_data.py``) are scored against a reference of the same size:

``flywheel``
    :func:`flywheel.drift.scorer.score_window` from column arrays (categoricals
    as integer codes), against a reference profile built beforehand (training
    does that once; its build time is shown apart).
``flywheel+parquet``
    The same window written as Parquet (row groups of 128Ki rows, strings
    dictionary-encoded) and decoded by :func:`profile_from_parquet` inside the
    timing.
``scipy``
    Exact tests on the raw samples per column: ``ks_2samp`` and
    ``wasserstein_distance`` (numeric), ``chisquare`` and ``jensenshannon``
    (categorical).
``evidently``
    ``Report([DataDriftPreset()])`` in ``bench/.venv-evidently`` (a subprocess;
    "not installed" when that venv is missing).  Set it up with
    ``python3 -m venv bench/.venv-evidently &&
    bench/.venv-evidently/bin/pip install 'evidently==0.7.*' 'pandas<3' pyarrow``.

Each engine runs in its own process; peak extra memory is the rise of the peak
RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) over the RSS before
scoring, with the inputs already in memory.  Flywheel's times are medians of
``--repeat`` runs (21 by default; milliseconds each), scipy's of 3 (one at 1M
rows), Evidently's of 3 (one at 1M rows, where a run takes a minute); every
median includes the first run.  The accuracy columns
compare Flywheel's KS ``D`` and normalised Wasserstein with scipy's exact values;
"agree" counts the columns where Flywheel (with ``DriftPolicy.evidently()``)
and Evidently reach the same verdict.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _drift_data as data  # noqa: E402

EVIDENTLY_PYTHON = HERE / ".venv-evidently" / "bin" / "python"
ROW_GROUP = 131_072


def _measure(run: Any, repeat: int) -> dict[str, Any]:
    """Peak extra memory of the first run, median and best time over ``repeat`` runs."""
    data.reset_peak_memory()
    before = data.memory_kib("VmRSS")
    started = time.perf_counter()
    result = run()
    times = [time.perf_counter() - started]
    peak = data.memory_kib("VmHWM")
    for _ in range(repeat - 1):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {
        "result": result,
        "seconds": statistics.median(times),
        "best": min(times),
        "peak_extra_mb": max(peak - before, 0) / 1024,
    }


def _flywheel_columns(columns: dict[str, Any]) -> dict[str, Any]:
    from flywheel.drift.profile import CategoryCodes

    return {
        name: CategoryCodes(*value) if isinstance(value, tuple) else value
        for name, value in columns.items()
    }


def _reference_profile(rows: int) -> tuple[Any, float]:
    import numpy as np

    from flywheel.drift.profile import build_profile

    ref = data.reference(rows)
    matrix = np.empty((rows, len(data.FEATURES)), dtype=object)
    for j, name in enumerate(data.FEATURES):
        matrix[:, j] = data.labels(ref, name) if name in data.CATEGORICAL else ref[name]
    started = time.perf_counter()
    profile = build_profile(matrix, data.FEATURES, categorical=data.CATEGORICAL)
    return profile, time.perf_counter() - started


def worker_flywheel(rows: int, repeat: int, *, parquet: bool) -> dict[str, Any]:
    from flywheel.drift.scorer import profile_from_parquet, score_window
    from flywheel.drift.statistics import DriftPolicy

    reference, build_seconds = _reference_profile(rows)
    columns = _flywheel_columns(data.current(rows))
    if parquet:
        payload = _parquet_bytes(data.current(rows))

        def run() -> Any:
            return score_window(reference, profile_from_parquet(payload, reference))

    else:

        def run() -> Any:
            return score_window(reference, columns)

    measured = _measure(run, repeat)
    result = measured.pop("result")
    evidently_like = score_window(reference, columns, DriftPolicy.evidently())
    return measured | {
        "build_seconds": build_seconds,
        "drifted": list(result.drifted),
        "evidently_policy": {
            f.feature: {"method": f.method, "drifted": f.drifted, "score": f.score}
            for f in evidently_like.features
        },
        "stats": {
            f.feature: {"D": f.statistics.ks_statistic, "W": f.statistics.wasserstein}
            for f in result.features
            if f.kind == "numeric"
        },
    }


def _parquet_bytes(columns: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            name: (
                pa.DictionaryArray.from_arrays(
                    pa.array(value[0]), pa.array(value[1], type=pa.string())
                )
                if isinstance(value, tuple)
                else pa.array(value)
            )
            for name, value in columns.items()
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP)
    return sink.getvalue()


def worker_scipy(rows: int, repeat: int) -> dict[str, Any]:
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    reference = data.reference(rows)
    current = data.current(rows)

    def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in data.NUMERIC:
            a, b = reference[name], current[name]
            out[name] = {
                "D": float(stats.ks_2samp(a, b).statistic),
                "W": float(stats.wasserstein_distance(a, b) / np.std(a)),
            }
        for name in data.CATEGORICAL:
            (a, levels), (b, _) = reference[name], current[name]
            ref = np.bincount(a, minlength=len(levels)).astype(float)
            cur = np.bincount(b, minlength=len(levels)).astype(float)
            keep = (ref > 0) | (cur > 0)
            stats.chisquare(cur[keep], ref[keep] / ref.sum() * cur.sum())
            distance.jensenshannon(ref / ref.sum(), cur / cur.sum())
        return out

    measured = _measure(run, repeat)
    measured["stats"] = measured.pop("result")
    return measured


def _subprocess(args: list[str], python: str = sys.executable, timeout: float = 3600) -> Any:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shared"))
    done = subprocess.run(
        [python, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _evidently_runs(rows: int) -> int:
    """Evidently's runs per size: the median of 3 below a million rows (a run there
    takes seconds and varies by 20% between runs on a shared 2-vCPU host), one at 1M."""
    return 1 if rows >= 1_000_000 else 3


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        rows, repeat = args.rows[0], args.repeat
        if args.worker == "scipy":
            print(json.dumps(worker_scipy(rows, repeat)))
        else:
            print(json.dumps(worker_flywheel(rows, repeat, parquet=args.worker == "parquet")))
        return

    script = str(Path(__file__).resolve())
    evidently = EVIDENTLY_PYTHON.exists() and not args.no_evidently
    lines = [
        "| rows x 20 cols | engine | time (median) | best | peak extra memory | "
        "vs Evidently | max abs error D / W vs scipy | verdicts = Evidently |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows in args.rows:
        print(f"... {rows:,} rows", file=sys.stderr, flush=True)
        fly = _subprocess(
            [script, "--worker", "arrays", "--rows", str(rows), "--repeat", str(args.repeat)]
        )
        pq_ = _subprocess(
            [script, "--worker", "parquet", "--rows", str(rows), "--repeat", str(args.repeat)]
        )
        sp = _subprocess(
            [
                script,
                "--worker",
                "scipy",
                "--rows",
                str(rows),
                "--repeat",
                str(1 if rows >= 1_000_000 else 3),
            ]
        )
        ev: dict[str, Any] | None = None
        if evidently:
            ev = _subprocess(
                [str(HERE / "evidently_runner.py"), "time", str(rows), str(_evidently_runs(rows))],
                python=str(EVIDENTLY_PYTHON),
            )
        d_err = max(abs(fly["stats"][c]["D"] - sp["stats"][c]["D"]) for c in data.NUMERIC)
        w_err = max(abs(fly["stats"][c]["W"] - sp["stats"][c]["W"]) for c in data.NUMERIC)
        agree = "—"
        if ev is not None:
            same = sum(
                fly["evidently_policy"][c]["drifted"] == ev["columns"][c]["drifted"]
                and fly["evidently_policy"][c]["method"] == ev["columns"][c]["method"]
                for c in data.FEATURES
            )
            agree = f"{same}/{len(data.FEATURES)}"
        ev_seconds = ev["seconds"] if ev else None

        def speed(seconds: float, ev_seconds: float | None = ev_seconds) -> str:
            return f"{ev_seconds / seconds:,.0f}x" if ev_seconds else "—"

        lines.append(
            f"| {rows:,} | flywheel (arrays) | {_ms(fly['seconds'])} | {_ms(fly['best'])} | "
            f"{fly['peak_extra_mb']:.0f} MB | {speed(fly['seconds'])} | "
            f"{d_err:.1e} / {w_err:.1e} | {agree} |"
        )
        lines.append(
            f"| {rows:,} | flywheel (Parquet decode + score) | {_ms(pq_['seconds'])} | "
            f"{_ms(pq_['best'])} | {pq_['peak_extra_mb']:.0f} MB | {speed(pq_['seconds'])} | | |"
        )
        lines.append(
            f"| {rows:,} | scipy (exact tests) | {_ms(sp['seconds'])} | {_ms(sp['best'])} | "
            f"{sp['peak_extra_mb']:.0f} MB | {speed(sp['seconds'])} | (reference) | |"
        )
        if ev is not None:
            lines.append(
                f"| {rows:,} | evidently {ev['version']} | {_ms(ev['seconds'])} | | "
                f"{ev['peak_extra_mb']:.0f} MB | 1x | | |"
            )
        else:
            lines.append(f"| {rows:,} | evidently | not installed | | | | | |")
        lines.append(
            f"| {rows:,} | (reference profile build, once at training) | "
            f"{_ms(fly['build_seconds'])} | | | | | |"
        )
    print("\n".join(lines))
    print(
        f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"drifted columns by design: {sorted(data.DRIFTED)}"
    )


if __name__ == "__main__":
    main()
