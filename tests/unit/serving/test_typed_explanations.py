"""Explained predictions of typed models (preprocessing inside the ONNX graph): one attribution
per input feature, per model column on request, sampled for other models, clear 4xx."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.byo.export_onnx import FEATURES as IRIS_FEATURES
from examples.byo.export_onnx import export
from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.errors import ConfigError, InvalidArtifactError, NotExplainableError
from flywheel.explain.artifact import Explainer
from flywheel.sdk import Flywheel
from flywheel.serving.http import error_response, parse_predict_request
from flywheel.serving.models import PredictRequest
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from tests.typed_support import holdout_records, trained_churn
from tests.unit.serving.test_handler_dependencies import TRAINING_ONLY

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[3]
#: The example's record (examples/churn/record.json): a gap, a boolean, a free-text note.
EXAMPLE = json.loads((ROOT / "examples" / "churn" / "record.json").read_text())


def _start(outcome: Any, *, explainer: bytes | None = None) -> InferenceService:
    platform = InMemoryPlatform()
    model = platform.artifacts.put("models/churn/1/model.onnx", outcome.onnx_bytes)
    data = outcome.explainer_bytes if explainer is None else explainer
    ref = platform.artifacts.put("models/churn/1/explainer.npz", data)
    draft = outcome.version_draft(model).model_copy(update={"explainer": ref})
    platform.registry.register(draft, actor="ci")
    return InferenceService.start(
        ServingSettings(model_name="churn", model_version="1"),
        registry=platform.records,
        artifacts=platform.artifacts,
        metrics=InMemoryServingMetrics(),
    )


@pytest.fixture(scope="module")
def churn() -> tuple[InferenceService, list[dict[str, Any]]]:
    outcome = trained_churn("hist_gradient_boosting")
    return _start(outcome), [EXAMPLE, *holdout_records(outcome, 5)]


def _predict(service: InferenceService, records: list[dict[str, Any]], explain: Any) -> Any:
    body = json.dumps({"records": records, "explain": explain})
    return service.predict("churn", parse_predict_request(body), request_id="r1")


def _log_odds(probability: float) -> float:
    return math.log(probability) - math.log1p(-probability)


def test_explain_true_answers_one_attribution_per_input_feature_adding_up_to_the_log_odds(
    churn,
):
    service, records = churn
    answer = _predict(service, records, True)
    assert answer.explanations is not None
    for probabilities, explanation in zip(answer.probabilities, answer.explanations, strict=True):
        assert (explanation.space, explanation.method) == ("log_odds", "tree_shap")
        assert not explanation.approximate
        assert list(explanation.attributions) == list(EXAMPLE)  # the request's features
        assert explanation.expanded is None
        logit = _log_odds(probabilities["yes"])
        total = explanation.base_value[0] + sum(v[0] for v in explanation.attributions.values())
        assert abs(total - logit) <= 1e-9 * max(1.0, abs(logit))
    # and the unhappy note of the example pushes towards churn
    assert answer.explanations[0].attributions["support_note"][0] > 0


def test_expanded_adds_attributions_per_model_column_that_sum_to_their_feature(churn):
    service, records = churn
    answer = _predict(service, records, "expanded")
    for probabilities, explanation in zip(answer.probabilities, answer.explanations, strict=True):
        columns = explanation.expanded
        assert columns is not None
        assert {"plan=basic", "plan=pro", "region=eu", "age__missing", "autopay"} <= set(columns)
        assert {"support_note:cancel", "support_note:too expensive"} <= set(columns)
        for feature, value in explanation.attributions.items():
            mine = [
                v[0]
                for name, v in columns.items()
                if name in (feature, f"{feature}__missing")
                or name.startswith((f"{feature}=", f"{feature}:"))
            ]
            assert abs(value[0] - sum(mine)) <= 1e-12, feature
        logit = _log_odds(probabilities["yes"])
        total = explanation.base_value[0] + sum(v[0] for v in columns.values())
        assert abs(total - logit) <= 1e-9 * max(1.0, abs(logit))


def test_explaining_does_not_change_the_answer(churn):
    service, records = churn
    plain = _predict(service, records, False)
    explained = _predict(service, records, "expanded")
    assert plain.explanations is None
    assert (plain.predictions, plain.probabilities) == (
        explained.predictions,
        explained.probabilities,
    )


def test_the_inference_handler_explains_a_typed_record_without_training_libraries(tmp_path):
    # A fresh interpreter: the Lambda handler, the typed model in memory, one expanded request.
    outcome = trained_churn("hist_gradient_boosting")
    (tmp_path / "model.onnx").write_bytes(outcome.onnx_bytes)
    (tmp_path / "explainer.npz").write_bytes(outcome.explainer_bytes)
    (tmp_path / "draft.json").write_text(outcome.version_draft(_ref(outcome)).model_dump_json())
    body = json.dumps({"record": EXAMPLE, "explain": "expanded"})
    script = f"""
import json, os, sys
from pathlib import Path
os.environ.update(AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_SERVICE_NAME="t",
                  POWERTOOLS_METRICS_NAMESPACE="t", POWERTOOLS_TRACE_DISABLED="true")
from flywheel.composition import InMemoryPlatform
from flywheel.adapters.memory_capture import InMemoryCaptureSink
from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.registry.models import VersionDraft
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from functions.inference import handler
from tests.serving_support import FakeContext, raw_event

folder = Path({str(tmp_path)!r})
platform = InMemoryPlatform()
model = platform.artifacts.put("models/churn/model.onnx", (folder / "model.onnx").read_bytes())
explainer = platform.artifacts.put("models/churn/explainer.npz",
                                   (folder / "explainer.npz").read_bytes())
