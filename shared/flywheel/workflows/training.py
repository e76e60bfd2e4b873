"""The training workflow's steps: lock, validate, snapshot, train, evaluate, gate, register.

Each method takes the workflow state (:class:`~flywheel.workflows.state.TrainingState`)
and returns the step's result. Nothing but references crosses a state boundary: the
training set, the ONNX model, the reference profile, the holdout (``.npy``, no pickle)
and the version draft are artifacts with a SHA-256, re-verified by every later step.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.artifacts.validation import validate_onnx
from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import (
    ConflictError,
    DataValidationError,
    ModelNotFoundError,
    TrainingError,
)
from flywheel.registry.models import Task, VersionDraft
from flywheel.runs.log import RunLog, training_runs
from flywheel.serving.predictor import OnnxModel
from flywheel.training.datasets import (
    Dataset,
    dataset_from_bytes,
    load_dataset,
    parse_source,
    read_source,
)
from flywheel.training.feature_sets import (
    PARQUET,
    PARQUET_CONTENT_TYPE,
    build_from_feature_view,
)
from flywheel.training.trainer import train
from flywheel.training.validation import class_counts, load_checked
from flywheel.workflows.config import ModelConfigStore, parse_model_config
from flywheel.workflows.data_checks import (
    previous_reference,
    report_base,
    store_report,
    validate_for_model,
)
from flywheel.workflows.evaluation import Holdout, holdout_importance, score
from flywheel.workflows.gate import evaluate_gate
from flywheel.workflows.importance import ImportanceComparison, compare_importance
from flywheel.workflows.runs import RunLocks
from flywheel.workflows.state import (
    ApprovalRequestResult,
    EvaluationResult,
    GateResult,
    HoldoutRefs,
    LockResult,
    RegistrationResult,
    ReleaseResult,
    TrainingJobResult,
    TrainingSetResult,
    TrainingState,
    TrainResult,
    ValidationResult,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.features.store import FeatureStore
    from flywheel.registry.models import ArtifactRef, FeatureViewLineage, ModelVersion
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.approvals import ApprovalService
    from flywheel.workflows.config import ModelConfig
    from flywheel.workflows.state import ApprovalRequest

CSV_CONTENT_TYPE = "text/csv"
#: Where a container job's input (the workflow state) and result live (artifacts bucket).
TRAINING_JOBS_PREFIX = "training-jobs"


def training_job_prefix(model: str, run_id: str) -> str:
    """``training-jobs/<model>/<run id>``: one run's job input and result.

    Examples
    --------
    >>> training_job_prefix("churn", "run-1")
    'training-jobs/churn/run-1'
    """
    return f"{TRAINING_JOBS_PREFIX}/{model}/{run_id}"


NPY_CONTENT_TYPE = "application/x-npy"


def check_data(dataset: Dataset, config: ModelConfig) -> ValidationResult:
    """Apply the model's data policy to a loaded dataset.

    Raises
    ------
    DataValidationError
        Too few rows, a class with too few rows, or a fairness group feature or protected
        attribute that the data does not have; the message names the policy field.

    Examples
    --------
    >>> from flywheel.workflows.config import parse_model_config
    >>> config = parse_model_config({
    ...     "name": "iris", "gate": {"metric": "accuracy"}, "data": {"min_rows": 500},
    ...     "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
    ...                  "estimator": "logistic_regression"},
    ... })
    >>> check_data(load_dataset("sklearn:iris"), config)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    flywheel.errors.DataValidationError: data.min_rows: the dataset has 150 rows; ...
    """
    policy = config.data
    if dataset.n_rows < policy.min_rows:
        raise DataValidationError(
            f"data.min_rows: the dataset has {dataset.n_rows} rows; the policy needs "
            f"{policy.min_rows}",
            field="data.min_rows",
        )
    counts: dict[str, int] = {}
    if dataset.task is Task.CLASSIFICATION:
        codes = np.bincount(np.asarray(dataset.y, dtype=np.int64), minlength=len(dataset.classes))
        counts = {name: int(n) for name, n in zip(dataset.classes, codes, strict=True)}
        small = {name: n for name, n in counts.items() if n < policy.min_rows_per_class}
        if small:
            name, n = sorted(small.items())[0]
            raise DataValidationError(
                f"data.min_rows_per_class: class {name!r} has {n} rows; the policy needs "
                f"{policy.min_rows_per_class}",
                field="data.min_rows_per_class",
            )
    fairness = config.gate.fairness
    if fairness is not None and fairness.group_feature not in dataset.feature_names:
        raise DataValidationError(
            f"gate.fairness.group_feature: the data has no feature {fairness.group_feature!r}",
            field="gate.fairness.group_feature",
        )
    protected = (("gate.bias", config.gate.bias), ("monitoring.bias", config.monitoring.bias))
    for field, bias in protected:
        if bias is not None and bias.attribute not in dataset.feature_names:
            raise DataValidationError(
                f"{field}.attribute: the data has no feature {bias.attribute!r}",
                field=f"{field}.attribute",
            )
    return ValidationResult(
        rows=dataset.n_rows,
        features=dataset.feature_names,
        classes=dataset.classes,
        class_counts=counts,
        dataset_id=dataset.dataset_id,
        dataset_sha256=dataset.sha256,
    )


def dataset_csv(dataset: Dataset) -> bytes:
    """A dataset as CSV that :func:`load_dataset` reads back to the same arrays.

    Floats are written with ``repr`` (shortest round-trip form), class codes as class
    names; the target column is ``dataset.target``.

    Examples
    --------
    >>> dataset_csv(load_dataset("sklearn:iris")).splitlines()[1]
    b'5.1,3.5,1.4,0.2,setosa'
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*dataset.feature_names, dataset.target])
    classification = dataset.task is Task.CLASSIFICATION
    for row, target in zip(dataset.X.tolist(), dataset.y.tolist(), strict=True):
        label = dataset.classes[int(target)] if classification else repr(float(target))
        writer.writerow([*(repr(float(v)) for v in row), label])
    return buffer.getvalue().encode("utf-8")


