"""The one wrapper every Step Functions task handler uses (Powertools logging, tracing, EMF)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from pydantic import BaseModel

Step = Callable[[dict[str, Any]], "BaseModel"]
Handler = Callable[..., dict[str, Any]]


def workflow_step(logger: Logger, tracer: Tracer, metrics: Metrics) -> Callable[[Step], Handler]:
    """Turn ``run(state) -> result`` into a Lambda handler for a workflow task.

    The correlation id is the execution name; ``StepSucceeded``/``StepFailed`` are
    counted per step; errors propagate, so the Lambda error type is the exception's
    class name (what the state machine's ``Retry``/``Catch`` match on).

    Examples
    --------
    >>> import contextlib, io, json
    >>> from types import SimpleNamespace
    >>> from aws_lambda_powertools import Logger, Metrics, Tracer
    >>> from flywheel.workflows.state import ReleaseResult
    >>> logs = io.StringIO()
    >>> logger = Logger(service="example-release-run-lock", stream=logs, level="INFO")
    >>> step = workflow_step(logger, Tracer(), Metrics(namespace="Flywheel/dev"))
    >>> @step
    ... def release_run_lock(state):
    ...     return ReleaseResult(released=True)
    >>> context = SimpleNamespace(  # what Lambda passes
    ...     function_name="flywheel-dev-release-run-lock", memory_limit_in_mb=512,
    ...     invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:release",
    ...     aws_request_id="c6af9ac6-7b61-11e6-9a41-93e812345678",
    ... )
    >>> with contextlib.redirect_stdout(io.StringIO()) as emf:
    ...     result = release_run_lock({"model_name": "iris", "run": {"execution_name": "run-1"}},
    ...                               context)
    >>> result, json.loads(logs.getvalue())["correlation_id"]
    ({'released': True}, 'run-1')
    >>> json.loads(emf.getvalue())["StepSucceeded"]
    [1.0]
    """

    def decorate(run: Step) -> Handler:
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

        return cast("Handler", handler)

    return decorate
