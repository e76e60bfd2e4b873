"""Scheduled: copy new offline feature rows to the online store, view by view.

Materialization is incremental (from each view's stored watermark), chunked, guarded
by conditional writes (an older value never overwrites a newer one; a re-run writes
nothing) and resumable after a crash, so the schedule may fire again at any time; the
function's reserved concurrency of 1 keeps two runs from racing.  Views come from the
event (``{"views": [...]}``), else ``FLYWHEEL_FEATURE_VIEWS``, else every registered
view (its latest version).
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.emf_metrics import emit_metric
from flywheel.composition import AwsPlatform, check_environment
from flywheel.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flywheel.features import FeatureStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


check_environment(Settings)


@functools.cache
def _store() -> FeatureStore:
    """Composition root, built once per execution environment."""
    return AwsPlatform(Settings()).feature_store()


def _views(event: dict[str, Any], store: FeatureStore) -> list[str]:
    named = event.get("views") or json.loads(os.environ.get("FLYWHEEL_FEATURE_VIEWS", "[]"))
    return [str(v) for v in named] if named else [v.name for v in store.list_views()]


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:  # noqa: ARG001
    store = _store()
    runs = []
    for name in _views(event, store):
        report = store.materialize(name)
        logger.info("materialized", extra={"report": report.model_dump(mode="json")})
        for metric, value in (
            ("OnlineRowsWritten", report.written),
            ("OnlineRowsUnchanged", report.unchanged),
            ("OnlineRowsStale", report.stale),
            ("OfflineRowsRead", report.rows_read),
        ):
            emit_metric(
                str(metrics.namespace),
                metric,
                value,
                unit=MetricUnit.Count,
                dimensions={"FeatureView": name},
            )
        runs.append(report.model_dump(mode="json"))
    metrics.add_metric("ViewsMaterialized", MetricUnit.Count, len(runs))
    return {"views": runs}
