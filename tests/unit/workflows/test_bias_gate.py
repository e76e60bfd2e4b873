"""Bias limits in the model config: validated, measured on the holdout, enforced by the gate."""

from __future__ import annotations

import pytest

from flywheel.drift.bias import bias_report
from flywheel.errors import ConfigError
from flywheel.monitoring.policy import BiasGatePolicy
from flywheel.workflows.config import GatePolicy, parse_model_config
from flywheel.workflows.gate import evaluate_gate
from flywheel.workflows.state import EvaluationResult, ModelScore
from tests.unit.workflows.conftest import World
from tests.unit.workflows.test_gate_and_config import PARITY, REPORT
from tests.workflow_support import MODEL, model_config

GROUPS = ["young"] * 100 + ["old"] * 100


def selection(young: int, old: int) -> list[int]:
    """Predictions where ``young`` of 100 young and ``old`` of 100 old rows are favorable."""
    return [1] * young + [0] * (100 - young) + [1] * old + [0] * (100 - old)


def scored(candidate: list[int] | None, champion: list[int] | None = None) -> EvaluationResult:
    def score(predictions: list[int] | None, version: int | None) -> ModelScore:
        bias = None if predictions is None else bias_report(GROUPS, predictions, favorable=1)
        return ModelScore(version=version, metrics={"accuracy": 0.95}, bias=bias)

    return EvaluationResult(
        candidate=score(candidate, None),
        champion=score(champion, 2) if champion is not None else None,
        holdout_rows=200,
        report=REPORT,
    )


POLICY = GatePolicy(
    metric="accuracy", bias=BiasGatePolicy(attribute="age", favorable="1", max_regression=0.02)
)


def test_a_candidate_within_the_bias_limits_passes() -> None:
    verdict = evaluate_gate(POLICY, scored(selection(50, 46)), PARITY)

    assert verdict.passed
    [check] = [c for c in verdict.checks if c.name == "bias"]
    assert check.detail.endswith("within limits")


def test_a_candidate_over_a_bias_limit_is_rejected_naming_the_gap() -> None:
    verdict = evaluate_gate(POLICY, scored(selection(60, 30)), PARITY)

    assert not verdict.passed
    [reason] = verdict.reasons
    assert reason.startswith("bias: age (favorable 1): demographic parity difference 0.300 > 0.100")
    assert "disparate impact ratio 0.500 < 0.800" in reason


def test_a_candidate_fairer_than_the_limits_but_worse_than_the_champion_is_rejected() -> None:
    verdict = evaluate_gate(POLICY, scored(selection(50, 42), champion=selection(50, 48)), PARITY)

    assert not verdict.passed
    assert "demographic parity difference rose from 0.020 to 0.080" in verdict.reasons[0]
    assert "vs champion v2" in verdict.reasons[0]


def test_unmeasurable_group_metrics_fail_the_gate() -> None:
    verdict = evaluate_gate(POLICY, scored(None), PARITY)

    assert verdict.reasons == ["bias: group metrics on 'age' could not be measured on the holdout"]


def test_bias_needs_a_classifier_and_monitoring_metrics_must_exist() -> None:
    regression = model_config(
        training={"task": "regression", "dataset": {"source": "sklearn:diabetes"},
                  "estimator": "linear_regression", "hyperparameters": {}},
        gate={"metric": "rmse", "minimums": {}, "bias": {"attribute": "age", "favorable": "1"}},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^gate\.bias: group metrics need a classification"):
        parse_model_config(regression)
    unknown = model_config(monitoring={"performance": {"metric": "auc", "min_value": 0.8}})
    with pytest.raises(ConfigError, match=r"^monitoring\.performance\.metric: unknown metric"):
        parse_model_config(unknown)
    no_rule = model_config(monitoring={"performance": {"metric": "accuracy"}})
    with pytest.raises(ConfigError, match="set min_value, max_value or max_relative_drop"):
        parse_model_config(no_rule)


def test_a_trained_challenger_that_treats_groups_unequally_is_rejected(world: World) -> None:
    # Given a gate limit on the benign rate of small vs large tumours (radius <= 14 vs above),
    # which any model of this data breaks: large tumours are mostly malignant
    world.configure(
        gate={"bias": {"attribute": "mean radius", "threshold": 14, "favorable": "benign"}}
    )

    # When a run trains a candidate
    execution = world.start_training("schedule")

    # Then the gate rejects it on the group gap, and the audit says so
    assert execution.visited[-1] == "NotPromoted"
    entry = list(world.audit.entries(MODEL))[-1]
    assert str(entry.action) == "gate_rejected"
    assert entry.reason is not None
    assert entry.reason.startswith("bias: mean radius (favorable benign): demographic parity")
    [bias] = [c for c in entry.details["checks"] if c["name"] == "bias"]
    assert bias["passed"] is False
