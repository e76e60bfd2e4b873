"""Training figures per model type: time, ONNX size, parity and latency, float64 and float32.

Run: ``.venv/bin/python bench/training_figures.py [--seed N] [--repeat R]``

For each bundled dataset (breast_cancer and iris: classification, diabetes:
regression), each estimator with its library's default hyperparameters and each
precision it offers (LightGBM and XGBoost convert in float64 only), the script
fits on the same 75/25 split Flywheel uses, converts to ONNX, and compares the
ONNX outputs with the library's on the holdout.  Parity is measured, not
enforced, so float32 models that would fail the default tolerances still show
their figures ("passes" says whether they would pass).  Times are the median of
``--repeat`` runs; latency is onnxruntime's ``run`` on 1 and 100 holdout rows
(one thread, median of 200 calls).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

PRECISIONS = ("float64", "float32")


def _measure(source: str, estimator_name: str, precision: str, seed: int) -> dict[str, Any]:
    import numpy as np

    from flywheel.registry.models import Task
    from flywheel.training.config import ParityTolerances
    from flywheel.training.conversion import (
        convert_to_onnx,
        measure_parity,
        onnx_outputs,
        sklearn_outputs,
    )
    from flywheel.training.datasets import load_dataset
    from flywheel.training.estimators import Estimator, build_estimator
    from flywheel.training.trainer import split_indices

    dataset = load_dataset(source)
    task = dataset.task
    train_idx, test_idx = split_indices(dataset.y, task=task, test_size=0.25, seed=seed)
    y_fit: Any = dataset.y[train_idx]
    if task is Task.CLASSIFICATION:
        y_fit = np.asarray(dataset.classes, dtype=object)[y_fit]
    params = {"max_iter": 5000} if estimator_name == "logistic_regression" else {}
    estimator = build_estimator(Estimator(estimator_name), task, params, seed=seed)

    started = time.perf_counter()
    estimator.fit(dataset.X[train_idx], y_fit)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    conversion = convert_to_onnx(
        estimator,
        task=task,
        n_features=dataset.n_features,
        precision="float64" if precision == "float64" else "float32",
    )
    convert_seconds = time.perf_counter() - started

    holdout = dataset.X[test_idx]
    latency = _latency(conversion.onnx_bytes, holdout)
    report = measure_parity(
        sklearn_outputs(estimator, holdout, task=task),
        onnx_outputs(conversion.onnx_bytes, holdout, task=task),
        task=task,
        precision=conversion.precision,
        tolerances=ParityTolerances(),
    )
    return {
        "fit": fit_seconds,
        "convert": convert_seconds,
        "size": len(conversion.onnx_bytes),
        "precision": conversion.precision,
        "converter": conversion.converter,
        "agreement": report.label_agreement,
        "max": report.max_abs_diff,
        "p99": report.p99_abs_diff,
        "passes": report.passed,
        **latency,
    }


def _latency(onnx_bytes: bytes, holdout: Any) -> dict[str, float]:
    """Median microseconds of ``session.run`` on 1 and 100 rows (tiled if fewer)."""
    import numpy as np

    from flywheel.training.conversion import onnx_session

    session = onnx_session(onnx_bytes)
    model_input = session.get_inputs()[0]
    dtype = np.float64 if model_input.type == "tensor(double)" else np.float32
    figures = {}
    for rows in (1, 100):
        batch = np.ascontiguousarray(np.resize(holdout, (rows, holdout.shape[1])), dtype=dtype)
        feed = {model_input.name: batch}
        session.run(None, feed)
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            session.run(None, feed)
            samples.append(time.perf_counter() - started)
        figures[f"us{rows}"] = statistics.median(samples) * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=8, help="seeds for the HGB float32 scan")
    args = parser.parse_args()

    import lightgbm
    import onnxruntime
    import skl2onnx
    import sklearn
    import xgboost

    from flywheel.training.estimators import FLOAT64_ONLY, Estimator

    print(
        f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
        f"LightGBM {lightgbm.__version__}, XGBoost {xgboost.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, seed {args.seed}, "
        f"median of {args.repeat}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    )
    cases = [
        ("sklearn:breast_cancer", "logistic_regression"),
        ("sklearn:breast_cancer", "random_forest"),
        ("sklearn:breast_cancer", "gradient_boosting"),
        ("sklearn:breast_cancer", "hist_gradient_boosting"),
        ("sklearn:breast_cancer", "lightgbm"),
        ("sklearn:breast_cancer", "xgboost"),
        ("sklearn:iris", "lightgbm"),
        ("sklearn:iris", "xgboost"),
        ("sklearn:diabetes", "linear_regression"),
        ("sklearn:diabetes", "ridge"),
        ("sklearn:diabetes", "lasso"),
        ("sklearn:diabetes", "elastic_net"),
        ("sklearn:diabetes", "random_forest"),
        ("sklearn:diabetes", "gradient_boosting"),
        ("sklearn:diabetes", "hist_gradient_boosting"),
        ("sklearn:diabetes", "lightgbm"),
        ("sklearn:diabetes", "xgboost"),
    ]
    columns = [
        ("dataset", 13),
        ("model", 22),
        ("precision", 9),
        ("converter", 14),
        ("train s", 7),
        ("convert s", 9),
        ("ONNX bytes", 10),
        ("label agr.", 10),
        ("max Δ", 8),
        ("p99 Δ", 8),
        ("passes", 6),
        ("1 row µs", 8),
        ("100 rows µs", 11),
    ]
    print("| " + " | ".join(f"{name:<{width}}" for name, width in columns) + " |")
    print("|" + "|".join("-" * (width + 2) for _, width in columns) + "|")
    for source, estimator in cases:
        for precision in ("float64",) if Estimator(estimator) in FLOAT64_ONLY else PRECISIONS:
            runs = [_measure(source, estimator, precision, args.seed) for _ in range(args.repeat)]
            last = runs[-1]
            agreement = "-" if last["agreement"] is None else f"{last['agreement']:.2%}"
            cells = [
                source.removeprefix("sklearn:"),
                estimator,
                last["precision"],
                last["converter"],
                f"{statistics.median(r['fit'] for r in runs):.3f}",
                f"{statistics.median(r['convert'] for r in runs):.4f}",
                f"{last['size']:,}",
                agreement,
                f"{last['max']:.1e}",
                f"{last['p99']:.1e}",
                "yes" if last["passes"] else "NO",
                f"{statistics.median(r['us1'] for r in runs):,.0f}",
                f"{statistics.median(r['us100'] for r in runs):,.0f}",
            ]
            print(
                "| "
                + " | ".join(
                    f"{cell:<{width}}" if i < 4 else f"{cell:>{width}}"
                    for i, (cell, (_, width)) in enumerate(zip(cells, columns, strict=True))
                )
                + " |"
            )

    print("\nfloat32 HistGradientBoosting across seeds (max Δ; NO = fails default parity):")
    for source in ("sklearn:breast_cancer", "sklearn:diabetes"):
        figures = []
        for seed in range(args.seeds):
            run = _measure(source, "hist_gradient_boosting", "float32", seed)
            figures.append(f"{run['max']:.1e}{'' if run['passes'] else ' NO'}")
        print(f"  {source.removeprefix('sklearn:'):<13} " + ", ".join(figures))


if __name__ == "__main__":
    main()
