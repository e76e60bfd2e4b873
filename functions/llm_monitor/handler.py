"""Scheduled LLM quality monitor: each prompt's serving versions, a seeded sample of their
captured calls scored by the evaluators (ADR 82).

Metrics per version (dimensions ``Prompt``, ``Version``): ``ToxicityRate``,
``Groundedness``, ``Relevance``, ``FormatFailureRate`` (those the window could judge) and
``ScoredCalls``. ``LlmQualityDegraded`` goes to the project bus, the verdict to the
registry (see :mod:`flywheel.monitoring.llm_monitor`). An evaluator that stays
unavailable fails the invocation once every prompt was tried (the schedule's target
retries it, then dead-letters the event); its failure is audited.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.composition import AwsPlatform, check_environment
from flywheel.errors import EvaluationUnavailableError
from flywheel.monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.monitoring.llm_monitor import LlmMonitorRun, LlmQualityMonitor

logger = Logger()
tracer = Tracer()
metrics = Metrics()

#: Metric of the window -> its EMF name.
METRICS = {
    "toxicity_rate": "ToxicityRate",
    "groundedness": "Groundedness",
    "relevance": "Relevance",
    "format_failure_rate": "FormatFailureRate",
}

check_environment(MonitoringSettings)


@functools.cache
def _monitor() -> LlmQualityMonitor:
    """Composition root, built once per execution environment."""
    return AwsPlatform(MonitoringSettings()).llm_quality_monitor()


def _emit(run: LlmMonitorRun) -> None:
    for version in run.versions:
        if not version.sampled:
            continue
        if metrics.metric_set:  # one document per version: flush the previous one
            metrics.flush_metrics()
        metrics.add_dimension("Prompt", run.prompt)
        metrics.add_dimension("Version", str(version.version))
        metrics.add_metric("ScoredCalls", MetricUnit.Count, version.scored)
        for name, figure in version.metrics.items():
            metrics.add_metric(METRICS[name], MetricUnit.NoUnit, figure.value)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def _handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    prompts = event.get("prompts") or MonitoringSettings().prompts
    runs: list[dict[str, Any]] = []
    failed: list[EvaluationUnavailableError] = []
    for prompt in prompts:
        try:
            done = _monitor().run(str(prompt))
        except EvaluationUnavailableError as err:
            logger.error("llm quality run failed", extra={"prompt": prompt, "error": err.to_dict()})
            failed.append(err)
            continue
        logger.info("llm quality run", extra={"run": done.model_dump(mode="json")})
        if done.status == "scored":
            _emit(done)
        runs.append(done.model_dump(mode="json"))
    if failed:
        raise failed[0]
    return {"runs": runs}


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A run with nothing to score emits no metrics and is logged with its reason;
    # Powertools would add a UserWarning to every such invocation's log.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        answer: dict[str, Any] = _handle(event, context)
    return answer
