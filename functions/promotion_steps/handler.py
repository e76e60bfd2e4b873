"""Promotion workflow steps, plus ``record_failure`` (shared by both workflows).

The event is the whole workflow state; the return value lands at ``$.<key>.Payload``.
Errors propagate: the Lambda error type is the exception's class name, which the
state machine's ``Retry``/``Catch`` match on.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.emf_metrics import emit_metric
from flywheel.adapters.lambda_steps import workflow_step
from flywheel.composition import AwsPlatform, check_environment
from flywheel.settings import Settings
from flywheel.workflows.state import PromotionState

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flywheel.workflows.failures import WorkflowFailures
    from flywheel.workflows.promotion import PromotionSteps
    from flywheel.workflows.prompt_gate import EvaluationGate

logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(Settings)


@functools.cache
def _steps() -> PromotionSteps:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(Settings()).promotion_steps()


@functools.cache
def _failures() -> WorkflowFailures:
    return AwsPlatform(Settings()).workflow_failures()


@functools.cache
def _gate() -> EvaluationGate:
    return AwsPlatform(Settings()).evaluation_gate()


_step = workflow_step(logger, tracer, metrics)


@_step
def evaluate_candidate(event: dict[str, Any]) -> BaseModel:
    """A prompt version's evaluation gate (a model's: nothing to do)."""
    result = _gate().evaluate_candidate(PromotionState.model_validate(event))
    if result.evaluated:
        metrics.add_metric(
            "EvaluationPassed" if result.passed else "EvaluationRejected", MetricUnit.Count, 1
        )
    return result


@_step
def publish_version(event: dict[str, Any]) -> BaseModel:
    return _steps().publish_version(PromotionState.model_validate(event))


@_step
def shift_alias(event: dict[str, Any]) -> BaseModel:
    return _steps().shift_alias(PromotionState.model_validate(event))


@_step
def check_canary(event: dict[str, Any]) -> BaseModel:
    state = PromotionState.model_validate(event)
    result = _steps().check_canary(state)
    metrics.add_metric(
        "CanaryHealthy" if result.healthy else "CanaryUnhealthy", MetricUnit.Count, 1
    )
    judged = [
        psi
        for psi in (result.prediction_drift, result.reference_prediction_drift)
        if psi is not None
    ]
    if judged:
        # The canary dashboard's PredictionDrift (same namespace and dimensions as the
        # inference function's metrics): the larger of the two PSIs check_canary judged.
        emit_metric(
            str(metrics.namespace),
            "PredictionDrift",
            max(judged),
            unit=MetricUnit.NoUnit,
            dimensions={"Model": state.model_name, "Variant": "canary"},
        )
    return result


@_step
def promote_all(event: dict[str, Any]) -> BaseModel:
    return _steps().promote_all(PromotionState.model_validate(event))


@_step
def rollback(event: dict[str, Any]) -> BaseModel:
    return _steps().rollback(PromotionState.model_validate(event))


@_step
def record_failure(event: dict[str, Any]) -> BaseModel:
    """Training or promotion state: the failure is recorded consistently for either."""
    result = _failures().record(event)
    metrics.add_metric(f"{result.workflow.title()}Failed", MetricUnit.Count, 1)
    return result
