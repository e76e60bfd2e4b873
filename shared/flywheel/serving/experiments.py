"""A model's shadow or A/B experiment, kept as a record in the registry (ADR 75).

The record (``MODEL#<name>`` / ``EXPERIMENT``) is written only through the records
writer, with its ``experiment_started`` / ``experiment_stopped`` audit entry in the same
transaction; the inference function reads it in the background (every
``FLYWHEEL_ROLE_REFRESH_SECONDS``) and applies a running experiment to the version it was
started against (``control``, the champion then).

Examples
--------
>>> from datetime import UTC, datetime
>>> running = Experiment(id="e1", model="churn", kind="ab", version=4, control=3,
...                      weight=0.2, salt="spring", started_by="ana",
...                      started_at=datetime(2026, 1, 1, tzinfo=UTC))
>>> running.ab_test()
AbTest(challenger=4, weight=0.2, salt='spring')
>>> running.running, experiment_key("churn").sort
(True, 'EXPERIMENT')
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from flywheel.models import Frozen
from flywheel.registry.models import RecordKey
from flywheel.serving.routing import AbTest

if TYPE_CHECKING:
    from flywheel.registry.ports import RecordStore

__all__ = [
    "EXPERIMENT",
    "Experiment",
    "ExperimentKind",
    "ExperimentStatus",
    "experiment_key",
    "read_experiment",
]

EXPERIMENT = "EXPERIMENT"


class ExperimentKind(StrEnum):
    """``shadow``: the version scores copies of requests; ``ab``: it answers arm ``b``."""

    SHADOW = "shadow"
    AB = "ab"


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class Experiment(Frozen):
    """One experiment of a model: which version, against which champion, and how it ended."""

    id: str = Field(min_length=1, max_length=64)
    model: str
    kind: ExperimentKind
    #: The shadow version, or arm ``b``.
    version: int = Field(ge=1)
    #: The champion it was started against: arm ``a``, the version whose answers count.
    control: int = Field(ge=1)
    #: A/B only: the share of assignment keys in arm ``b``, and the hash salt.
    weight: float | None = Field(default=None, gt=0, lt=1)
    salt: str | None = Field(default=None, min_length=1, max_length=64)
    status: ExperimentStatus = ExperimentStatus.RUNNING
    started_by: str
    started_at: datetime
    reason: str | None = None
    stopped_by: str | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    #: The version that won (``promote-winner``), and what was done about it.
    winner: int | None = None
    outcome: str | None = None

    @model_validator(mode="after")
    def _arms(self) -> Experiment:
        if self.kind is ExperimentKind.AB and (self.weight is None or self.salt is None):
            raise ValueError("an A/B experiment has a weight and a salt")
        if self.version == self.control:
            raise ValueError("an experiment compares another version with the champion")
        return self

    @property
    def running(self) -> bool:
        return self.status is ExperimentStatus.RUNNING

    def ab_test(self) -> AbTest | None:
        """The sticky A/B split this experiment asks the function for (``None``: shadow)."""
        if self.kind is not ExperimentKind.AB:
            return None
        assert self.weight is not None
        assert self.salt is not None
        return AbTest(challenger=self.version, weight=self.weight, salt=self.salt)


def experiment_key(model: str) -> RecordKey:
    """Where ``model``'s experiment record lives (its latest experiment, running or not)."""
    return RecordKey(partition=f"MODEL#{model}", sort=EXPERIMENT)


def read_experiment(records: RecordStore, model: str) -> tuple[Experiment, int] | None:
    """``model``'s latest experiment and the record's revision, or ``None``.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> read_experiment(InMemoryModelRegistry(InMemoryAuditLog()), "churn") is None
    True
    """
    record = records.get_record(experiment_key(model))
    if record is None:
        return None
    return Experiment.model_validate(record.doc), record.revision
