"""Typed features benchmark: what strings and preprocessing cost a request, in one run.

Run: ``.venv/bin/python bench/typed_features.py [--quick]``

Two models of the same width (8 input features, HistGradientBoosting, 100 trees) are
trained by the real pipeline on generated tables: **numeric** (8 numbers) and **typed**
(4 numbers, one with gaps, 3 categories and 1 short text, preprocessing inside the ONNX
graph: imputation, one-hot, word TF-IDF). Each is timed on the serving path a request
takes: ``RecordValidator.matrix`` (the schema checks: types, categories, text length)
then ``OnnxModel.predict``, for 1 and 100 records; warm, one process, ``perf_counter``
around each call. The Lambda handler adds the same Powertools and capture work to both
(bench/serving.py measures it), so the ratio here is the typed model's own cost.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
os.environ.setdefault("OMP_NUM_THREADS", "1")

NOTES = ["love the product", "cancel my account please", "billing error twice this month",
         "slow support again", "works well for our team", "question about exports"]  # fmt: skip


def _tables(folder: Path, rows: int) -> tuple[Path, Path]:
    import numpy as np

    rng = np.random.default_rng(0)
    numeric = ["a,b,c,d,e,f,g,h,y"]
    typed = ["a,b,c,d,plan,region,seat,note,y"]
    for _ in range(rows):
        x = rng.normal(size=8)
        y = "yes" if x[0] + x[4] > 0.3 else "no"
        numeric.append(",".join(f"{v:.4f}" for v in x) + f",{y}")
        a = "" if rng.random() < 0.1 else f"{x[0]:.4f}"
        plan = rng.choice(["basic", "pro", "team", "enterprise"])
        region = rng.choice(["eu", "us", "apac", "latam", "mea"])
        seat = rng.choice(["1", "5", "10", "50"])
        note = rng.choice(NOTES)
        typed.append(f"{a},{x[1]:.4f},{x[2]:.4f},{x[3]:.4f},{plan},{region},{seat},{note},{y}")
    (folder / "numeric.csv").write_text("\n".join(numeric) + "\n")
    (folder / "typed.csv").write_text("\n".join(typed) + "\n")
    return folder / "numeric.csv", folder / "typed.csv"


def _train(source: Path, typed: bool) -> Any:
    from flywheel.training.config import parse_config
    from flywheel.training.trainer import train_from_config

    features = (
        {"seat": {"type": "categorical"}, "note": {"type": "text", "max_length": 200}}
        if typed
        else {}
    )
    config = parse_config(
        {
            "model": "bench", "task": "classification", "estimator": "hist_gradient_boosting",
            "hyperparameters": {"max_iter": 100}, "seed": 1,
            "dataset": {"source": str(source), "target": "y"}, "features": features,
        }
    )  # fmt: skip
    return train_from_config(config)


def _records(outcome: Any, rows: int) -> list[dict[str, Any]]:
    names = outcome.input_schema.feature_names
    out: list[dict[str, Any]] = []
    for row in outcome.X_holdout[:rows]:
        record: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            spec = next(f for f in outcome.input_schema.features if f.name == name)
            if spec.is_string:
                record[name] = value if value is not None else None
            else:
                number = float(value)
                record[name] = None if math.isnan(number) else number
        out.append(record)
    return out


def _time(fn: Any, repeat: int) -> tuple[float, float]:
    for _ in range(min(200, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e6, samples[int(0.99 * (len(samples) - 1))] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat = 500 if args.quick else 5000

    from flywheel.serving.predictor import OnnxModel
    from flywheel.serving.validation import RecordValidator

    with tempfile.TemporaryDirectory() as folder:
        numeric_csv, typed_csv = _tables(Path(folder), 4000)
        results: list[tuple[str, int, float, float, int]] = []
        for label, source, typed in (("numeric", numeric_csv, False), ("typed", typed_csv, True)):
            outcome = _train(source, typed)
            model = OnnxModel.load(
                outcome.onnx_bytes, input_schema=outcome.input_schema,
                output_schema=outcome.output_schema,
                expected_sha256=hashlib.sha256(outcome.onnx_bytes).hexdigest(),
            )  # fmt: skip
            validator = RecordValidator(outcome.input_schema)
            for rows in (1, 100):
                records = _records(outcome, rows)
                p50, p99 = _time(
                    lambda r=records, m=model, v=validator: m.predict(v.matrix(r)), repeat
                )
                results.append((label, rows, p50, p99, len(outcome.onnx_bytes)))
    print(f"{'model':<9} {'rows':>5} {'p50 µs':>9} {'p99 µs':>9} {'ONNX bytes':>11}")
    for label, rows, p50, p99, size in results:
        print(f"{label:<9} {rows:>5} {p50:>9.1f} {p99:>9.1f} {size:>11,}")
    by = {(label, rows): p50 for label, rows, p50, _, _ in results}
    for rows in (1, 100):
        ratio = by[("typed", rows)] / by[("numeric", rows)]
        print(f"typed / numeric, {rows} row(s): {ratio:.2f}x (goal: <= 2x for 1 row)")


if __name__ == "__main__":
    main()
