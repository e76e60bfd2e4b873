"""Training workflow steps: each Task state's function runs one of these handlers.

The event is the whole workflow state; the return value lands at ``$.<key>.Payload``.
Errors propagate: the Lambda error type is the exception's class name, which the
state machine's ``Retry``/``Catch`` match on.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.settings import Settings
from flywheel.workflows.state import ApprovalRequest, TrainingState

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext
    from pydantic import BaseModel

    from flywheel.workflows.training import TrainingSteps

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def _steps() -> TrainingSteps:
    """Composition root, built once per container from ``FLYWHEEL_*`` settings."""
    from flywheel.adapters.wiring import training_steps

    return training_steps(Settings())


def _step(run: Callable[[dict[str, Any]], BaseModel]) -> Callable[..., dict[str, Any]]:
    @logger.inject_lambda_context(correlation_id_path="run.execution_name", clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    @functools.wraps(run)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
        metrics.add_dimension("Step", run.__name__)
        try:
            result = run(event)
        except Exception:
            metrics.add_metric("StepFailed", MetricUnit.Count, 1)
            raise
        metrics.add_metric("StepSucceeded", MetricUnit.Count, 1)
        logger.info("step done", extra={"step": run.__name__, "model": event.get("model_name")})
        return result.model_dump(mode="json")

    return cast("Callable[..., dict[str, Any]]", handler)


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
