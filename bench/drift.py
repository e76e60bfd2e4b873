"""Drift scoring benchmark: Flywheel vs plain scipy vs Evidently, same data, same run.

Run: ``.venv/bin/python bench/drift.py [--rows 10000 100000 1000000] [--repeat 21]
[--no-evidently] [--attribution-only]``

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

A second table times attribution drift (ADR 73) in a whole ``DriftMonitor.run`` on a
100,000-row captured window of breast_cancer's 30 features (100 gzip JSON Lines objects
in memory), for a champion explained by TreeSHAP (HistGradientBoosting, 100 trees),
linear SHAP (logistic regression) and sampled SHAP (the HistGB model, 100 rows): the
run with attribution drift on and off (medians of ``--repeat`` runs, at most 7,
alternating), their difference, and the steps alone: sampling the window while it is
read, loading the verified champion, explaining the sample and comparing rankings.
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
from datetime import UTC, datetime
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


#: The simulated clock of the attribution runs: the window is the hour before it.
_NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
ATTRIBUTION_WINDOW = 100_000
ATTRIBUTION_SAMPLE = 2_000
ATTRIBUTION_OBJECT_ROWS = 1_000
ATTRIBUTION_MODELS = {
    "TreeSHAP (HistGB, 100 trees)": (
        "hist_gradient_boosting",
        {"max_iter": 100, "early_stopping": False},
        False,
    ),
    "linear SHAP (logistic regression)": ("logistic_regression", {}, False),
    "sampled SHAP (HistGB, 100 rows)": (
        "hist_gradient_boosting",
        {"max_iter": 100, "early_stopping": False},
        True,
    ),
}


def _explainable_champion(estimator: str, params: dict[str, Any], sampled: bool) -> Any:
    """An in-memory platform whose champion (``bench`` v1) has a verified explainer."""
    import hashlib

    from flywheel.clock import FixedClock
    from flywheel.composition import InMemoryPlatform
    from flywheel.explain.artifact import Explainer
    from flywheel.explain.sampling import PermutationShap
    from flywheel.training.config import parse_config
    from flywheel.training.conversion import onnx_session
    from flywheel.training.explainers import (
        BACKGROUND_ROWS,
        PERMUTATIONS,
        model_output_function,
    )
    from flywheel.training.trainer import train_from_config

    outcome = train_from_config(
        parse_config(
            {
                "model": "bench",
                "task": "classification",
                "dataset": {"source": "sklearn:breast_cancer"},
                "estimator": estimator,
                "hyperparameters": params,
            }
        )
    )
    platform = InMemoryPlatform(clock=FixedClock(_NOW))
    explainer_bytes = outcome.explainer_bytes
    assert explainer_bytes is not None
    importance = outcome.importance
    if sampled:  # what a model without an exact explainer registers, importance included
        names = tuple(outcome.input_schema.feature_names)
        sampler = PermutationShap(
            background=outcome.X_holdout[:BACKGROUND_ROWS], permutations=PERMUTATIONS, seed=0
        )
        classes = outcome.output_schema.classes
        explainer = Explainer.sampling(
            sampler, columns=names, outputs=(classes[1],), space="probability"
        )
        model = model_output_function(
            onnx_session(outcome.onnx_bytes), task=outcome.output_schema.task, classes=classes
        )
        importance = explainer.importance(outcome.X_holdout, model=model)
        explainer_bytes = explainer.to_bytes()
    onnx = platform.artifacts.put("models/bench/1/model.onnx", outcome.onnx_bytes)
    stored = platform.artifacts.put("models/bench/1/explainer.npz", explainer_bytes)
    assert stored.sha256 == hashlib.sha256(explainer_bytes).hexdigest()
    profile = platform.artifacts.put_json(
        "models/bench/1/profile.json", outcome.profile.model_dump(mode="json")
    )
    draft = outcome.version_draft(onnx, reference_profile=profile).model_copy(
        update={"explainer": stored, "importance": importance}
    )
    registry = platform.registry
    registry.register(draft, actor="bench")
    registry.request_approval("bench", 1, actor="bench")
    registry.approve("bench", 1, actor="ana", reason="bench")
    registry.promote("bench", 1, actor="ana", reason="bench")
    return platform


def _captured_window(platform: Any, rows: int) -> list[dict[str, float]]:
    """``rows`` records like breast_cancer (resampled, 2% noise) captured as serving does."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from flywheel.serving.capture import capture_key, encode_rows

    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    rng = np.random.default_rng(0)
    x = data.data[rng.integers(0, len(data.data), rows)]
    x = x * rng.normal(1.0, 0.02, x.shape)
    records = [dict(zip(names, row, strict=True)) for row in x.tolist()]
    stamp = _NOW.timestamp()
    for start in range(0, rows, ATTRIBUTION_OBJECT_ROWS):
        body = encode_rows(
            [
                {"request_id": f"r{start + i}", "row": 0, "model": "bench", "version": 1,
                 "variant": "champion", "features": record, "prediction": "benign"}
                for i, record in enumerate(records[start : start + ATTRIBUTION_OBJECT_ROWS])
            ]
        )  # fmt: skip
        platform.capture.put(capture_key("bench", 1, stamp + start / rows), body)
    return records


