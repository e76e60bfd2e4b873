"""What a run records, and how runs line up side by side."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field, JsonValue

from flywheel.errors import NotFoundError
from flywheel.models import Frozen
from flywheel.registry.models import ArtifactRef

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Run",
    "RunComparison",
    "RunKind",
    "RunNotFoundError",
    "compare",
    "parent_of",
    "trial_id",
]

#: ``<parent run id>.t<number>``: a trial is named after the run whose search it belongs to.
_TRIAL = re.compile(r"^(?P<parent>.+)\.t(?P<number>\d{3,})$")


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


class RunKind(StrEnum):
    """A training (fitted, converted, evaluated on the holdout) or one trial of its search."""

    TRAINING = "training"
    TRIAL = "trial"


def trial_id(parent: str, number: int) -> str:
    """The run id of trial ``number`` of ``parent``'s search.

    Examples
    --------
    >>> trial_id("churn-20260101T120000-0a1b2c3d", 7)
    'churn-20260101T120000-0a1b2c3d.t007'
    """
    return f"{parent}.t{number:03d}"


def parent_of(run_id: str) -> tuple[str, int] | None:
    """``(parent run id, trial number)`` for a trial's id, ``None`` for a training's.

    Examples
    --------
    >>> parent_of("r1.t012"), parent_of("r1")
    (('r1', 12), None)
    """
    found = _TRIAL.match(run_id)
    return (found["parent"], int(found["number"])) if found else None


class Run(Frozen):
    """One run: what was tried (parameters), how it scored (metrics), on what, by whom.

    Trainings carry holdout metrics (from the ONNX model); trials carry their
    cross-validation score (``cv_<metric>`` and ``cv_<metric>_std``).

    Examples
    --------
    >>> run = Run(run_id="r1", model="churn", started_at="2026-01-01T00:00:00Z",
    ...           duration_seconds=1.5, estimator="random_forest", parameters={"max_depth": 4},
    ...           metrics={"roc_auc": 0.97}, dataset_sha256="0" * 64, actor="ana")
    >>> (run.kind.value, run.version)
    ('training', None)
    """

    run_id: str = Field(min_length=1, max_length=256)
    model: str
    kind: RunKind = RunKind.TRAINING
    #: Trials: the training run whose search they belong to.
    parent: str | None = None
    started_at: datetime
    duration_seconds: float = Field(ge=0)
    estimator: str
    #: The configured hyperparameters plus the searched ones (a trial's, or the winner's).
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    dataset_sha256: str
    #: The code commit (``None`` outside a git checkout without ``$FLYWHEEL_CODE_COMMIT``).
    code_version: str | None = None
    actor: str
    #: ``cli``, or the workflow trigger (``schedule``, ``drift``, ...).
    trigger: str = "cli"
    #: The version registered from this run (trainings that passed the gate).
    version: int | None = None
    #: The search summary (method, metric, trials, winner); ``None`` without ``search:``.
    search: dict[str, JsonValue] | None = None
    #: Every trial of the search as JSON, in the artifacts store.
    trials: ArtifactRef | None = None
    #: A failed trial's reason.
    error: str | None = None


class RunComparison(Frozen):
    """Runs side by side: for each parameter and metric, one value per run (``None``: unset)."""

    runs: tuple[Run, ...]
    parameters: dict[str, tuple[JsonValue, ...]]
    metrics: dict[str, tuple[float | None, ...]]

    def differing(self) -> set[str]:
        """Parameter and metric names whose values are not all the same."""
        rows: dict[str, tuple[Any, ...]] = {**self.parameters, **self.metrics}
        return {name for name, values in rows.items() if len({repr(v) for v in values}) > 1}


def compare(runs: Sequence[Run]) -> RunComparison:
    """Line ``runs`` up by parameter and metric name (names sorted).

    Examples
    --------
    >>> a = Run(run_id="a", model="m", started_at="2026-01-01T00:00:00Z", duration_seconds=1,
    ...         estimator="e", parameters={"C": 1.0}, metrics={"accuracy": 0.9},
    ...         dataset_sha256="0" * 64, actor="ana")
    >>> b = a.model_copy(update={"run_id": "b", "parameters": {"C": 0.1}})
    >>> table = compare([a, b])
    >>> table.parameters["C"], sorted(table.differing())
    ((1.0, 0.1), ['C'])
    """
    names = sorted({n for run in runs for n in run.parameters})
    metrics = sorted({n for run in runs for n in run.metrics})
    return RunComparison(
        runs=tuple(runs),
        parameters={n: tuple(run.parameters.get(n) for run in runs) for n in names},
        metrics={n: tuple(run.metrics.get(n) for run in runs) for n in metrics},
    )
