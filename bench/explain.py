"""Explanations benchmark: Flywheel's numpy TreeSHAP against shap's TreeExplainer, one run.

Run: ``.venv/bin/python bench/explain.py [--quick]``

HistGradientBoosting, GradientBoosting and RandomForest of 100 trees are trained by the
real pipeline on breast_cancer (30 features). For 1, 100 and 1,000 rows (the dataset
tiled) the table gives the median time per row of the explainer call alone:
``Explainer.explain`` (the verified artifact, what ``explain`` adds to a request) and
``shap.TreeExplainer(model).shap_values`` on the scikit-learn model (the anchor).
Then a 1-record request without and with ``explain: true`` (p50 and p99 over warm
calls), twice: ``InferenceService.predict`` in process, and the deployed entry point
``handler(event, context)`` (Powertools resolver, body parsing, validation, the service,
one EMF document, the response serialized) over the same verified artifacts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _timing import p50_p99_ms as _p50_p99_ms  # noqa: E402
from _timing import samples  # noqa: E402

MODELS = {
    "HistGB": ("hist_gradient_boosting", {"max_iter": 100, "early_stopping": False}),
    "GB": ("gradient_boosting", {"n_estimators": 100}),
    "RF": ("random_forest", {"n_estimators": 100}),
}


def _median_seconds(call: Any, repeats: int) -> float:
    return statistics.median(samples(call, repeats))


def _through_handler(service: Any, record: dict[str, Any], repeats: int) -> list[float]:
    """p50/p99 ms of the deployed entry point for one record, without and with explain."""
    import io
    import json
    from contextlib import redirect_stdout

    from functions.inference import handler as module
    from tests.serving_support import POWERTOOLS_ENV, FakeContext, raw_event

    os.environ.update(POWERTOOLS_ENV)
    original = module._service_for
    module._service_for = lambda _pin: service  # type: ignore[assignment]
    context: Any = FakeContext()  # the attributes Powertools reads
    figures: list[float] = []
    try:
        for explain in (False, True):
            event = raw_event(json.dumps({"record": record, "explain": explain}), model="bench")

            def call(event: dict[str, Any] = event) -> None:
                response = module.handler(event, context)
                assert response["statusCode"] == 200, response

            with redirect_stdout(io.StringIO()):  # EMF documents go to stdout, as in Lambda
                for _ in range(100):
                    call()
                figures.extend(_p50_p99_ms(call, repeats))
    finally:
        module._service_for = original
    return figures


def _service(outcome: Any) -> Any:
    from flywheel.adapters.memory_metrics import InMemoryServingMetrics
    from flywheel.composition import InMemoryPlatform
    from flywheel.serving.service import InferenceService
    from flywheel.serving.settings import ServingSettings

    platform = InMemoryPlatform()
    model = platform.artifacts.put("models/bench/1/model.onnx", outcome.onnx_bytes)
    explainer = platform.artifacts.put("models/bench/1/explainer.npz", outcome.explainer_bytes)
    platform.registry.register(outcome.version_draft(model, explainer=explainer), actor="bench")
    return InferenceService.start(
        ServingSettings(model_name="bench", model_version="1", intra_op_threads=1),
        registry=platform.records,
        artifacts=platform.artifacts,
        metrics=InMemoryServingMetrics(),
    )


def main() -> None:
    import hashlib

    import numpy as np
    import shap

    from flywheel.explain.artifact import Explainer
    from flywheel.serving.models import PredictRequest
    from flywheel.training.config import parse_config
    from flywheel.training.trainer import train_from_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 5 if parser.parse_args().quick else 30
    print("| model | rows | Flywheel µs/row | shap µs/row | shap / Flywheel |")
    print("|---|---:|---:|---:|---:|")
    served: list[tuple[str, float, float]] = []
    handled: list[tuple[str, list[float]]] = []
    for label, (estimator, params) in MODELS.items():
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
        data = outcome.explainer_bytes
        assert data is not None
        ours = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = shap.TreeExplainer(outcome.estimator)
        x_all = np.tile(outcome.X_holdout, (1000 // len(outcome.X_holdout) + 1, 1))
        for rows in (1, 100, 1000):
            x = x_all[:rows]
            n = repeats if rows < 1000 else max(3, repeats // 10)
            mine = _median_seconds(lambda x=x, e=ours: e.explain(x), n) / rows * 1e6
            theirs = _median_seconds(lambda x=x, r=reference: r.shap_values(x), n) / rows * 1e6
            print(f"| {label} | {rows:,} | {mine:.1f} | {theirs:.1f} | {theirs / mine:.2f}x |")
        service = _service(outcome)
        record = dict(
            zip(outcome.input_schema.feature_names, outcome.X_holdout[0].tolist(), strict=True)
        )
        plain, explained = (
            PredictRequest(record=record),
            PredictRequest(record=record, explain=True),
        )
        for _ in range(20):
            service.predict("bench", plain, request_id="w")
            service.predict("bench", explained, request_id="w")
        p50_plain = _median_seconds(
            lambda s=service, b=plain: s.predict("bench", b, request_id="r"), repeats * 10
        )
        p50_explained = _median_seconds(
            lambda s=service, b=explained: s.predict("bench", b, request_id="r"), repeats * 10
        )
        served.append((label, p50_plain * 1e3, p50_explained * 1e3))
        handled.append((label, _through_handler(service, record, repeats * 100)))
    print()
    print("| model | predict, 1 record p50 ms | with explain: true p50 ms |")
    print("|---|---:|---:|")
    for label, plain_ms, explained_ms in served:
        print(f"| {label} | {plain_ms:.3f} | {explained_ms:.3f} |")
    print()
    print("| model | handler, 1 record p50 / p99 ms | with explain: true p50 / p99 ms |")
    print("|---|---:|---:|")
    for label, (p50, p99, p50_x, p99_x) in handled:
        print(f"| {label} | {p50:.3f} / {p99:.3f} | {p50_x:.3f} / {p99_x:.3f} |")


if __name__ == "__main__":
    main()
