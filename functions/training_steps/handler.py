"""Training workflow steps: each Task state's function runs one of these handlers.

The event is the whole workflow state; the return value lands at ``$.<key>.Payload``.
Errors propagate: the Lambda error type is the exception's class name, which the
state machine's ``Retry``/``Catch`` match on.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.lambda_steps import workflow_step
from flywheel.composition import AwsPlatform, check_environment
from flywheel.settings import Settings
from flywheel.workflows.state import ApprovalRequest, TrainingState

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flywheel.workflows.training import TrainingSteps

logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(Settings)


@functools.cache
def _steps() -> TrainingSteps:
    """Composition root, built once per execution environment from ``FLYWHEEL_*`` settings."""
    return AwsPlatform(Settings()).training_steps()


_step = workflow_step(logger, tracer, metrics)


@_step
def acquire_run_lock(event: dict[str, Any]) -> BaseModel:
    result = _steps().acquire_run_lock(TrainingState.model_validate(event))
    metrics.add_metric(
        "TriggerSuppressed" if result.suppressed else "RunStarted", MetricUnit.Count, 1
    )
    return result


@_step
def validate_data(event: dict[str, Any]) -> BaseModel:
    return _steps().validate_data(TrainingState.model_validate(event))


@_step
def build_training_set(event: dict[str, Any]) -> BaseModel:
    return _steps().build_training_set(TrainingState.model_validate(event))


@_step
def train(event: dict[str, Any]) -> BaseModel:
    return _steps().train(TrainingState.model_validate(event))


@_step
def prepare_training_job(event: dict[str, Any]) -> BaseModel:
    """Models that train on AWS Batch or SageMaker: store the job's input (ADR 85)."""
    return _steps().prepare_training_job(TrainingState.model_validate(event))


@_step
def collect_training_job(event: dict[str, Any]) -> BaseModel:
    """After the job: its result, where Train's would be (``$.training.Payload``)."""
    result = _steps().collect_training_job(TrainingState.model_validate(event))
    metrics.add_metric("TrainingJobCollected", MetricUnit.Count, 1)
    return result


@_step
def evaluate(event: dict[str, Any]) -> BaseModel:
    return _steps().evaluate(TrainingState.model_validate(event))


@_step
def gate(event: dict[str, Any]) -> BaseModel:
    result = _steps().gate(TrainingState.model_validate(event))
    metrics.add_metric("GatePassed" if result.passed else "GateRejected", MetricUnit.Count, 1)
    return result


@_step
def register(event: dict[str, Any]) -> BaseModel:
    return _steps().register(TrainingState.model_validate(event))


@_step
def request_approval(event: dict[str, Any]) -> BaseModel:
    return _steps().request_approval(ApprovalRequest.model_validate(event))


@_step
def release_run_lock(event: dict[str, Any]) -> BaseModel:
    return _steps().release_run_lock(TrainingState.model_validate(event))
