"""Delayed ground truth: ``POST /v1/feedback`` labels captured predictions, once.

A prediction is addressed by the ``request_id`` the inference API returned and the
``row`` of the record in that request (0 for single-record requests), exactly the
``request_id`` / ``row`` of its capture row (:mod:`flywheel.serving.capture`).  Labels
are checked against the champion's output schema (a class it can predict, or a finite
number for a regressor) and written as one gzip JSON Lines object per request,
partitioned by the hour they arrived.  Each (model, request id, row) is claimed once in
the idempotency table with its label: the same label again stores nothing and answers
``duplicate``; a different label for a claimed prediction is a
:class:`~flywheel.errors.LabelConflictError` (409) and nothing of that request is
stored, so a batch is all or nothing on conflicts (ADR 41).

Notes
-----
A body carries one label or a batch::

    {"model": "churn", "request_id": "7f1c…", "label": "yes"}
    {"model": "churn", "labels": [{"request_id": "7f1c…", "row": 0, "label": "yes"},
                                  {"request_id": "7f1c…", "row": 1, "label": "no"}]}

Stored objects and their lines::

    labels/model=<m>/date=YYYY-MM-DD/hour=HH/<uuid>.jsonl.gz
    {"request_id": "7f1c…", "row": 0, "label": "yes", "received_at": "…Z", "model": "churn"}
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BeforeValidator, Field, field_validator

from flywheel.errors import (
    FlywheelError,
    InvalidLabelsError,
    InvalidRequestError,
    LabelConflictError,
    PayloadTooLargeError,
)
from flywheel.models import Frozen
from flywheel.monitoring.runs import rows_under
from flywheel.registry.models import Task, validate_model_name
from flywheel.serving.capture import encode_rows

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from flywheel.clock import Clock
    from flywheel.registry.models import OutputSchema
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSink, CaptureSource

__all__ = [
    "DEFAULT_LABELS_PREFIX",
    "MAX_LABELS",
    "FeedbackReceipt",
    "FeedbackRequest",
    "FeedbackService",
    "LabelClaims",
    "LabelItem",
    "LabelResult",
    "claim_key",
    "hourly_prefixes",
    "label_key",
    "read_labels",
]

DEFAULT_LABELS_PREFIX = "labels/"
#: The most labels one request may carry (413 beyond).
MAX_LABELS = 100
#: Claims expire (DynamoDB TTL) after this long; a label sent again later is stored again.
CLAIM_DAYS = 90

RequestId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="The request_id the inference API returned for the prediction.",
    ),
]
Row = Annotated[int, Field(ge=0, le=100_000, description="The record's index in its request.")]


def _label_value(value: Any) -> str | float:
    """A label is a string (a class) or a finite number (a regression target)."""
    if isinstance(value, str):
        if not 1 <= len(value) <= 256:
            raise ValueError("must be 1-256 characters")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a string (a class) or a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("must be a finite number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


LabelValue = Annotated[
    str | float,
    BeforeValidator(_label_value),
    Field(description="Classifiers: the true class; regressors: the true value."),
]


class LabelItem(Frozen):
    """One label in a batch."""

    request_id: RequestId
    row: Row = 0
    label: LabelValue


class FeedbackRequest(Frozen):
    """The body of ``POST /v1/feedback``: one label (``request_id``, ``row``, ``label``) or
    a batch (``labels``), never both.

    Examples
    --------
    >>> FeedbackRequest(model="churn", request_id="r-1", label="yes").items()[0].row
    0
    >>> len(FeedbackRequest(model="churn", labels=[{"request_id": "r-1", "label": 1}]).items())
    1
    """

    model: str = Field(description="The model that made the predictions.")
    labels: list[LabelItem] | None = Field(
        default=None, description=f"A batch of at most {MAX_LABELS} labels."
    )
    request_id: RequestId | None = None
    row: Row | None = None
    label: LabelValue | None = None

    @field_validator("model")
    @classmethod
    def _valid_model(cls, name: str) -> str:
        return validate_model_name(name)

    def items(self) -> list[LabelItem]:
        """The labels, however they were sent.

        Raises
        ------
        InvalidRequestError
            Both shapes, or neither, or a single label without its ``request_id``.
        """
        single = (self.request_id, self.row, self.label)
        if self.labels is not None:
            if any(v is not None for v in single):
                raise InvalidRequestError(
                    "labels: send either labels (a batch) or request_id and label, not both",
                    field="labels",
                )
            return list(self.labels)
        if self.request_id is None or self.label is None:
            missing = "request_id" if self.request_id is None else "label"
            raise InvalidRequestError(
                f"{missing}: is required (or send a batch in labels)", field=missing
            )
        return [LabelItem(request_id=self.request_id, row=self.row or 0, label=self.label)]


class LabelResult(Frozen):
    request_id: str
    row: int
    status: Literal["stored", "duplicate"]


class FeedbackReceipt(Frozen):
    """What happened to each label of a request."""

    model: str
    received: int = Field(description="Labels in the request.")
    stored: int = Field(description="Labels stored now.")
    duplicates: int = Field(description="Labels that were stored before (nothing written).")
    results: list[LabelResult]


@runtime_checkable
class LabelClaims(Protocol):
    """One label per prediction (the port): the idempotency table in AWS, a dict in tests.

    Keys are :func:`claim_key` strings; values are the label as canonical JSON.
    """

    def find(self, keys: Sequence[str]) -> dict[str, str]:
        """The labels already claimed for any of ``keys``."""
        ...

    def claim(self, key: str, label: str, *, expires_at: datetime) -> str | None:
        """Claim ``key`` for ``label``; ``None`` on success, else the label that holds it."""
        ...

    def release(self, key: str, label: str) -> None:
        """Undo this label's claim (when storing the labels failed); others are left alone."""
        ...