draft = VersionDraft.model_validate_json((folder / "draft.json").read_text())
platform.registry.register(draft.model_copy(update={{"artifact": model, "explainer": explainer}}),
                           actor="ci")
service = InferenceService.start(
    ServingSettings(backend="local", model_name="churn", model_version="1"),
    registry=platform.records, artifacts=platform.artifacts, metrics=InMemoryServingMetrics(),
    sink=InMemoryCaptureSink(), background=False)
handler._service_for = lambda pin: service
response = handler.handler(raw_event({body!r}, model="churn"), FakeContext())
print(response["body"])
print(json.dumps(sorted(m for m in {list(TRAINING_ONLY)!r} if m in sys.modules)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    printed, loaded = result.stdout.decode().strip().splitlines()[-2:]
    assert json.loads(loaded) == []
    answer = json.loads(printed)
    (explanation,) = answer["explanations"]
    assert set(explanation["attributions"]) == set(EXAMPLE)
    assert "plan=basic" in explanation["expanded"]
    logit = _log_odds(answer["probabilities"][0]["yes"])
    total = explanation["base_value"][0] + sum(v[0] for v in explanation["expanded"].values())
    assert abs(total - logit) <= 1e-9 * max(1.0, abs(logit))


def _ref(outcome: Any) -> Any:
    platform = InMemoryPlatform()
    return platform.artifacts.put("models/churn/model.onnx", outcome.onnx_bytes)


def test_a_typed_model_explained_by_sampling_answers_per_feature_and_refuses_expanded():
    # Given the team's own estimator that is neither trees nor linear
    outcome = trained_churn(entrypoint="sklearn.naive_bayes:GaussianNB")
    service = _start(outcome)
    records = [EXAMPLE, *holdout_records(outcome, 2)]
    # When explained, the sampler perturbs the raw input features against the served model
    answer = _predict(service, records, True)
    for probabilities, explanation in zip(answer.probabilities, answer.explanations, strict=True):
        assert (explanation.method, explanation.space) == ("permutation_shap", "probability")
        assert explanation.approximate
        assert explanation.error_bound is not None
        assert list(explanation.attributions) == list(EXAMPLE)
        total = explanation.base_value[0] + sum(v[0] for v in explanation.attributions.values())
        assert abs(total - probabilities["yes"]) <= 1e-9
    # And it has no per-column view: asking for one is a 422 that says so
    with pytest.raises(NotExplainableError) as caught:
        _predict(service, records, "expanded")
    status, body = error_response(caught.value, request_id="r1")
    assert (status, body["error"]["code"]) == (422, "not_explainable")
    assert body["error"]["errors"][0]["field"] == "explain"
    assert "sampling its input features" in body["error"]["message"]


def test_a_preprocessing_graph_that_does_not_fit_the_model_is_refused_at_load():
    outcome = trained_churn("hist_gradient_boosting")
    data = outcome.explainer_bytes
    explainer = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
    for graph in (b"not an onnx graph", _regression_graph()):
        forged = explainer.with_preprocessing(graph).to_bytes()
        with pytest.raises(InvalidArtifactError) as caught:
            _start(outcome, explainer=forged)
        assert caught.value.field == "explainer"


def _regression_graph() -> bytes:
    """A valid preprocessing graph of another model (other features, other columns)."""
    data = trained_churn("ridge", task="regression").explainer_bytes
    other = Explainer.from_bytes(data, expected_sha256=hashlib.sha256(data).hexdigest())
    assert other.preprocessing is not None
    return other.preprocessing


def test_an_imported_onnx_model_asked_to_explain_is_a_422_that_says_why(tmp_path):
    files = export(tmp_path, sample_rows=20)
    fw = Flywheel.in_memory(actor="ana")
    fw.register_onnx(
        "iris-gb",
        files["model"],
        schema=files["schema"],
        reference=files["reference"],
        reason="import",
    )
    service = InferenceService.start(
        ServingSettings(model_name="iris-gb", model_version="1"),
        registry=fw.platform.records,
        artifacts=fw.platform.artifacts,
        metrics=InMemoryServingMetrics(),
    )
    request = PredictRequest(record=dict.fromkeys(IRIS_FEATURES, 1.0), explain=True)
    with pytest.raises(NotExplainableError, match="registered from an ONNX file") as caught:
        service.predict("iris-gb", request, request_id="r1")
    assert error_response(caught.value, request_id="r1")[0] == 422


def test_importing_an_onnx_model_over_typed_features_is_refused_naming_the_feature(tmp_path):
    outcome = trained_churn("hist_gradient_boosting")
    (tmp_path / "model.onnx").write_bytes(outcome.onnx_bytes)
    features = [
        {"name": f.name, "dtype": f.dtype, "nullable": f.nullable}
        | ({"categories": list(f.categories)} if f.categories else {})
        for f in outcome.input_schema.features
    ]
    schema = {"task": "classification", "classes": ["no", "yes"], "features": features}
    (tmp_path / "schema.yaml").write_text(json.dumps(schema))
    (tmp_path / "sample.csv").write_text("age\n1\n")
    fw = Flywheel.in_memory(actor="ana")
    with pytest.raises(ConfigError) as caught:
        fw.register_onnx(
            "churn",
            tmp_path / "model.onnx",
            schema=tmp_path / "schema.yaml",
            reference=tmp_path / "sample.csv",
            reason="import",
        )
    plan = next(i for i, f in enumerate(features) if f["name"] == "plan")
    assert caught.value.field == f"schema.features.{plan}.dtype"
    assert "not supported for an imported model" in caught.value.message
    assert fw.list_models().items == []
