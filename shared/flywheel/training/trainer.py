"""Train one model version: split, fit, convert to ONNX, prove parity, measure, profile.

The flow is deterministic for a given config, dataset and library set: the split
and every estimator's ``random_state`` come from ``config.seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from flywheel.drift.profile import (
    ReferenceProfile,
    build_profile,
    score_column,
    text_columns,
    text_vocabulary,
)
from flywheel.errors import ConfigError, DatasetError, TrainingError
from flywheel.registry.models import (
    ArtifactRef,
    FeatureSpec,
    FeatureViewLineage,
    InputSchema,
    Lineage,
    OutputSchema,
    ParityReport,
    Task,
    VersionDraft,
)
from flywheel.training.config import TrainingConfig
from flywheel.training.conversion import (
    ModelOutputs,
    check_parity,
    measure_parity,
    onnx_outputs,
    onnx_session,
    sklearn_outputs,
)
from flywheel.training.datasets import Dataset, load_dataset
from flywheel.training.entrypoints import (
    build_model,
    convert_model,
    entrypoint_lineage,
    fit_error,
)
from flywheel.training.estimators import model_step
from flywheel.training.explainers import (
    build_explainer,
    features_function,
    model_output_function,
)
from flywheel.training.lineage import code_commit, dependency_lock_hash, library_versions
from flywheel.training.metrics import holdout_metrics
from flywheel.training.preprocessing import CategoricalStep, Preprocessor, fit_preprocessor
from flywheel.training.search import SearchReport, run_search
from flywheel.training.validation import label_profile

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray


class TrainingOutcome(BaseModel):
    """Everything a training run produced.

    ``metrics`` are computed from the ONNX model's outputs (what serving will
    return); ``sklearn_metrics`` from the fitted estimator, for comparison.
    ``profile`` is the reference profile of the training split.  ``timings`` holds
    wall-clock seconds for ``fit``, ``convert``, ``parity``, ``profile`` and ``explain``.
    ``estimator``, ``X_holdout`` and ``y_holdout`` are for tests and evaluation and
    are left out of :meth:`model_dump`.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, ser_json_bytes="base64"
    )

    run_id: str
    config: TrainingConfig
    onnx_bytes: bytes = Field(repr=False)
    onnx_sha256: str
    converter: str
    fallback_reason: str | None = None
    input_schema: InputSchema
    output_schema: OutputSchema
    parity: ParityReport
    metrics: dict[str, float]
    sklearn_metrics: dict[str, float]
    hyperparameters: dict[str, JsonValue]
    library_versions: dict[str, str]
    lineage: Lineage
    profile: ReferenceProfile = Field(repr=False)
    timings: dict[str, float]
    n_train: int
    n_holdout: int
    warnings: tuple[str, ...] = ()
    #: The hyperparameter search whose winner was fitted (``search:`` in the config).
    search: SearchReport | None = None
    #: The explainer artifact (ADR 71).
    explainer_bytes: bytes | None = Field(default=None, repr=False)
    #: Mean |SHAP| per input feature on the holdout, largest first.
    importance: dict[str, float] = Field(default_factory=dict)
    estimator: Any = Field(exclude=True, repr=False)
    X_holdout: np.ndarray[Any, np.dtype[np.float64]] = Field(exclude=True, repr=False)
    y_holdout: np.ndarray[Any, np.dtype[Any]] = Field(exclude=True, repr=False)

    def version_draft(
        self,
        artifact: ArtifactRef,
        *,
        reference_profile: ArtifactRef | None = None,
        tags: dict[str, str] | None = None,
        explainer: ArtifactRef | None = None,
    ) -> VersionDraft:
        """The registry record for this run, once the ONNX bytes are stored as ``artifact``.

        ``explainer`` is where :attr:`explainer_bytes` were stored, if they were.

        Raises
        ------
        TrainingError
            When the artifact's SHA-256 is not the SHA-256 of :attr:`onnx_bytes` (or
            the explainer's of :attr:`explainer_bytes`).
        """
        if artifact.sha256 != self.onnx_sha256:
            raise TrainingError(
                "artifact.sha256 does not match the trained ONNX model", field="artifact"
            )
        if explainer is not None and (
            self.explainer_bytes is None
            or explainer.sha256 != hashlib.sha256(self.explainer_bytes).hexdigest()
        ):
            raise TrainingError(
                "explainer.sha256 does not match the trained explainer", field="explainer"
            )
        return VersionDraft(
            name=self.config.model,
            artifact=artifact,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            metrics=self.metrics,
            hyperparameters=dict(self.hyperparameters),
            parity=self.parity,
            reference_profile=reference_profile,
            explainer=explainer,
            importance=self.importance,
            lineage=self.lineage,
            description=self.config.description or "",
            tags=tags or {},
        )