def claim_key(model: str, request_id: str, row: int) -> str:
    """The idempotency key of one prediction's label.

    Examples
    --------
    >>> claim_key("churn", "r-1", 0)
    'feedback#churn#r-1#0'
    """
    return f"feedback#{model}#{request_id}#{row}"


def label_key(request_id: str, row: int) -> str:
    """How predictions and labels are joined: ``request_id`` and ``row``.

    Examples
    --------
    >>> label_key("r-1", 2)
    'r-1#2'
    """
    return f"{request_id}#{row}"


def hourly_prefixes(base: str, start: datetime, end: datetime) -> list[str]:
    """``<base>date=YYYY-MM-DD/hour=HH/`` for every hour from ``start`` to ``end`` inclusive.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> hourly_prefixes("labels/model=m/", datetime(2026, 1, 1, 23, 30, tzinfo=UTC),
    ...                 datetime(2026, 1, 2, 0, 5, tzinfo=UTC))
    ['labels/model=m/date=2026-01-01/hour=23/', 'labels/model=m/date=2026-01-02/hour=00/']
    """
    moment = start.replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while moment <= end:
        prefixes.append(f"{base}date={moment:%Y-%m-%d}/hour={moment:%H}/")
        moment += timedelta(hours=1)
    return prefixes


def read_labels(
    source: CaptureSource,
    model: str,
    start: datetime,
    end: datetime,
    *,
    prefix: str = DEFAULT_LABELS_PREFIX,
) -> list[dict[str, Any]]:
    """Every label of ``model`` received from ``start`` to ``end`` (hour partitions).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
    >>> sink = InMemoryCaptureSink()
    >>> sink.put("labels/model=m/date=2026-01-01/hour=12/a.jsonl.gz",
    ...          encode_rows([{"request_id": "r", "row": 0, "label": "yes"}]))
    >>> noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> [r["label"] for r in read_labels(sink, "m", noon, noon)]
    ['yes']
    """
    return rows_under(source, hourly_prefixes(f"{prefix}model={model}/", start, end))


def _canonical(label: str | float) -> str:
    return json.dumps(label, separators=(",", ":"))