def npy_bytes(array: NDArray[Any]) -> bytes:
    """``np.save`` with ``allow_pickle=False``: numbers only, never code.

    A table with strings (a model with categorical or text features) is written as
    JSON instead: ``{"rows": [[...], ...]}`` with ``null`` for missing values.

    Examples
    --------
    >>> np.load(io.BytesIO(npy_bytes(np.arange(3))), allow_pickle=False).tolist()
    [0, 1, 2]
    >>> npy_bytes(np.array([[1.5, "a"], [np.nan, None]], dtype=object))
    b'{"rows":[[1.5,"a"],[null,null]]}'
    """
    if array.dtype == object:
        rows = [[_json_cell(v) for v in row] for row in array.tolist()]
        return json.dumps({"rows": rows}, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _json_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_npy(data: bytes) -> NDArray[Any]:
    """Read an array written by :func:`npy_bytes` (object arrays are never unpickled).

    Examples
    --------
    >>> load_npy(b'{"rows":[[1.5,"a"],[null,null]]}').tolist()
    [[1.5, 'a'], [None, None]]
    """
    if data[:1] == b"{":
        rows = json.loads(data)["rows"]
        table = np.empty((len(rows), len(rows[0]) if rows else 0), dtype=object)
        table[:] = rows
        return table
    array: NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    return array


@dataclass(frozen=True)
class _TrainingData:
    """What BuildTrainingSet snapshots: the bytes, their suffix and the dataset they hold."""

    data: bytes
    suffix: str
    dataset: Dataset
    feature_view: FeatureViewLineage | None
    #: Columns that do not hold their declared type (loaded as inferred), with why.
    type_problems: dict[str, str] | None = None


def _suffix(location: str) -> str:
    suffix = Path(location.split("?", maxsplit=1)[0]).suffix.lower()
    return suffix if suffix in (".csv", ".parquet", ".pq") else ".csv"


class TrainingSteps:
    """The use cases behind ``training_steps.handler.<step>``.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.workflows.config import parse_model_config
    >>> from flywheel.workflows.state import TrainingState
    >>> steps = InMemoryPlatform().training_steps()
    >>> steps.configs.put(parse_model_config({
    ...     "name": "iris", "gate": {"metric": "accuracy"},
    ...     "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
    ...                  "estimator": "logistic_regression"},
    ... }), actor="ops").revision
    1
    >>> run = {
    ...     "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:training:run-1",
    ...     "execution_name": "run-1", "started_at": "2026-01-01T00:00:00Z",
    ...     "state_machine": "training",
    ... }
    >>> state = TrainingState.model_validate(
    ...     {"model_name": "iris", "trigger": {"reason": "schedule"}, "run": run}
    ... )
    >>> steps.acquire_run_lock(state).suppressed
    False
    >>> second = {**run, "execution_id": run["execution_id"][:-1] + "2", "execution_name": "run-2"}
    >>> steps.acquire_run_lock(TrainingState.model_validate(
    ...     {"model_name": "iris", "trigger": {"reason": "drift"}, "run": second}
    ... )).reason
    'run run-1 is in progress (lock held until ...)'
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        artifacts: ArtifactStore,
        approvals: ApprovalService,
        fetch: Callable[[str], bytes],
        clock: Clock,
        lock_ttl_seconds: int,
        max_approval_timeout_seconds: int,
        features: FeatureStore | None = None,
    ) -> None:
        self._registry = registry
        self._artifacts = artifacts
        self._approvals = approvals
        self._fetch = fetch
        #: Builds training sets from feature views (``dataset.feature_view``); optional.
        self._features = features
        self.configs = ModelConfigStore(registry, records)
        self.locks = RunLocks(registry, records, clock=clock, ttl_seconds=lock_ttl_seconds)
        self.run_log = RunLog(records, artifacts)
        self._clock = clock
        self._max_approval_timeout = max_approval_timeout_seconds

    # -- AcquireRunLock ------------------------------------------------------------------------
    def acquire_run_lock(self, state: TrainingState) -> LockResult:
        """Take the model's run lock (or suppress the trigger) and snapshot its config.

        Raises
        ------
        ModelConfigNotFoundError
            The model has no workflow config.
        """
        stored = self.configs.get(state.model_name)
        decision = self.locks.acquire(
            state.model_name,
            trigger=state.trigger,
            run=state.run,
            policy=stored.config.retraining,
        )
        return LockResult(
            suppressed=not decision.acquire,
            reason=decision.reason,
            run_id=state.run.execution_name,
            trigger=state.trigger.reason,
            config=stored.config.model_dump(mode="json") if decision.acquire else None,
            config_sha256=stored.sha256,
            took_over=decision.took_over,
        )

    def _config(self, state: TrainingState) -> ModelConfig:
        lock: LockResult = state.result("lock")
        if lock.config is None:
            raise ConflictError("this run was suppressed; it has no config", field="lock")
        return parse_model_config(lock.config)

    # -- ValidateData --------------------------------------------------------------------------
    def validate_data(self, state: TrainingState) -> ValidationResult:
        """Load the configured source (joined from its feature view, if any) and check it.

        The data policy's expectations run against the previous training set's reference
        profile; the report is stored under ``reports/<model>/data/``.

        Raises
        ------
        DataValidationError
            An expectation that is not a warning failed; the message names each one.
        """
        config = self._config(state)
        return self._validate(config, self._training_data(config), state)

    def _validate(
        self, config: ModelConfig, source: _TrainingData, state: TrainingState
    ) -> ValidationResult:
        reference = previous_reference(self._registry, self._artifacts, config.name)
        report = validate_for_model(
            source.dataset, config, reference, type_problems=source.type_problems
        )
        report_json, report_html = store_report(
            self._artifacts, report_base(config.name, state.run), report
        )
        if not report.passed:
            raise DataValidationError(
                f"{report.summary()}; report {report_html.uri}", field="data.expectations"
            )
        dataset = source.dataset
        return ValidationResult(
            rows=dataset.n_rows,
            features=dataset.feature_names,
            classes=dataset.classes,
            class_counts=class_counts(dataset),
            dataset_id=dataset.dataset_id,
            dataset_sha256=dataset.sha256,
            reference=reference.label,
            warnings=tuple(r.name for r in report.warnings),
            report_json=report_json,
            report_html=report_html,
        )

    def _training_data(self, config: ModelConfig) -> _TrainingData:
        dataset_config = config.training.dataset
        task = config.training.task
        if dataset_config.feature_view is not None:
            joined = build_from_feature_view(
                self._features, dataset_config, task=task, fetch=self._fetch
            )
            return _TrainingData(joined.data, PARQUET, joined.dataset, joined.lineage)
        kind, location, file_format = parse_source(dataset_config.source)
        if kind == "sklearn":
            dataset = load_dataset(
                dataset_config.source, features=dataset_config.features, task=task
            )  # bundled datasets are all numbers
            return _TrainingData(dataset_csv(dataset), ".csv", dataset, None)
        assert file_format is not None
        assert dataset_config.target is not None
        data = read_source(dataset_config.source, fetch=self._fetch)
        dataset, problems = load_checked(
            data,
            file_format=file_format,
            source=dataset_config.source,
            target=dataset_config.target,
            features=dataset_config.features,
            task=task,
            types=config.training.declared_types,
        )
        return _TrainingData(data, _suffix(location), dataset, None, problems)

    # -- BuildTrainingSet ----------------------------------------------------------------------
    def build_training_set(self, state: TrainingState) -> TrainingSetResult:
        """Copy the source, as it is now, into the artifacts bucket: the run's only input.

        Files and S3 objects are copied byte for byte; bundled scikit-learn datasets are
        written as CSV; an entity table with ``dataset.feature_view`` is joined with the
        view's features point-in-time and written as Parquet (rows that see no feature
        value are dropped and counted in ``feature_view.rows_without_features``). Later
        steps read the snapshot by SHA-256, so the run can be repeated after the source
        (or the feature store) changed. A source that changed since ValidateData is
        validated again.
        """
        config = self._config(state)
        run_id = state.result("lock").run_id
        source = self._training_data(config)
        validated: ValidationResult = state.result("validation")
        if source.dataset.sha256 != validated.dataset_sha256:
            self._validate(config, source, state)
        snapshot = self._artifacts.put(
            f"training-sets/{config.name}/{run_id}/data{source.suffix}",
            source.data,
            content_type=CSV_CONTENT_TYPE if source.suffix == ".csv" else PARQUET_CONTENT_TYPE,
        )
        return TrainingSetResult(
            snapshot=snapshot,
            source=config.training.dataset.source,
            rows=source.dataset.n_rows,
            target=source.dataset.target,
            features=source.dataset.feature_names,
            feature_view=source.feature_view,
        )

    # -- Train ---------------------------------------------------------------------------------
    def train(self, state: TrainingState) -> TrainResult:
        """Train on the snapshot, convert to ONNX (parity checked), validate, upload."""
        config = self._config(state)
        run_id = state.result("lock").run_id
        snapshot: TrainingSetResult = state.result("training_set")
        dataset = dataset_from_bytes(
            self._artifacts.get(snapshot.snapshot),
            file_format="csv" if _suffix(snapshot.snapshot.uri) == ".csv" else "parquet",
            source=snapshot.snapshot.uri,
            target=snapshot.target,
            features=snapshot.features,
            task=config.training.task,
            types=config.training.declared_types,
        )
        # Lineage names the snapshot, so `flywheel reproduce` re-trains on the same bytes
        # (for a feature view too: the joined table, not the entity table).
        training_config = config.training.model_copy(
            update={
                "dataset": config.training.dataset.snapshot(
                    snapshot.snapshot.uri, target=snapshot.target, features=snapshot.features
                )
            }
        )
        started_at, started = self._clock.now(), time.perf_counter()
        outcome = train(
            training_config,
            dataset,
            run_id=run_id,
            feature_view=snapshot.feature_view,
            code_version=state.trigger.code_version,
        )
        duration = time.perf_counter() - started
        validate_onnx(outcome.onnx_bytes, outcome.input_schema, outcome.output_schema)

        prefix = f"models/{config.name}/{run_id}"
        artifact = self._artifacts.put(f"{prefix}/model.onnx", outcome.onnx_bytes)
        profile = self._artifacts.put_json(
            f"{prefix}/reference_profile.json", outcome.profile.model_dump(mode="json")
        )
        holdout = HoldoutRefs(
            x=self._artifacts.put(
                f"{prefix}/holdout/X.{'json' if outcome.X_holdout.dtype == object else 'npy'}",
                npy_bytes(outcome.X_holdout),
                content_type="application/json"
                if outcome.X_holdout.dtype == object
                else NPY_CONTENT_TYPE,
            ),
            y=self._artifacts.put(
                f"{prefix}/holdout/y.npy",
                npy_bytes(outcome.y_holdout),
                content_type=NPY_CONTENT_TYPE,
            ),
            feature_names=outcome.input_schema.feature_names,
        )
        explainer = (
            self._artifacts.put(
                f"{prefix}/explainer.npz",
                outcome.explainer_bytes,
                content_type="application/octet-stream",
            )
            if outcome.explainer_bytes is not None
            else None
        )
        draft = outcome.version_draft(
            artifact,
            reference_profile=profile,
            explainer=explainer,
            tags={
                "training_run_id": run_id,
                "trigger": str(state.trigger.reason),
                "training_set_sha256": snapshot.snapshot.sha256,
            },
        )
        draft_ref = self._artifacts.put_json(
            f"{prefix}/version_draft.json", draft.model_dump(mode="json")
        )
        run, trials = training_runs(
            outcome,
            actor=state.run.actor,
            started_at=started_at,
            duration_seconds=duration,
            trigger=str(state.trigger.reason),
        )
        self.run_log.record(run, trials)
        return TrainResult(
            run_id=run_id,
            artifact=artifact,
            reference_profile=profile,
            draft=draft_ref,
            holdout=holdout,
            metrics=outcome.metrics,
            parity=outcome.parity,
            n_train=outcome.n_train,
            n_holdout=outcome.n_holdout,
            converter=outcome.converter,
            timings=outcome.timings,
        )

    # -- Train on an engine (AWS Batch, SageMaker; ADR 85) --------------------------------------
    def prepare_training_job(self, state: TrainingState) -> TrainingJobResult:
        """Store the state the Train step needs for a container job, and name the job.

        The job name is the model's name and a digest of the execution (SageMaker names
        are unique per account and region for good, so a rerun is a new execution).
        """
        config = self._config(state)
        run_id = state.result("lock").run_id
        state.result("training_set")  # the job trains on the snapshot: it must exist
        prefix = training_job_prefix(config.name, run_id)
        stored = self._artifacts.put_json(
            f"{prefix}/input.json", state.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        digest = hashlib.sha256(state.run.execution_id.encode()).hexdigest()[:16]
        return TrainingJobResult(
            job_name=f"{config.name}-{digest}", input=stored, result_key=f"{prefix}/result.json"
        )

    def run_training_job(self, input_ref: ArtifactRef) -> TrainResult:
        """What the engine's container runs: the Train step on the stored state, its result
        written where :meth:`collect_training_job` reads it.

        Raises
        ------
        ArtifactIntegrityError
            The stored state is not the one PrepareTrainingJob wrote.
        """
        state = TrainingState.model_validate(self._artifacts.get_json(input_ref))
        result = self.train(state)
        prefix = training_job_prefix(state.model_name, result.run_id)
        self._artifacts.put_json(f"{prefix}/result.json", result.model_dump(mode="json"))
        return result

    def collect_training_job(self, state: TrainingState) -> TrainResult:
        """The finished job's :class:`TrainResult`, as if the Train step had returned it.

        Raises
        ------
        TrainingError
            The job finished without a result for this run.
        """
        job: TrainingJobResult = state.result("training_job")
        run_id = state.result("lock").run_id
        ref = self._artifacts.locate(job.result_key)
        if ref is None:
            raise TrainingError(
                f"training job {job.job_name} finished without a result at {job.result_key}",
                field="training_job",
            )
        result = TrainResult.model_validate(self._artifacts.get_json(ref))
        if result.run_id != run_id:
            raise TrainingError(
                f"training job {job.job_name} wrote a result of run {result.run_id}, not {run_id}",
                field="training_job",
            )
        return result

    def _draft(self, ref: ArtifactRef) -> VersionDraft:
        return VersionDraft.model_validate(self._artifacts.get_json(ref))

    # -- Evaluate ------------------------------------------------------------------------------
    def evaluate(self, state: TrainingState) -> EvaluationResult:
        """Score the candidate and the current champion on the run's holdout (ONNX Runtime)."""
        config = self._config(state)
        trained: TrainResult = state.result("training")
        draft = self._draft(trained.draft)
        holdout = Holdout(
            load_npy(self._artifacts.get(trained.holdout.x)),
            load_npy(self._artifacts.get(trained.holdout.y)),
            trained.holdout.feature_names,
            draft.output_schema.task,
            draft.output_schema.classes,
        )
        fairness = config.gate.fairness
        # Group metrics on the holdout for the protected attribute the gate checks, else the
        # one the monitors watch (reported with the candidate, not gated).
        bias = config.gate.bias or config.monitoring.bias
        candidate = score(
            self._artifacts.get(draft.artifact),
            sha256=draft.artifact.sha256,
            input_schema=draft.input_schema,
            output_schema=draft.output_schema,
            holdout=holdout,
            fairness=fairness,
            bias=bias,
        )
        champion = None
        importance: ImportanceComparison | None = None
        try:
            number = self._registry.get_model(config.name).champion
        except ModelNotFoundError:
            number = None
        if number is not None:
            registered = self._registry.get_version(config.name, number)
            champion = score(
                self._artifacts.get(registered.artifact),
                sha256=registered.artifact.sha256,
                input_schema=registered.input_schema,
                output_schema=registered.output_schema,
                holdout=holdout,
                version=number,
                fairness=fairness,
                bias=bias,
            )
            importance = self._compare_importance(
                draft, registered, holdout, seed=config.training.seed
            )
        report = {
            "model": config.name,
            "run_id": trained.run_id,
            "holdout_rows": holdout.rows,
            "candidate": candidate.model_dump(mode="json"),
            "champion": champion.model_dump(mode="json") if champion else None,
            "importance": importance.model_dump(mode="json") if importance else None,
        }
        report_ref = self._artifacts.put_json(
            f"reports/{config.name}/{trained.run_id}/evaluation.json", report
        )
        return EvaluationResult(
            candidate=candidate,
            champion=champion,
            holdout_rows=holdout.rows,
            report=report_ref,
            importance=importance,
        )

    def _compare_importance(
        self, draft: VersionDraft, champion: ModelVersion, holdout: Holdout, *, seed: int
    ) -> ImportanceComparison:
        """The candidate's importance against the champion's, re-explained on this holdout
        when its explainer allows (else as registered with the champion)."""
        recomputed = None
        if draft.importance and champion.explainer is not None:
            recomputed = holdout_importance(
                self._artifacts.get(champion.explainer),
                sha256=champion.explainer.sha256,
                input_schema=champion.input_schema,
                output_schema=champion.output_schema,
                holdout=holdout,
                seed=seed,
                model=lambda: OnnxModel.load(
                    self._artifacts.get(champion.artifact),
                    expected_sha256=champion.artifact.sha256,
                    input_schema=champion.input_schema,
                    output_schema=champion.output_schema,
                    intra_op_threads=1,
                ),
            )
        return compare_importance(
            draft.importance,
            champion.importance if recomputed is None else recomputed,
            champion_version=champion.version,
            champion_source="registered" if recomputed is None else "holdout",
        )

    # -- Gate ----------------------------------------------------------------------------------
    def gate(self, state: TrainingState) -> GateResult:
        """Apply the gate policy; a rejection is audited with every failed check."""
        config = self._config(state)
        evaluation: EvaluationResult = state.result("evaluation")
        trained: TrainResult = state.result("training")
        verdict = evaluate_gate(config.gate, evaluation, trained.parity)
        if not verdict.passed:
            self._registry.record(
                AuditDraft(
                    model=config.name,
                    action=AuditAction.GATE_REJECTED,
                    actor=state.run.actor,
                    reason="; ".join(verdict.reasons)[:2048],
                    details={
                        "run_id": trained.run_id,
                        "artifact_sha256": trained.artifact.sha256,
                        "metric": verdict.metric,
                        "candidate_value": verdict.candidate_value,
                        "champion_value": verdict.champion_value,
                        "champion_version": evaluation.champion.version
                        if evaluation.champion
                        else None,
                        "checks": [c.model_dump(mode="json") for c in verdict.checks],
                        "report_uri": evaluation.report.uri,
                    },
                )
            )
        return verdict

    # -- Register ------------------------------------------------------------------------------
    def register(self, state: TrainingState) -> RegistrationResult:
        """Register the candidate the gate passed (once, even if the step is retried)."""
        config = self._config(state)
        verdict: GateResult = state.result("gate")
        if not verdict.passed:
            raise ConflictError(
                "the gate rejected this candidate; it cannot be registered", field="gate"
            )
        trained: TrainResult = state.result("training")
        draft = self._draft(trained.draft)
        registered = self._registered_by_this_run(config.name, trained.run_id)
        if registered is None:
            summary = ", ".join(c.detail for c in verdict.checks if c.name == "champion")
            registered = self._registry.register(
                draft, actor=state.run.actor, reason=f"gate passed: {summary}"[:2048]
            )
        self.run_log.link_version(config.name, trained.run_id, registered.version)
        return RegistrationResult(
            version=registered.version,
            status=str(registered.status),
            artifact_sha256=registered.artifact.sha256,
            artifact_uri=registered.artifact.uri,
            requested_by=state.trigger.requested_by or state.run.actor,
            approval_timeout_seconds=min(
                config.approval.timeout_seconds, self._max_approval_timeout
            ),
            require_distinct_approver=config.approval.require_distinct_approver,
            excluded=self._responsible(config.name) if state.trigger.requested_by is None else (),
            approvers=config.approval.approvers,
            distinct_sessions=config.approval.distinct_sessions,
        )

    def _responsible(self, name: str) -> tuple[str, ...]:
        """Who a run nobody asked for answers to: the model config's last author."""
        authors = [
            e.actor
            for e in self._registry.audit.entries(name)
            if e.action is AuditAction.MODEL_CONFIGURED
        ]
        return (authors[-1],) if authors else ()

    def _registered_by_this_run(self, name: str, run_id: str) -> ModelVersion | None:
        try:
            latest = self._registry.get_model(name).latest_version
        except ModelNotFoundError:
            return None
        if latest == 0:
            return None
        version = self._registry.get_version(name, latest)
        return version if version.lineage.training_run_id == run_id else None

    # -- RequestApproval -----------------------------------------------------------------------
    def request_approval(self, request: ApprovalRequest) -> ApprovalRequestResult:
        """Store the task token server-side; the run waits for ``POST /v1/approvals/{id}``."""
        doc = self._approvals.request(request)
        return ApprovalRequestResult(
            approval_id=doc.approval_id, version=doc.version, expires_at=doc.expires_at.isoformat()
        )

    # -- ReleaseRunLock ------------------------------------------------------------------------
    def release_run_lock(self, state: TrainingState) -> ReleaseResult:
        """Release the lock if this execution holds it (safe after any failure)."""
        if state.error is not None:
            outcome = "rejected" if state.error.error == "ApprovalRejected" else "failed"
        elif state.gate is not None and not state.gate.payload.passed:
            outcome = "gate_rejected"
        else:
            outcome = "approved"
        released = self.locks.release(state.model_name, run=state.run, outcome=outcome)
        return ReleaseResult(released=released)
