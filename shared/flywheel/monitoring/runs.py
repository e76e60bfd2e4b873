"""What the scheduled monitors share: the run record, the champion, the window, the report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from flywheel.errors import ModelNotFoundError
from flywheel.serving.capture import read_capture

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.ports import EventPublisher

__all__ = [
    "MonitorRun",
    "champion_of",
    "report_run",
    "rows_under",
    "run_models",
]

R = TypeVar("R", bound="MonitorRun")


class MonitorRun(BaseModel):
    """One monitoring run of one model: scored (with its report) or skipped (with why)."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int | None
    status: str  # scored | skipped
    reason: str | None = None
    report_json: str | None = None
    report_html: str | None = None
    event_id: str | None = None


def champion_of(registry: RegistryService, model: str) -> int | str:
    """The champion's version number, or why there is nothing to monitor.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> from flywheel.registry.service import RegistryService
    >>> audit = InMemoryAuditLog()
    >>> champion_of(RegistryService(InMemoryModelRegistry(audit), audit), "churn")
    'not registered'
    """
    try:
        champion = registry.get_model(model).champion
    except ModelNotFoundError:
        return "not registered"
    return "no champion" if champion is None else champion


def rows_under(source: CaptureSource, prefixes: Iterable[str]) -> list[dict[str, Any]]:
    """Every gzip JSON Lines row under ``prefixes`` (capture or label partitions), in order."""
    return [row for prefix in prefixes for row in read_capture(source, prefix)]


def report_run(
    artifacts: ArtifactStore,
    events: EventPublisher,
    *,
    base: str,
    document: Any,
    html: str,
    detail_type: str,
    evidence: dict[str, Any] | None,
) -> dict[str, str | None]:
    """Store ``<base>.json`` and ``<base>.html``, then publish ``detail_type`` with the
    evidence and the report's URIs unless ``evidence`` is ``None``; return the run's report
    fields (``report_json``, ``report_html``, ``event_id``)."""
    json_uri = artifacts.put_json(f"{base}.json", document).uri
    html_uri = artifacts.put(
        f"{base}.html", html.encode("utf-8"), content_type="text/html; charset=utf-8"
    ).uri
    event_id = None
    if evidence is not None:
        event_id = events.publish(detail_type, {**evidence, "report": html_uri, "result": json_uri})
    return {"report_json": json_uri, "report_html": html_uri, "event_id": event_id}


def run_models(
    models: Iterable[str],
    run: Callable[[str], R],
    *,
    log: Callable[[R], None],
    emit: Callable[[R], None],
    exclude: frozenset[str] = frozenset(),
) -> dict[str, list[dict[str, Any]]]:
    """Run a monitor for each model (what a scheduled handler does): log every run, emit
    the metrics of scored ones, answer ``{"runs": [...]}`` without the bulky fields."""
    runs = []
    for model in models:
        done = run(str(model))
        log(done)
        if done.status == "scored":
            emit(done)
        runs.append(done.model_dump(mode="json", exclude=set(exclude)))
    return {"runs": runs}
