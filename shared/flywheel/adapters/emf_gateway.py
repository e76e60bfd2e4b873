"""LLM gateway metrics as CloudWatch embedded metric format: one EMF document per call.

Built like the inference path's documents (:mod:`flywheel.adapters.emf_metrics`): one
dict per call, serialized once, the directive cached per set of metric names; the
namespace and the ``POWERTOOLS_METRICS_DISABLED`` switch are Powertools ``Metrics``'.
Dimensions ``[Prompt, Variant]`` (what the canary alarms select on); the version, the
status and the error code ride along as properties (searchable in Logs Insights, not
dimensions, so a stage has one metric per prompt and variant).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools import Metrics

    from flywheel.gateway.metrics import CallReport

__all__ = ["GATEWAY_DIMENSIONS", "EmfGatewayMetrics"]

GATEWAY_DIMENSIONS: list[list[str]] = [["Prompt", "Variant"]]
_COMPACT = json.JSONEncoder(separators=(",", ":")).encode
_UNITS = {
    "Calls": MetricUnit.Count.value,
    "Errors": MetricUnit.Count.value,
    "Latency": MetricUnit.Milliseconds.value,
    "ProviderLatency": MetricUnit.Milliseconds.value,
    "InputTokens": MetricUnit.Count.value,
    "OutputTokens": MetricUnit.Count.value,
    "Cost": MetricUnit.NoUnit.value,
    "BudgetRefusals": MetricUnit.Count.value,
    "RepairRetries": MetricUnit.Count.value,
    "CaptureFailures": MetricUnit.Count.value,
    "SettleFailures": MetricUnit.Count.value,
    "ShadowSkipped": MetricUnit.Count.value,
    "GuardrailBlocked": MetricUnit.Count.value,
    "GuardrailFailures": MetricUnit.Count.value,
}


class EmfGatewayMetrics:
    """The ``GatewayMetrics`` port as EMF documents on stdout (CloudWatch Logs in Lambda).

    Every call writes ``Calls`` = 1, ``Errors`` (0 or 1), ``Latency``, ``Cost`` (0 when
    nothing was charged), ``BudgetRefusals`` and ``RepairRetries`` (0 or 1), so the
    canary alarms' expressions (``100*Errors/Calls``, ``Cost/Calls``) always have both
    terms; ``ProviderLatency`` and the token counts only when the provider was called;
    ``GuardrailBlocked`` (0 or 1) on every call of a prompt with guardrails, the blocking
    stage as property ``guardrail``.

    Examples
    --------
    >>> import io
    >>> from aws_lambda_powertools import Metrics
    >>> from flywheel.gateway.metrics import CallReport
    >>> out = io.StringIO()
    >>> emf = EmfGatewayMetrics(Metrics(namespace="Flywheel/dev"), write=out.write)
    >>> emf.call_finished(CallReport(prompt="greet", version=2, variant="canary",
    ...                              status=504, code="provider_timeout", latency_ms=60.5))
    >>> doc = json.loads(out.getvalue())
    >>> doc["Prompt"], doc["Variant"], doc["Calls"], doc["Errors"], doc["Version"]
    ('greet', 'canary', 1, 1, '2')
    >>> doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    [['Prompt', 'Variant']]
    """

    def __init__(self, metrics: Metrics, *, write: Callable[[str], Any] | None = None) -> None:
        self._metrics = metrics
        self._write = write if write is not None else sys.stdout.write
        self._disabled = is_metrics_disabled()
        self._directives: dict[tuple[str, ...], str] = {}

    @property
    def namespace(self) -> str:
        return str(self._metrics.namespace)

    def call_finished(self, report: CallReport) -> None:
        if self._disabled:
            return
        values: dict[str, Any] = {
            "Calls": 1,
            "Errors": report.errors,
            "Latency": report.latency_ms,
            "Cost": float(report.cost),
            "BudgetRefusals": report.budget_refusals,
            "RepairRetries": report.repair_retries,
        }
        if report.provider_called:
            values["ProviderLatency"] = report.provider_latency_ms
            values["InputTokens"] = report.input_tokens
            values["OutputTokens"] = report.output_tokens
        if report.capture_lost:
            values["CaptureFailures"] = report.capture_lost
        if report.settle_failures:
            values["SettleFailures"] = report.settle_failures
        if report.guarded:
            values["GuardrailBlocked"] = report.guardrail_blocked
        if report.guardrail_failures:
            values["GuardrailFailures"] = report.guardrail_failures
        properties: dict[str, Any] = {"Version": str(report.version), "status": report.status}
        if report.code is not None:
            properties["error_code"] = report.code
        if report.guardrail_stage is not None:
            properties["guardrail"] = report.guardrail_stage
        self._emit(report.prompt, report.variant, values, properties)

    def shadow_skipped(self, prompt: str, version: int, reason: str) -> None:
        if self._disabled:
            return
        self._emit(
            prompt, "shadow", {"ShadowSkipped": 1}, {"Version": str(version), "reason": reason}
        )

    def _emit(
        self, prompt: str, variant: str, values: dict[str, Any], properties: dict[str, Any]
    ) -> None:
        names = tuple(values)
        directive = self._directives.get(names)
        if directive is None:  # one per outcome shape: serialized once per environment
            directive = json.dumps(
                [
                    {
                        "Namespace": self._metrics.namespace,
                        "Dimensions": GATEWAY_DIMENSIONS,
                        "Metrics": [{"Name": name, "Unit": _UNITS[name]} for name in names],
                    }
                ],
                separators=(",", ":"),
            )
            self._directives[names] = directive
        members = _COMPACT({"Prompt": prompt, "Variant": variant, **values, **properties})
        stamp = int(time.time() * 1000)
        self._write(
            f'{{"_aws":{{"Timestamp":{stamp},"CloudWatchMetrics":{directive}}},{members[1:]}\n'
        )