def _json_safe(value: Any) -> JsonValue:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return repr(value)


def split_indices(
    y: NDArray[Any], *, task: Task, test_size: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Deterministic train/holdout row indices (stratified for classification).

    Raises
    ------
    DatasetError
        Too few rows for the split, or a class too small to stratify.

    Examples
    --------
    >>> train_idx, test_idx = split_indices(
    ...     np.array([0, 1] * 10), task=Task.CLASSIFICATION, test_size=0.2, seed=0
    ... )
    >>> (len(train_idx), len(test_idx))
    (16, 4)
    """
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(y), dtype=np.int64)
    stratify = y if task is Task.CLASSIFICATION else None
    if task is Task.CLASSIFICATION:
        counts = np.bincount(np.asarray(y, dtype=np.int64))
        present = counts[counts > 0]
        if present.size and present.min() < 2:
            raise DatasetError(
                "dataset.target: every class needs at least 2 rows for a stratified split",
                field="dataset.target",
            )
    try:
        train_idx, test_idx = train_test_split(
            indices, test_size=test_size, random_state=seed, shuffle=True, stratify=stratify
        )
    except ValueError:
        raise DatasetError(
            f"dataset: {len(y)} rows are too few to hold out test_size={test_size}",
            field="test_size",
        ) from None
    return np.asarray(train_idx, dtype=np.int64), np.asarray(test_idx, dtype=np.int64)


def _searched(
    config: TrainingConfig, dataset: Dataset, x_train: Any, y_train: NDArray[Any]
) -> tuple[dict[str, Any], SearchReport | None]:
    """The hyperparameters to fit: the config's, plus its search's winner (if it searches)."""
    params = dict(config.hyperparameters)
    if config.search is None:
        return params, None
    prepare = None
    if dataset.typed:
        prepare = lambda rows: _fit_preprocessor(config, dataset, rows).transform  # noqa: E731
    search = run_search(config, x_train, y_train, prepare=prepare)
    return {**params, **search.best.params}, search


def _fit_preprocessor(config: TrainingConfig, dataset: Dataset, x_train: Any) -> Preprocessor:
    kinds = dict(zip(dataset.feature_names, dataset.feature_dtypes, strict=True))
    unknown = sorted(set(config.features) - set(dataset.feature_names))
    if unknown:
        raise ConfigError(
            f"features.{unknown[0]}: not a feature of the dataset", field=f"features.{unknown[0]}"
        )
    return fit_preprocessor(x_train, dataset.feature_names, kinds, dict(config.features))


def _with_preprocessing(
    preprocessor: Preprocessor, onnx_bytes: bytes, metadata: dict[str, str], precision: str
) -> bytes:
    """The estimator's ONNX model behind its preprocessing, stamped and checked."""
    import onnx

    from flywheel.training.conversion import stamp

    model = preprocessor.prepend_to(onnx.load_from_string(onnx_bytes))
    stamp(model, "float64" if precision == "float64" else "float32", metadata)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise TrainingError(
            "estimator: the model with its preprocessing fails the ONNX checker",
            field="estimator",
        ) from err
    serialized: bytes = model.SerializeToString()
    return serialized


def _profile(dataset: Dataset, x_train: Any, scores: NDArray[np.float64]) -> ReferenceProfile:
    """The training split's reference profile: numbers, categories, and each text feature
    as its length and its share of known words (:func:`~flywheel.drift.profile.text_columns`)."""
    kinds = dict(zip(dataset.feature_names, dataset.feature_dtypes, strict=True))
    names: list[str] = []
    columns: list[Any] = []
    vocabularies: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(dataset.feature_names):
        if kinds[name] == "text":
            values = list(x_train[:, i])
            vocabularies[name] = text_vocabulary(values)
            for derived, column in text_columns(name, values, vocabularies[name]).items():
                names.append(derived)
                columns.append(column)
        else:
            names.append(name)
            columns.append(x_train[:, i])
    categorical = [n for n in names if kinds.get(n) == "categorical"]
    if categorical:
        matrix = np.empty((len(x_train), len(columns)), dtype=object)
        for j, column in enumerate(columns):
            matrix[:, j] = column
    else:
        matrix = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    profile = build_profile(matrix, names, categorical, predictions=scores)
    return profile.model_copy(
        update={
            "text": vocabularies,
            "dataset_rows": dataset.n_rows,
            "labels": label_profile(dataset),
        }
    )


def _input_schema(
    config: TrainingConfig,
    dataset: Dataset,
    tensor_dtype: str,
    preprocessor: Preprocessor | None = None,
) -> InputSchema:
    unknown = sorted(set(config.feature_ranges) - set(dataset.feature_names))
    if unknown:
        raise ConfigError(
            f"feature_ranges.{unknown[0]}: not a feature of the dataset",
            field=f"feature_ranges.{unknown[0]}",
        )
    categories = {
        step.name: step.categories
        for step in (preprocessor.steps if preprocessor is not None else ())
        if isinstance(step, CategoricalStep)
    }
    nullable = dataset.nullable or (False,) * dataset.n_features
    try:
        features = tuple(
            FeatureSpec(
                name=name,
                dtype=dtype,
                minimum=config.feature_ranges[name].minimum
                if name in config.feature_ranges
                else None,
                maximum=config.feature_ranges[name].maximum
                if name in config.feature_ranges
                else None,
                # With preprocessing inside the model, a missing value is imputed.
                nullable=preprocessor is not None and (missing or dtype == "text"),
                categories=categories.get(name, ()),
                unknown=config.features[name].unknown if name in config.features else "error",
                max_length=(
                    (config.features[name].max_length if name in config.features else 1000)
                    if dtype == "text"
                    else None
                ),
            )
            for name, dtype, missing in zip(
                dataset.feature_names, dataset.feature_dtypes, nullable, strict=True
            )
        )
        return InputSchema(
            features=features,
            # A model with preprocessing takes its numbers in double precision.
            tensor_dtype="float64"
            if tensor_dtype == "float64" or preprocessor is not None
            else "float32",
        )
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise DatasetError(
            f"dataset.features: {first['msg'].removeprefix('Value error, ')}",
            field="dataset.features",
        ) from None


def train(
    config: TrainingConfig,
    dataset: Dataset,
    *,
    run_id: str | None = None,
    feature_view: FeatureViewLineage | None = None,
    code_version: str | None = None,
) -> TrainingOutcome:
    """Fit, convert to ONNX, check parity and measure one model on a holdout.

    Parameters
    ----------
    config
        The validated training config.
    dataset
        Data whose task matches ``config.task`` (see
        :func:`~flywheel.training.datasets.load_dataset`).
    run_id
        Identifier for lineage (default: a random UUID).
    feature_view
        The feature view ``dataset`` was joined from, recorded in the lineage.
    code_version
        The commit the run was asked for, recorded as the lineage's ``code_commit``
        (default: :func:`~flywheel.training.lineage.code_commit` of this process).

    Raises
    ------
    ConfigError
        The dataset's task differs from the config's, ``feature_ranges`` names
        an unknown feature, or the ``entrypoint`` cannot be imported or called.
    DatasetError
        Too few rows to split.
    ParityError
        The ONNX model does not reproduce scikit-learn within the tolerances.
    TrainingError
        Fitting or conversion failed.

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> config = parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... })
    >>> outcome = train(config, load_dataset("sklearn:iris"))
    >>> (outcome.parity.precision, outcome.parity.passed, outcome.metrics["accuracy"] > 0.9)
    ('float64', True, True)
    """
    if dataset.task is not config.task:
        raise ConfigError(
            f"task: the config says {config.task}, the dataset is {dataset.task}", field="task"
        )
    run_id = run_id or uuid.uuid4().hex
    train_idx, test_idx = split_indices(
        dataset.y, task=config.task, test_size=config.test_size, seed=config.seed
    )
    x_train, y_train = dataset.X[train_idx], dataset.y[train_idx]
    x_holdout, y_holdout = dataset.X[test_idx], dataset.y[test_idx]
    preprocessor = _fit_preprocessor(config, dataset, x_train) if dataset.typed else None
    fit_x = preprocessor.transform(x_train) if preprocessor is not None else x_train
    if config.task is Task.CLASSIFICATION and len(np.unique(y_train)) < len(dataset.classes):
        raise DatasetError(
            "dataset.target: the training split lacks a class", field="dataset.target"
        )

    # Fit on the class names, so scikit-learn's classes_ (sorted names) equals
    # dataset.classes and the ONNX label output carries the names.
    y_fit: NDArray[Any] = y_train
    if config.task is Task.CLASSIFICATION:
        y_fit = np.asarray(dataset.classes, dtype=object)[y_train]
    # The search sees the training split only; its winner is fitted on all of it below.
    params, search = _searched(config, dataset, x_train, y_train)
    estimator = build_model(config.model_copy(update={"hyperparameters": params}))
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(fit_x, y_fit)
        except Exception as err:  # the model's own failure, named in one line
            raise fit_error(config, err) from err
    timings = {"fit": time.perf_counter() - started}
    if search is not None:
        timings["search"] = search.seconds
    fit_warnings = tuple(
        dict.fromkeys(f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught)
    )

    metadata = {
        "flywheel.model": config.model,
        "flywheel.task": str(config.task),
        "flywheel.feature_names": json.dumps(list(dataset.feature_names)),
        "flywheel.classes": json.dumps(list(dataset.classes)),
    }
    started = time.perf_counter()
    conversion = convert_model(
        estimator,
        config=config,
        n_features=preprocessor.width if preprocessor is not None else dataset.n_features,
        metadata=metadata,
    )
    onnx_bytes = conversion.onnx_bytes
    parity_precision = conversion.precision
    note = conversion.fallback_reason
    if preprocessor is not None:
        onnx_bytes = _with_preprocessing(preprocessor, onnx_bytes, metadata, conversion.precision)
    timings["convert"] = time.perf_counter() - started

    started = time.perf_counter()
    session = onnx_session(onnx_bytes)
    split = preprocessor.split if preprocessor is not None else None
    from_onnx = onnx_outputs(session, x_holdout, task=config.task, split=split)
    holdout_x = preprocessor.transform(x_holdout) if preprocessor is not None else x_holdout
    from_sklearn = sklearn_outputs(estimator, holdout_x, task=config.task)
    parity = check_parity(
        measure_parity(
            from_sklearn,
            from_onnx,
            task=config.task,
            precision=parity_precision,
            tolerances=config.parity,
        ).model_copy(update={"note": note})
    )
    timings["parity"] = time.perf_counter() - started

    started = time.perf_counter()
    profile = _profile(dataset, x_train, _holdout_scores(from_onnx, config.task))
    timings["profile"] = time.perf_counter() - started

    lineage = Lineage(
        code_commit=code_version or code_commit(),
        dataset_id=dataset.dataset_id,
        dataset_sha256=dataset.sha256,
        dependency_lock_hash=dependency_lock_hash(),
        library_versions=library_versions(),
        random_seed=config.seed,
        training_run_id=run_id,
        training_config=config.model_dump(mode="json"),
        feature_view=feature_view,
        entrypoint=entrypoint_lineage(config),
        search=search.summary() if search is not None else None,
    )
    hyperparameters = _json_safe(model_step(estimator).get_params(deep=False))
    assert isinstance(hyperparameters, dict)
    return TrainingOutcome(
        run_id=run_id,
        config=config,
        onnx_bytes=onnx_bytes,
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        converter=conversion.converter,
        fallback_reason=conversion.fallback_reason,
        input_schema=_input_schema(config, dataset, conversion.precision, preprocessor),
        output_schema=OutputSchema(
            task=config.task,
            label_output=conversion.label_output,
            probability_output=conversion.probability_output,
            classes=dataset.classes,
        ),
        parity=parity,
        metrics=holdout_metrics(y_holdout, from_onnx, task=config.task, classes=dataset.classes),
        sklearn_metrics=holdout_metrics(
            y_holdout, from_sklearn, task=config.task, classes=dataset.classes
        ),
        hyperparameters=hyperparameters,
        library_versions=lineage.library_versions,
        lineage=lineage,
        profile=profile,
        timings=timings,
        n_train=len(train_idx),
        n_holdout=len(test_idx),
        warnings=fit_warnings,
        search=search,
        **_explanation(
            estimator,
            config,
            dataset,
            session,
            (x_train, x_holdout),
            conversion,
            timings,
            preprocessor,
        ),
        estimator=estimator,
        X_holdout=x_holdout,
        y_holdout=y_holdout,
    )


def _explanation(
    estimator: Any,
    config: TrainingConfig,
    dataset: Dataset,
    session: Any,
    splits: tuple[NDArray[Any], NDArray[Any]],
    conversion: Any,
    timings: dict[str, float],
    preprocessor: Preprocessor | None,
) -> dict[str, Any]:
    """The explainer artifact's bytes and the holdout's global importance (ADR 71).

    With preprocessing, the holdout is explained through the artifact's own
    preprocessing graph, as serving does.
    """
    started = time.perf_counter()
    x_train, x_holdout = splits
    explainer = build_explainer(
        estimator,
        task=config.task,
        classes=dataset.classes,
        feature_names=dataset.feature_names,
        x_train=x_train,
        converter=conversion.converter,
        seed=config.seed,
        preprocessor=preprocessor,
        estimator_onnx=conversion.onnx_bytes,
    )
    split = preprocessor.split if preprocessor is not None else None
    model = model_output_function(session, task=config.task, classes=dataset.classes, split=split)
    if explainer.preprocessing is not None and split is not None:
        x_holdout = features_function(explainer.preprocessing, split)(x_holdout)
    importance = explainer.importance(x_holdout, model=model, seed=config.seed)
    explainer_bytes = explainer.to_bytes()
    timings["explain"] = time.perf_counter() - started
    return {"explainer_bytes": explainer_bytes, "importance": importance}


def load_configured_dataset(
    config: TrainingConfig, *, fetch: Callable[[str], bytes] | None = None
) -> Dataset:
    """Load ``config.dataset``; a dataset built from a feature view needs the feature store.

    Raises
    ------
    ConfigError
        ``dataset.feature_view`` is set: build the training set with
        :func:`~flywheel.training.feature_sets.build_from_feature_view` instead.

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> load_configured_dataset(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... })).n_rows
    150
    """
    dataset = config.dataset
    if dataset.feature_view is not None:
        raise ConfigError(
            f"dataset.feature_view: {dataset.source} is an entity table; its training set is "
            f"joined from feature view {dataset.feature_view.name!r} by the feature store",
            field="dataset.feature_view",
        )
    return load_dataset(
        dataset.source,
        target=dataset.target,
        features=dataset.features,
        task=config.task,
        fetch=fetch,
        types=config.declared_types,
    )


def train_from_config(
    config: TrainingConfig,
    *,
    fetch: Callable[[str], bytes] | None = None,
    run_id: str | None = None,
) -> TrainingOutcome:
    """Load ``config.dataset`` (S3 through ``fetch``) and :func:`train`.

    Examples
    --------
    >>> from flywheel.training.config import parse_config
    >>> outcome = train_from_config(parse_config({
    ...     "model": "diabetes", "task": "regression",
    ...     "dataset": {"source": "sklearn:diabetes"}, "estimator": "linear_regression",
    ... }))
    >>> outcome.output_schema.label_output
    'prediction'
    """
    dataset = load_configured_dataset(config, fetch=fetch)
    return train(config, dataset, run_id=run_id)


def _holdout_scores(outputs: ModelOutputs, task: Task) -> NDArray[np.float64]:
    """What serving will capture as each holdout row's score (the canary's reference)."""
    if task is Task.REGRESSION:
        return np.asarray(outputs.values, dtype=np.float64)
    return score_column(outputs.values)
