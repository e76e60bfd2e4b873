"""Explained predictions: attributions that add up, clear 4xx, verified explainer artifacts."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from flywheel.adapters.memory_metrics import InMemoryServingMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.errors import InvalidArtifactError, InvalidRequestError, NotExplainableError
from flywheel.registry.models import ArtifactRef
from flywheel.serving.http import error_response, parse_predict_request
from flywheel.serving.models import PredictRequest
from flywheel.serving.service import InferenceService
from flywheel.serving.settings import ServingSettings
from flywheel.training.config import parse_config
from flywheel.training.trainer import train_from_config

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _serve(
    estimator: str,
    *,
    source: str = "sklearn:breast_cancer",
    explainer: bool = True,
    tamper: bool = False,
):
    task = "regression" if source == "sklearn:diabetes" else "classification"
    outcome = train_from_config(
        parse_config(
            {
                "model": "cancer",
                "task": task,
                "dataset": {"source": source},
                "estimator": estimator,
                "hyperparameters": {"n_estimators": 10} if estimator == "random_forest" else {},
            }
        )
    )
    platform = InMemoryPlatform()
    model = platform.artifacts.put("models/cancer/1/model.onnx", outcome.onnx_bytes)
    ref = None
    if explainer:
        assert outcome.explainer_bytes is not None
        ref = platform.artifacts.put("models/cancer/1/explainer.npz", outcome.explainer_bytes)
    if tamper:
        forged = platform.artifacts.put("models/cancer/1/forged.npz", b"not an explainer")
        ref = ArtifactRef.model_validate(
            {**forged.model_dump(), "sha256": hashlib.sha256(b"not an explainer").hexdigest()}
        )
    draft = outcome.version_draft(model)
    draft = draft.model_copy(update={"explainer": ref})
    platform.registry.register(draft, actor="ci")
    service = InferenceService.start(
        ServingSettings(model_name="cancer", model_version="1"),
        registry=platform.records,
        artifacts=platform.artifacts,
        metrics=InMemoryServingMetrics(),
    )
    records = [
        dict(zip(outcome.input_schema.feature_names, row, strict=True))
        for row in outcome.X_holdout[:3].tolist()
    ]
    return service, records, outcome


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "logistic_regression"])
def test_explained_prediction_adds_up_to_the_log_odds_of_the_answer(estimator):
    service, records, _ = _serve(estimator)
    answer = service.predict(
        "cancer", PredictRequest(records=records, explain=True), request_id="r1"
    )
    assert answer.explanations is not None
    assert len(answer.explanations) == 3
    for probabilities, explanation in zip(
        answer.probabilities or [], answer.explanations, strict=True
    ):
        (positive,) = explanation.outputs
        logit = np.log(probabilities[positive]) - np.log1p(-probabilities[positive])
        total = explanation.base_value[0] + sum(v[0] for v in explanation.attributions.values())
        assert explanation.space == "log_odds"
        assert not explanation.approximate
        assert len(explanation.attributions) == 30
        assert abs(total - logit) < 1e-6 * max(1.0, abs(logit))


def test_random_forest_regressor_explains_the_predicted_value():
    service, records, _ = _serve("random_forest", source="sklearn:diabetes")
    answer = service.predict(
        "cancer", PredictRequest(records=records, explain=True), request_id="r1"
    )
    for value, explanation in zip(answer.predictions, answer.explanations or [], strict=True):
        total = explanation.base_value[0] + sum(v[0] for v in explanation.attributions.values())
        assert explanation.space == "value"
        assert abs(total - float(value)) < 1e-9 * max(1.0, abs(float(value)))


def test_requests_without_the_flag_carry_no_explanations():
    service, records, _ = _serve("hist_gradient_boosting")
    answer = service.predict("cancer", PredictRequest(records=records), request_id="r1")
    assert answer.explanations is None
    assert "explanations" not in answer.model_dump_json(exclude_none=True)


@pytest.mark.parametrize("value", ['"yes"', "1", "null", '"Expanded"', "[]", '{"expanded": true}'])
def test_explain_that_is_not_a_boolean_or_expanded_is_a_400_naming_it(value):
    with pytest.raises(InvalidRequestError) as caught:
        parse_predict_request(f'{{"record": {{"x": 1}}, "explain": {value}}}')
    status, body = error_response(caught.value, request_id="r1")
    assert status == 400
    assert body["error"]["errors"] == [
        {"row": None, "field": "explain", "reason": 'must be true, false or "expanded"'}
    ]


def test_expanded_on_a_model_without_preprocessing_lists_its_input_features_as_columns():
    service, records, _ = _serve("hist_gradient_boosting")
    request = parse_predict_request(
        PredictRequest(records=records).model_dump_json(exclude_none=True)[:-1]
        + ', "explain": "expanded"}'
    )
    answer = service.predict("cancer", request, request_id="r1")
    for explanation in answer.explanations or []:
        assert explanation.expanded == explanation.attributions


def test_a_version_without_an_explainer_answers_422_not_explainable():
    service, records, _ = _serve("hist_gradient_boosting", explainer=False)
    with pytest.raises(NotExplainableError) as caught:
        service.predict("cancer", PredictRequest(records=records, explain=True), request_id="r1")
    status, body = error_response(caught.value, request_id="r1")
    assert (status, body["error"]["code"]) == (422, "not_explainable")
    assert "explain" in str(body)
    # and the same version still predicts without the flag
    assert service.predict("cancer", PredictRequest(records=records), request_id="r2").predictions


def test_an_explainer_that_is_not_one_is_refused_at_load():
    with pytest.raises(InvalidArtifactError, match="explainer"):
        _serve("hist_gradient_boosting", tamper=True)