def worker_attribution(rows: int, repeat: int, sample: int) -> dict[str, Any]:
    from flywheel.drift.attribution import AttributionPolicy
    from flywheel.monitoring.attribution import RecordSample, measure_attribution_drift
    from flywheel.monitoring.drift_monitor import DriftMonitor
    from flywheel.serving.service import ServedModel

    out: dict[str, Any] = {}
    for label, (estimator, params, sampled) in ATTRIBUTION_MODELS.items():
        platform = _explainable_champion(estimator, params, sampled)
        records = _captured_window(platform, rows)
        policy = AttributionPolicy(sample_rows=sample)

        def monitor(policy: AttributionPolicy, platform: Any = platform) -> DriftMonitor:
            return DriftMonitor(
                registry=platform.registry, artifacts=platform.artifacts,
                capture=platform.capture, events=platform.events(), clock=platform.clock,
                attribution=policy,
            )  # fmt: skip

        on, off = monitor(policy), monitor(AttributionPolicy(enabled=False))
        runs = min(repeat, 7)
        on_times, off_times, result = [], [], None
        for _ in range(runs):
            started = time.perf_counter()
            result = on.run("bench")
            on_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            off.run("bench")
            off_times.append(time.perf_counter() - started)
        assert result is not None
        assert result.result is not None
        drift = result.result.attribution_drift
        assert drift is not None
        assert drift.ndcg is not None, drift.reason
        steps: dict[str, list[float]] = {"sample": [], "load": [], "explain": []}
        for _ in range(runs):
            started = time.perf_counter()
            sampler = RecordSample(policy.sample_rows, policy.seed)
            for start in range(0, rows, ATTRIBUTION_OBJECT_ROWS):
                sampler.offer(records[start : start + ATTRIBUTION_OBJECT_ROWS])
            steps["sample"].append(time.perf_counter() - started)
            started = time.perf_counter()
            served = ServedModel.load(
                platform.records, platform.artifacts, "bench", 1, max_records=sample
            )
            steps["load"].append(time.perf_counter() - started)
            started = time.perf_counter()
            measure_attribution_drift(served, sampler, policy)
            steps["explain"].append(time.perf_counter() - started)
        out[label] = {
            "on": statistics.median(on_times),
            "off": statistics.median(off_times),
            "added": statistics.median(a - b for a, b in zip(on_times, off_times, strict=True)),
            **{name: statistics.median(times) for name, times in steps.items()},
            "explained": drift.sample_rows,
            "ndcg": drift.ndcg,
        }
    return out


def _attribution_table(rows: int, repeat: int, sample: int) -> list[str]:
    script = str(Path(__file__).resolve())
    found = _subprocess(
        [script, "--worker", "attribution", "--rows", str(rows), "--repeat", str(repeat),
         "--sample", str(sample)]
    )  # fmt: skip
    lines = [
        f"| explainer ({rows:,}-row window) | rows explained | drift run, attribution on | "
        "off | added by attribution drift | sample while reading | load verified champion | "
        "explain + compare | NDCG |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in found.items():
        lines.append(
            f"| {label} | {r['explained']:,} | {_ms(r['on'])} | {_ms(r['off'])} | "
            f"{_ms(r['added'])} | {_ms(r['sample'])} | {_ms(r['load'])} | "
            f"{_ms(r['explain'])} | {r['ndcg']:.4f} |"
        )
    return lines


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
    parser.add_argument("--attribution-only", action="store_true")
    parser.add_argument("--sample", type=int, default=ATTRIBUTION_SAMPLE, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        rows, repeat = args.rows[0], args.repeat
        if args.worker == "attribution":
            print(json.dumps(worker_attribution(rows, repeat, args.sample)))
        elif args.worker == "scipy":
            print(json.dumps(worker_scipy(rows, repeat)))
        else:
            print(json.dumps(worker_flywheel(rows, repeat, parquet=args.worker == "parquet")))
        return

    if args.attribution_only:
        print("\n".join(_attribution_table(ATTRIBUTION_WINDOW, args.repeat, args.sample)))
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
    print()
    print("\n".join(_attribution_table(ATTRIBUTION_WINDOW, args.repeat, args.sample)))


if __name__ == "__main__":
    main()
