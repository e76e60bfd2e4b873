"""Record, list, find and compare runs: records next to the registry, trials as JSON artifacts.

A training's run is the record ``MODEL#<name>`` / ``RUN#<run id>`` (written through
whatever :class:`~flywheel.registry.ports.RecordStore` the platform wires: the records
writer in AWS). Its search's trials are one JSON artifact, named in the record; a
trial's id is ``<run id>.t<number>``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flywheel.registry.models import RecordKey, RecordWrite
from flywheel.runs.models import (
    Run,
    RunComparison,
    RunKind,
    RunNotFoundError,
    compare,
    parent_of,
    trial_id,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.ports import ModelRegistry, RecordStore
    from flywheel.training.trainer import TrainingOutcome

__all__ = ["RUN_PREFIX", "RunLog", "run_key", "training_runs"]

RUN_PREFIX = "RUN#"
#: Run ids the CLI and SDK make: ``<model>-<YYYYmmddTHHMMSS>-<8 hex>``.
_CLI_RUN = re.compile(r"^(?P<model>[a-z0-9-]+)-\d{8}T\d{6}-[0-9a-f]{8}$")


def run_key(model: str, run_id: str) -> RecordKey:
    """Where a run's record lives.

    Examples
    --------
    >>> run_key("churn", "r1").sort
    'RUN#r1'
    """
    return RecordKey(partition=f"MODEL#{model}", sort=f"{RUN_PREFIX}{run_id}")


def training_runs(
    outcome: TrainingOutcome,
    *,
    actor: str,
    started_at: datetime,
    duration_seconds: float,
    trigger: str = "cli",
) -> tuple[Run, list[Run]]:
    """The run of a training and one run per trial of its search.

    Examples
    --------
    >>> from flywheel.clock import default_clock
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.trainer import train_from_config
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification", "dataset": {"source": "sklearn:iris"},
    ...     "estimator": "logistic_regression",
    ...     "search": {"method": "grid", "space": {"C": [0.1, 1.0]}, "folds": 3}}), run_id="r1")
    >>> run, trials = training_runs(outcome, actor="ana", started_at=default_clock().now(),
    ...                             duration_seconds=1.0)
    >>> [t.run_id for t in trials], sorted(trials[0].metrics)
    (['r1.t001', 'r1.t002'], ['cv_accuracy', 'cv_accuracy_std'])
    """
    config, lineage, search = outcome.config, outcome.lineage, outcome.search
    common = {
        "model": config.model,
        "estimator": str(config.estimator),
        "dataset_sha256": lineage.dataset_sha256,
        "code_version": lineage.code_commit,
        "actor": actor,
        "trigger": trigger,
        "started_at": started_at,
    }
    metrics = dict(outcome.metrics)
    parameters = dict(config.hyperparameters)
    trials: list[Run] = []
    if search is not None:
        cv = f"cv_{search.metric}"
        parameters.update(search.best.params)
        if search.best.mean_score is not None and search.best.std_score is not None:
            metrics[cv] = search.best.mean_score
            metrics[f"{cv}_std"] = search.best.std_score
        for trial in search.trials:
            scored = trial.mean_score is not None and trial.std_score is not None
            trials.append(
                Run(
                    **common,
                    run_id=trial_id(outcome.run_id, trial.number),
                    kind=RunKind.TRIAL,
                    parent=outcome.run_id,
                    duration_seconds=trial.seconds,
                    parameters={**config.hyperparameters, **trial.params},
                    metrics={cv: trial.mean_score, f"{cv}_std": trial.std_score} if scored else {},
                    error=trial.error,
                )
            )
    run = Run(
        **common,
        run_id=outcome.run_id,
        duration_seconds=duration_seconds,
        parameters=parameters,
        metrics=metrics,
        search=search.summary() if search is not None else None,
    )
    return run, trials


class RunLog:
    """Runs of every model: record them, list them, find one by id, compare several.

    ``models`` (the registry) lets :meth:`find` look through every model for a run id
    that does not name its model.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> log = InMemoryPlatform().run_log()
    >>> run = Run(run_id="churn-20260101T120000-0a1b2c3d", model="churn",
    ...           started_at="2026-01-01T12:00:00Z", duration_seconds=2.0, estimator="e",
    ...           metrics={"accuracy": 0.9}, dataset_sha256="0" * 64, actor="ana")
    >>> _ = log.record(run)
    >>> [r.run_id for r in log.runs("churn")] == [run.run_id]
    True
    >>> log.find(run.run_id).metrics
    {'accuracy': 0.9}
    """

    def __init__(
        self,
        records: RecordStore,
        artifacts: ArtifactStore,
        *,
        models: ModelRegistry | None = None,
    ) -> None:
        self._records = records
        self._artifacts = artifacts
        self._models = models

    # -- writes --------------------------------------------------------------------------------
    def record(self, run: Run, trials: Sequence[Run] = ()) -> Run:
        """Store ``run`` (replacing a record of the same id: a retried step) and its trials."""
        if trials:
            ref = self._artifacts.put_json(
                f"models/{run.model}/{run.run_id}/trials.json",
                {"run_id": run.run_id, "trials": [t.model_dump(mode="json") for t in trials]},
            )
            run = run.model_copy(update={"trials": ref})
        self._put(run)
        return run

    def link_version(self, model: str, run_id: str, version: int) -> Run | None:
        """Note on the run that ``version`` was registered from it (``None``: no such run)."""
        stored = self._records.get_record(run_key(model, run_id))
        if stored is None:
            return None
        run = Run.model_validate(stored.doc)
        if run.version == version:
            return run
        run = run.model_copy(update={"version": version})
        self._put(run, revision=stored.revision)
        return run

    def _put(self, run: Run, revision: int | None = None) -> None:
        key = run_key(run.model, run.run_id)
        if revision is None:
            current = self._records.get_record(key)
            revision = current.revision if current else None
        self._records.put_record(
            RecordWrite(key=key, doc=run.model_dump(mode="json"), expected_revision=revision)
        )

    # -- reads ---------------------------------------------------------------------------------
    def runs(self, model: str, *, trials: bool = False) -> list[Run]:
        """The runs of ``model``, newest first; ``trials``: each training's trials after it."""
        runs = sorted(self._stored(model), key=lambda r: (r.started_at, r.run_id), reverse=True)
        if not trials:
            return runs
        return [item for run in runs for item in (run, *self.trials(run))]

    def _stored(self, model: str) -> Iterator[Run]:
        token: str | None = None
        while True:
            page = self._records.list_records(
                f"MODEL#{model}", RUN_PREFIX, limit=100, page_token=token
            )
            yield from (Run.model_validate(r.doc) for r in page.items)
            token = page.next_token
            if token is None:
                return

    def trials(self, run: Run) -> list[Run]:
        """The trials of ``run``'s search (none without a search)."""
        if run.trials is None:
            return []
        doc = self._artifacts.get_json(run.trials)
        return [Run.model_validate(t) for t in doc["trials"]]

    def get(self, model: str, run_id: str) -> Run:
        """Run ``run_id`` of ``model`` (a training's or a trial's id).

        Raises
        ------
        RunNotFoundError
            ``model`` has no such run.
        """
        trial = parent_of(run_id)
        stored = self._records.get_record(run_key(model, trial[0] if trial else run_id))
        if stored is None:
            raise RunNotFoundError(f"run {run_id!r} not found", field="run_id")
        run = Run.model_validate(stored.doc)
        if trial is None:
            return run
        found = [candidate for candidate in self.trials(run) if candidate.run_id == run_id]
        if found:
            return found[0]
        raise RunNotFoundError(f"run {run_id!r} not found", field="run_id")

    def find(self, run_id: str, *, model: str | None = None) -> Run:
        """Run ``run_id`` of ``model``, or of whichever model has it.

        Raises
        ------
        RunNotFoundError
            No model has a run with this id.
        """
        for name in self._candidate_models(run_id, model):
            try:
                return self.get(name, run_id)
            except RunNotFoundError:
                continue
        raise RunNotFoundError(f"run {run_id!r} not found", field="run_id")

    def _candidate_models(self, run_id: str, model: str | None) -> Iterator[str]:
        if model is not None:
            yield model
            return
        trial = parent_of(run_id)
        named = _CLI_RUN.match(trial[0] if trial else run_id)
        if named:
            yield named["model"]
        if self._models is None:
            return
        token: str | None = None
        while True:
            page = self._models.list_models(limit=100, page_token=token)
            yield from (m.name for m in page.items if not named or m.name != named["model"])
            token = page.next_token
            if token is None:
                return

    def compare(self, run_ids: Sequence[str], *, model: str | None = None) -> RunComparison:
        """Runs ``run_ids`` side by side (see :func:`~flywheel.runs.models.compare`).

        Raises
        ------
        RunNotFoundError
            Naming the first id no model has.
        """
        return compare([self.find(run_id, model=model) for run_id in run_ids])
