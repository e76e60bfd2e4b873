"""Typed features benchmark: what strings and preprocessing cost a request, in one run.

Run: ``.venv/bin/python bench/typed_features.py [--quick]``

Two models of the same width (8 input features, HistGradientBoosting, 100 trees) are
trained by the real pipeline on generated tables: **numeric** (8 numbers) and **typed**
(4 numbers, one with gaps, 3 categories and 1 short text, preprocessing inside the ONNX
graph: imputation, one-hot, word TF-IDF). Each is timed on the serving path a request
takes, for 1 and 100 records, warm, ``perf_counter`` around each call:

- ``model path``: ``RecordValidator.matrix`` (types, categories, text lengths) then
  ``OnnxModel.predict``, in this process: the typed model's own cost;
- ``handler``: the deployed entry point, ``handler(event, context)``, with the model
  registered on a local moto server (as bench/serving.py sets it up), one fresh
  process per model: what a request costs (the issue's goal: typed within 2x).

Then the typed model's explanations (ADR 71): ``InferenceService.predict`` in process
without ``explain``, with ``explain: true`` and with ``explain: "expanded"`` (p50),
and what the explainer adds at load (opening its preprocessing graph's session).
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


def _handler_latency(kind: str, folder: Path, repeat: int) -> None:
    """Child process: register the ``kind`` model on moto, time the handler, print JSON."""
    import contextlib
    import io
    import json

    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    import serving  # the serving benchmark's moto set-up

    config = {
        "model": serving.MODEL, "task": "classification",
        "estimator": "hist_gradient_boosting", "hyperparameters": {"max_iter": 100}, "seed": 1,
        "dataset": {"source": str(folder / f"{kind}.csv"), "target": "y"},
        "features": (
            {"seat": {"type": "categorical"}, "note": {"type": "text", "max_length": 200}}
            if kind == "typed"
            else {}
        ),
    }  # fmt: skip
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    with contextlib.redirect_stdout(sys.stderr):
        setup = serving._setup(path)
    from functions.inference import handler as lambda_handler
    from tests.serving_support import FakeContext, raw_event

    outcome = _train(folder / f"{kind}.csv", kind == "typed")
    timings = {}
    for rows in (1, 100):
        event = raw_event(json.dumps({"records": _records(outcome, rows)}), model=serving.MODEL)
        context = FakeContext()

        def call(event: dict[str, Any] = event, context: Any = context) -> None:
            response = lambda_handler.handler(event, context)
            assert response["statusCode"] == 200, response

        with contextlib.redirect_stdout(io.StringIO()):  # EMF lines
            timings[rows] = _time(call, repeat if rows == 1 else max(repeat // 10, 100))
    from flywheel.local import server as moto_server

    moto_server.stop(setup["home"])
    print(json.dumps({str(k): v for k, v in timings.items()}))


def _explanations(outcome: Any, repeat: int) -> None:
    """The typed model's explained predictions on the service path, and the load cost."""
    import json

    from flywheel.adapters.memory_metrics import InMemoryServingMetrics
    from flywheel.composition import InMemoryPlatform
    from flywheel.explain.artifact import Explainer
    from flywheel.serving.http import parse_predict_request
    from flywheel.serving.predictor import OnnxFeatures
    from flywheel.serving.service import InferenceService
    from flywheel.serving.settings import ServingSettings

    platform = InMemoryPlatform()
    model = platform.artifacts.put("models/bench/1/model.onnx", outcome.onnx_bytes)
    explainer = platform.artifacts.put("models/bench/1/explainer.npz", outcome.explainer_bytes)
    platform.registry.register(outcome.version_draft(model, explainer=explainer), actor="bench")
    service = InferenceService.start(
        ServingSettings(model_name="bench", model_version="1", intra_op_threads=1),
        registry=platform.records, artifacts=platform.artifacts, metrics=InMemoryServingMetrics(),
    )  # fmt: skip
    loaded = Explainer.from_bytes(outcome.explainer_bytes, expected_sha256=explainer.sha256)
    assert loaded.preprocessing is not None
    graph = loaded.preprocessing
    opened = _time(
        lambda: OnnxFeatures.load(graph, input_schema=outcome.input_schema,
                                  width=len(loaded.columns), intra_op_threads=1),
        max(repeat // 50, 20),
    )  # fmt: skip
    print(
        f"\ntyped explanations ({loaded.kind}, {len(loaded.columns)} columns; explainer "
        f"{len(outcome.explainer_bytes):,} bytes, preprocessing graph {len(graph):,} bytes, "
        f"its session opens in {opened[0] / 1000:.1f} ms at load)"
    )
    print(f"{'rows':>5} {'explain':>10} {'service p50 µs':>15} {'service p99 µs':>15}")
    for rows in (1, 100):
        records = _records(outcome, rows)
        for flag in (False, True, "expanded"):
            request = parse_predict_request(json.dumps({"records": records, "explain": flag}))

            def call(request: Any = request) -> None:
                service.predict("bench", request, request_id="r")

            p50, p99 = _time(call, repeat if rows == 1 else max(repeat // 10, 100))
            print(f"{rows:>5} {json.dumps(flag):>10} {p50:>15.1f} {p99:>15.1f}")
    service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--handler", choices=["numeric", "typed"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeat = 500 if args.quick else 5000
    if args.handler:
        _handler_latency(args.handler, args.folder, repeat)
        return

    from flywheel.serving.predictor import OnnxModel
    from flywheel.serving.validation import RecordValidator

    with tempfile.TemporaryDirectory() as folder:
        numeric_csv, typed_csv = _tables(Path(folder), 4000)
        results: list[tuple[str, int, float, float, int]] = []
        handler: dict[tuple[str, int], tuple[float, float]] = {}
        for label in ("numeric", "typed"):
            import json
            import subprocess

            child = subprocess.run(
                [sys.executable, __file__, "--handler", label, "--folder", str(folder),
                 *(["--quick"] if args.quick else [])],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            for rows, (p50, p99) in json.loads(child.stdout.strip().splitlines()[-1]).items():
                handler[(label, int(rows))] = (p50, p99)
        for label, source, typed in (("numeric", numeric_csv, False), ("typed", typed_csv, True)):
            outcome = typed_outcome = _train(source, typed)
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
    print(
        f"{'model':<9} {'rows':>5} {'path p50 µs':>12} {'path p99 µs':>12} "
        f"{'handler p50 µs':>15} {'handler p99 µs':>15} {'ONNX bytes':>11}"
    )
    for label, rows, p50, p99, size in results:
        h50, h99 = handler[(label, rows)]
        print(
            f"{label:<9} {rows:>5} {p50:>12.1f} {p99:>12.1f} {h50:>15.1f} {h99:>15.1f} {size:>11,}"
        )
    _explanations(typed_outcome, repeat)
    by = {(label, rows): p50 for label, rows, p50, _, _ in results}
    for rows in (1, 100):
        path = by[("typed", rows)] / by[("numeric", rows)]
        whole = handler[("typed", rows)][0] / handler[("numeric", rows)][0]
        print(
            f"typed / numeric, {rows} row(s): model path {path:.2f}x, handler {whole:.2f}x"
            + (" (goal: handler <= 2x)" if rows == 1 else "")
        )


if __name__ == "__main__":
    main()