class FeedbackService:
    """Validate, deduplicate and store delayed labels.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.trainer import train_from_config
    >>> platform = InMemoryPlatform()
    >>> registry = platform.registry
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... }))
    >>> ref = platform.artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
    >>> _ = registry.register(outcome.version_draft(ref), actor="ci")
    >>> _ = registry.request_approval("iris", 1, actor="ci")
    >>> _ = registry.approve("iris", 1, actor="ana", reason="holdout accuracy")
    >>> _ = registry.promote("iris", 1, actor="ana", reason="first release")
    >>> service = FeedbackService(registry=registry, claims=platform.label_claims,
    ...                           sink=platform.capture, clock=platform.clock)
    >>> request = FeedbackRequest(model="iris", request_id="r-1", label="setosa")
    >>> service.submit(request).results[0].status
    'stored'
    >>> service.submit(request).results[0].status
    'duplicate'
    >>> service.submit(FeedbackRequest(model="iris", request_id="r-1", label="virginica"))
    Traceback (most recent call last):
    ...
    flywheel.errors.LabelConflictError: ...
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        claims: LabelClaims,
        sink: CaptureSink,
        clock: Clock,
        prefix: str = DEFAULT_LABELS_PREFIX,
        max_labels: int = MAX_LABELS,
    ) -> None:
        self.registry = registry
        self.claims = claims
        self.sink = sink
        self.clock = clock
        self.prefix = prefix
        self.max_labels = max_labels

    def submit(self, request: FeedbackRequest) -> FeedbackReceipt:
        """Store the request's new labels; report each label as stored or duplicate.

        Raises
        ------
        InvalidRequestError
            No labels, or both body shapes (400).
        PayloadTooLargeError
            More than ``max_labels`` labels (413).
        ModelNotFoundError
            The model is not registered (404).
        InvalidLabelsError
            A label the model cannot produce (422), every bad one listed.
        LabelConflictError
            A prediction already has a different label (409); nothing is stored.
        """
        items = request.items()
        if not items:
            raise InvalidRequestError("labels: must not be empty", field="labels")
        if len(items) > self.max_labels:
            raise PayloadTooLargeError(
                f"labels: {len(items)} labels; at most {self.max_labels} per request",
                field="labels",
                details={"max_labels": self.max_labels},
            )
        model = request.model
        labels = self._checked(model, items)
        keys = [claim_key(model, item.request_id, item.row) for item in items]
        decided = _decide(items, keys, labels, self.claims.find(keys))
        now = self.clock.now()
        claimed: list[tuple[str, str]] = []
        try:
            for index, status in enumerate(decided):
                if status != "stored":
                    continue
                holder = self.claims.claim(
                    keys[index], labels[index], expires_at=now + timedelta(days=CLAIM_DAYS)
                )
                if holder is None:
                    claimed.append((keys[index], labels[index]))
                elif holder == labels[index]:
                    decided[index] = "duplicate"  # the same label won a race: fine
                else:
                    raise _conflict([(index, items[index], holder)])
            fresh = [i for i, status in enumerate(decided) if status == "stored"]
            if fresh:
                self._store(model, [(items[i], labels[i]) for i in fresh], now)
        except FlywheelError:
            for key, label in claimed:
                self.claims.release(key, label)
            raise
        results = [
            LabelResult(request_id=item.request_id, row=item.row, status=status)
            for item, status in zip(items, decided, strict=True)
        ]
        stored = sum(r.status == "stored" for r in results)
        return FeedbackReceipt(
            model=model,
            received=len(items),
            stored=stored,
            duplicates=len(items) - stored,
            results=results,
        )

    def _checked(self, model: str, items: Sequence[LabelItem]) -> list[str]:
        """Canonical JSON of each label, after checking it against the champion's outputs."""
        found = self.registry.get_model(model)  # ModelNotFoundError: 404
        number = found.champion or found.latest_version
        schema = self.registry.get_version(model, number).output_schema if number else None
        problems = []
        canonical = []
        for index, item in enumerate(items):
            value, reason = _coerce(item.label, schema)
            if reason is not None:
                problems.append({"row": index, "field": f"labels[{index}].label", "reason": reason})
            canonical.append(_canonical(value))
        if problems:
            raise InvalidLabelsError(
                f"{problems[0]['field']}: {problems[0]['reason']}",
                field=str(problems[0]["field"]),
                details={"errors": problems},
            )
        return canonical

    def _store(self, model: str, fresh: Sequence[tuple[LabelItem, str]], now: datetime) -> None:
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rows = [
            {
                "request_id": item.request_id,
                "row": item.row,
                "label": json.loads(label),
                "received_at": stamp,
                "model": model,
            }
            for item, label in fresh
        ]
        key = (
            f"{self.prefix}model={model}/date={now:%Y-%m-%d}/hour={now:%H}/"
            f"{uuid.uuid4().hex}.jsonl.gz"
        )
        self.sink.put(key, encode_rows(rows))


def _decide(
    items: Sequence[LabelItem], keys: Sequence[str], labels: Sequence[str], existing: dict[str, str]
) -> list[str]:
    """``stored`` or ``duplicate`` per label; any conflict raises (within the batch too)."""
    decided: list[str] = []
    seen: dict[str, str] = {}
    conflicts: list[tuple[int, LabelItem, str]] = []
    for index, (key, label) in enumerate(zip(keys, labels, strict=True)):
        holder = existing.get(key, seen.get(key))
        if holder is None:
            decided.append("stored")
            seen[key] = label
        elif holder == label:
            decided.append("duplicate")
        else:
            decided.append("conflict")
            conflicts.append((index, items[index], holder))
    if conflicts:
        raise _conflict(conflicts)
    return decided


def _coerce(value: str | float, schema: OutputSchema | None) -> tuple[str | float, str | None]:
    """The label as the model would predict it, or the reason it cannot be one."""
    if schema is None:
        return value, None
    if schema.task is Task.REGRESSION:
        if isinstance(value, str):
            return value, "must be a number (the model is a regressor)"
        return float(value), None
    text = value if isinstance(value, str) else _number_text(value)
    if text not in schema.classes:
        shown = ", ".join(repr(c) for c in schema.classes[:10])
        return value, f"must be one of the model's classes ({shown})"
    return text, None


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _conflict(found: Iterable[tuple[int, LabelItem, str]]) -> LabelConflictError:
    problems = [
        {
            "row": index,
            "field": f"labels[{index}].label",
            "reason": f"request {item.request_id} row {item.row} is already labelled "
            f"{json.loads(holder)!r}",
        }
        for index, item, holder in found
    ]
    return LabelConflictError(
        f"{problems[0]['field']}: {problems[0]['reason']}; nothing was stored",
        field=str(problems[0]["field"]),
        details={"errors": problems},
    )
