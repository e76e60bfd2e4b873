"""The inference use case: pinned version → verified model → validate → predict → capture.

One :class:`InferenceService` lives per execution environment (built once by the
handler's cached composition root).  :meth:`InferenceService.start` resolves the
pinned version in the registry, reads the ONNX bytes through the artifact store
(SHA-256 checked there and again by :meth:`OnnxModel.load`), and opens one
onnxruntime session per served version; every request then costs only
validation, one ``session.run`` and a constant-time capture hand-off.

Examples
--------
>>> from flywheel.adapters.memory_metrics import InMemoryServingMetrics
>>> from flywheel.composition import InMemoryPlatform
>>> from flywheel.serving.models import PredictRequest
>>> from flywheel.serving.settings import ServingSettings
>>> from flywheel.training.config import parse_config
>>> from flywheel.training.trainer import train_from_config
>>> platform = InMemoryPlatform()
>>> outcome = train_from_config(parse_config({
...     "model": "iris", "task": "classification",
...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
... }))
>>> ref = platform.artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
>>> platform.registry.register(outcome.version_draft(ref), actor="ci").version
1
>>> service = InferenceService.start(
...     ServingSettings(model_name="iris", model_version="1"),
...     registry=platform.records, artifacts=platform.artifacts, metrics=InMemoryServingMetrics(),
... )
>>> record = dict(zip(outcome.input_schema.feature_names, [5.1, 3.5, 1.4, 0.2]))
>>> answer = service.predict("iris", PredictRequest(record=record), request_id="r1")
>>> answer.variant, answer.predictions
(<Variant.CHAMPION: 'champion'>, ['setosa'])
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flywheel.clock import default_clock
from flywheel.errors import (
    ConfigError,
    FlywheelError,
    InvalidArtifactError,
    InvalidInputError,
    InvalidRecordsError,
    ModelNotFoundError,
    NotExplainableError,
    NotFoundError,
    VersionNotFoundError,
)
from flywheel.explain.artifact import Explainer, ExplainerError
from flywheel.registry.models import Alias
from flywheel.serving.capture import CaptureEntry, CaptureWriter
from flywheel.serving.experiments import ExperimentKind, read_experiment
from flywheel.serving.metrics import MetricLabels, scores
from flywheel.serving.models import ExplanationBody, PredictResponse, Variant
from flywheel.serving.predictor import OnnxFeatures, OnnxModel
from flywheel.serving.routing import RoleTracker, assign_arm, role_of
from flywheel.serving.validation import DEFAULT_MAX_RECORDS, RecordValidator

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    #: ``(entity_id, feature names) -> values in that order`` from the online store;
    #: raises a ``NotFoundError`` (``entity_not_found``) for unknown or expired entities.
    FeatureLookup = Callable[[str, Sequence[str]], Sequence[Any]]

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.models import ModelVersion
    from flywheel.registry.ports import ModelRegistry, RegistryStorage
    from flywheel.serving.capture import CaptureSink
    from flywheel.serving.metrics import ServingMetrics
    from flywheel.serving.models import PredictRequest
    from flywheel.serving.predictor import Prediction
    from flywheel.serving.routing import AbTest
    from flywheel.serving.settings import ServingSettings

__all__ = ["InferenceService", "ServedModel", "ServingPlan", "model_outputs", "resolve_version"]

#: Shadow scorings allowed to wait; beyond this they are skipped (and counted).
MAX_PENDING_SHADOW = 16


@dataclass(frozen=True)
class ServedModel:
    """One model version ready to score: its registry record, session and validator.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.trainer import train_from_config
    >>> platform = InMemoryPlatform()
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... }))
    >>> ref = platform.artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
    >>> _ = platform.registry.register(outcome.version_draft(ref), actor="ci")
    >>> served = ServedModel.load(platform.records, platform.artifacts, "iris", "1")
    >>> record = dict(zip(served.version.input_schema.feature_names, [5.1, 3.5, 1.4, 0.2]))
    >>> served.version.version, served.model.predict(served.validator.matrix([record])).labels
    (1, ('setosa',))
    """

    version: ModelVersion
    model: OnnxModel
    validator: RecordValidator
    #: The verified explainer artifact, when the version registered one (ADR 71).
    explainer: Explainer | None = None
    #: The explainer's preprocessing graph, for a model with preprocessing inside.
    features: OnnxFeatures | None = None

    @classmethod
    def load(
        cls,
        registry: ModelRegistry,
        artifacts: ArtifactStore,
        name: str,
        ref: str | int,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        intra_op_threads: int | None = None,
    ) -> ServedModel:
        """Resolve ``ref`` (number or alias), fetch and verify the artifact, open a session.

        Raises
        ------
        ModelNotFoundError, VersionNotFoundError
            No such model, version or alias.
        ArtifactIntegrityError
            The stored bytes do not match the registered SHA-256.
        InvalidArtifactError
            The explainer artifact does not match its digest or cannot be read.
        """
        version = resolve_version(registry, name, ref)
        data = artifacts.get(version.artifact)
        model = OnnxModel.load(
            data,
            expected_sha256=version.artifact.sha256,
            input_schema=version.input_schema,
            output_schema=version.output_schema,
            intra_op_threads=intra_op_threads,
        )
        explainer = features = None
        if version.explainer is not None:
            try:
                explainer = Explainer.from_bytes(
                    artifacts.get(version.explainer), expected_sha256=version.explainer.sha256
                )
                if explainer.preprocessing is not None:
                    features = OnnxFeatures.load(
                        explainer.preprocessing,
                        input_schema=version.input_schema,
                        width=len(explainer.columns),
                        intra_op_threads=intra_op_threads,
                    )
            except (ExplainerError, InvalidArtifactError) as err:
                reason = err.message if isinstance(err, InvalidArtifactError) else str(err)
                raise InvalidArtifactError(
                    f"the explainer artifact cannot be used: {reason}", field="explainer"
                ) from None
        validator = RecordValidator(version.input_schema, max_records=max_records)
        return cls(version, model, validator, explainer, features)


@dataclass(frozen=True)
class ServingPlan:
    """What the pinned version does now: its role, and the registry's experiment on it.

    Refreshed in the background (:class:`~flywheel.serving.routing.RoleTracker`); a
    request reads the latest plan and never waits for the registry.
    """

    role: Variant = Variant.CHAMPION
    ab: tuple[AbTest, ServedModel] | None = None
    shadow: ServedModel | None = None
    #: The running experiment's id (``None``: none applies to this version).
    experiment: str | None = None


def resolve_version(registry: ModelRegistry, name: str, ref: str | int) -> ModelVersion:
    """A version of ``name`` by number (``3``, ``"3"``) or alias (``champion``, ``challenger``).

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
    >>> resolve_version(platform.records, "iris", "champion")
    Traceback (most recent call last):
    ...
    flywheel.errors.VersionNotFoundError: model 'iris' has no champion yet
    >>> _ = registry.request_approval("iris", 1, actor="ci")
    >>> _ = registry.approve("iris", 1, actor="ana", reason="holdout accuracy")
    >>> _ = registry.promote("iris", 1, actor="ana", reason="first release")
    >>> resolve_version(platform.records, "iris", "champion").version
    1
    """
    if isinstance(ref, int) or ref.isdigit():
        return registry.get_version(name, int(ref))
    alias = Alias(ref)
    number = registry.get_model(name).aliases.get(alias)
    if number is None:
        raise VersionNotFoundError(f"model {name!r} has no {alias} yet", field="version")
    return registry.get_version(name, number)


class InferenceService:
    """Score requests with one pinned model version (plus optional A/B arm and shadow).

    Build it with :meth:`start`.  Thread-safe.

    Parameters
    ----------
    primary
        The pinned version.
    metrics
        Where request metrics go.
    capture
        The capture writer (``None``: capture off).
    role
        Tracks the :class:`ServingPlan`: whether ``primary`` is the champion or the
        canary, and the registry's experiment on it; ``None`` reports ``champion``.
    ab, shadow
        A fixed A/B test (and the model of arm ``b``) or shadow version, set by the
        deployment's variables: they replace the registry's experiments.
    features
        Online feature lookup for entity-only requests (``None``: records required).
    """

    def __init__(
        self,
        *,
        primary: ServedModel,
        metrics: ServingMetrics,
        capture: CaptureWriter | None = None,
        role: RoleTracker[ServingPlan] | None = None,
        ab: tuple[AbTest, ServedModel] | None = None,
        shadow: ServedModel | None = None,
        features: FeatureLookup | None = None,
        timer: Callable[[], float] = time.perf_counter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.primary = primary
        self.features = features
        self.name = primary.version.name
        self.metrics = metrics
        self.capture = capture
        self.role = role
        self.ab = ab
        self.shadow = shadow
        self._timer = timer
        self._clock = clock
        self._shadow_runner = _ShadowRunner(self)

    @classmethod
    def start(
        cls,
        settings: ServingSettings,
        *,
        registry: RegistryStorage,
        artifacts: ArtifactStore,
        metrics: ServingMetrics,
        sink: CaptureSink | None = None,
        background: bool = True,
        features: FeatureLookup | None = None,
    ) -> InferenceService:
        """Resolve and load everything the settings pin; fail fast if anything is wrong.

        A running experiment of the registry (:mod:`flywheel.serving.experiments`) is
        loaded now and picked up, or dropped, by the background refresh; a version that
        fails to load is left out (counted as ``ShadowFailures``) and tried again then.

        Parameters
        ----------
        settings
            The deployment's settings (``FLYWHEEL_MODEL_NAME`` is required).
        registry, artifacts
            Where versions, the experiment record and the ONNX bytes are.
        metrics
            Where request metrics go.
        sink
            Where capture objects go; ``None`` or ``capture_enabled=False``: no capture.
        background
            Run capture writes and role refreshes on background threads
            (``False``: tests call :meth:`flush` themselves).
        features
            Online feature lookup for entity-only requests.

        Raises
        ------
        ConfigError
            No model name configured.
        ModelNotFoundError, VersionNotFoundError, ArtifactError
            The pinned model cannot be served.

        Examples
        --------
        >>> from flywheel.adapters.memory_metrics import InMemoryServingMetrics
        >>> from flywheel.composition import InMemoryPlatform
        >>> from flywheel.serving.settings import ServingSettings
        >>> platform = InMemoryPlatform()
        >>> InferenceService.start(
        ...     ServingSettings(model_name="churn", model_version="3"),
        ...     registry=platform.records, artifacts=platform.artifacts,
        ...     metrics=InMemoryServingMetrics(),
        ... )
        Traceback (most recent call last):
        ...
        flywheel.errors.ModelNotFoundError: model 'churn' does not exist

        The module's example starts a service on a registered version.
        """
        name = settings.model_name
        if not name:
            raise ConfigError(
                "FLYWHEEL_MODEL_NAME is not set: the function does not know its model",
                field="model_name",
            )

        def load(ref: str | int) -> ServedModel:
            return ServedModel.load(
                registry,
                artifacts,
                name,
                ref,
                max_records=settings.max_batch_records,
                intra_op_threads=settings.intra_op_threads,
            )

        primary = load(settings.model_version)
        pinned = primary.version.version
        ab_test = settings.ab_test
        ab = (ab_test, load(ab_test.challenger)) if ab_test is not None else None
        shadow = load(settings.shadow_version) if settings.shadow_version is not None else None
        fixed = ab is not None or shadow is not None
        loaded: dict[int, ServedModel] = {}

        def experiment_model(version: int) -> ServedModel | None:
            if version not in loaded:
                try:
                    loaded.clear()  # one experiment at a time: drop the last one's session
                    loaded[version] = load(version)
                except FlywheelError:
                    metrics.shadow_failed(MetricLabels(name, version, Variant.SHADOW.value))
                    return None
            return loaded[version]

        def lookup() -> ServingPlan:
            model = registry.get_model(name)
            role = role_of(pinned, champion=model.champion, challenger=model.challenger)
            found = None if fixed else read_experiment(registry, name)
            experiment = found[0] if found is not None else None
            if experiment is None or not experiment.running or experiment.control != pinned:
                return ServingPlan(role=role)
            served = experiment_model(experiment.version)
            if served is None:
                return ServingPlan(role=role)
            test = experiment.ab_test()
            return ServingPlan(
                role=role,
                ab=(test, served) if test is not None else None,
                shadow=served if experiment.kind is ExperimentKind.SHADOW else None,
                experiment=experiment.id,
            )

        role = RoleTracker(lookup, initial=lookup(), ttl_seconds=settings.role_refresh_seconds)
        capture = None
        if sink is not None and settings.capture_enabled:
            capture = CaptureWriter(
                sink,
                prefix=settings.capture_prefix,
                max_rows=settings.capture_max_rows,
                max_age_seconds=settings.capture_max_age_seconds,
                background=background,
            )
        clock = default_clock()
        return cls(
            primary=primary,
            metrics=metrics,
            capture=capture,
            role=role,
            ab=ab,
            shadow=shadow,
            features=features,
            # Capture partitions follow the runtime's clock (simulated in the local runtime).
            clock=lambda: clock.now().timestamp(),
        )

    # -- the use case ------------------------------------------------------------------------
    def predict(
        self, name: str, request: PredictRequest, *, request_id: str, body: str | None = None
    ) -> PredictResponse:
        """Validate, score, capture and answer one request.

        ``body`` is the request's JSON text when it came over HTTP: capture stores it
        as received instead of re-encoding every value.

        Raises
        ------
        ModelNotFoundError
            ``name`` is not the model this service serves (HTTP 404).
        PayloadTooLargeError
            More records than the batch cap (HTTP 413).
        InvalidRecordsError
            Records that fail the input schema; every bad field listed (HTTP 422); or
            an entity-only request to a deployment without a feature view.
        NotFoundError
            The entity has no (unexpired) online features (HTTP 404, ``entity_not_found``).
        ArtifactError
            The model failed at run time (HTTP 500).
        """
        started = self._timer()
        plan = self.plan()  # read once: a refresh may swap it during the request
        ab, shadow = (self.ab, self.shadow) if self._fixed else (plan.ab, plan.shadow)
        served, variant = self._route(request.assignment_key, ab, plan.role)
        labels = MetricLabels(self.name, served.version.version, variant)
        if name != self.name:
            self.metrics.request_rejected(labels, code=ModelNotFoundError.code)
            raise ModelNotFoundError(f"model {name!r} is not served here", field="name")
        try:
            if request.explain:
                _check_explainable(self.name, served, expanded=request.expanded)
            if request.lookup:
                rows = [self._look_up(str(request.entity_id), served)]
                body = None  # capture the looked-up features, not the entity-only body
            else:
                rows = request.rows()
            matrix = served.validator.matrix(rows)
        except (InvalidInputError, NotFoundError) as err:
            self.metrics.request_rejected(labels, code=err.code)
            raise
        try:
            prediction = served.model.predict(matrix)
        except FlywheelError as err:
            self.metrics.request_failed(labels, code=err.code)
            raise
        response = _response(self.name, served, variant, request_id, prediction)
        if request.explain:
            response = _explained(response, served, matrix, expanded=request.expanded)
        latency_ms = (self._timer() - started) * 1000.0
        if self.capture is not None:
            self.capture.submit(
                CaptureEntry(
                    request_id=request_id,
                    model=self.name,
                    version=served.version.version,
                    variant=variant.value,
                    timestamp=self._clock(),
                    latency_ms=latency_ms,
                    records=rows,
                    prediction=prediction,
                    entity_id=request.entity_id,
                    body=body,
                )
            )
        if shadow is not None:
            self._shadow_runner.submit(shadow, rows, request_id, request.entity_id, body)
        self.metrics.request_served(
            labels,
            rows=len(rows),
            latency_ms=latency_ms,
            scores=scores(prediction),
            capture_lost=self.capture.take_failures() if self.capture is not None else 0,
        )
        return response

    def rejected(self, code: str) -> None:
        """Count a request refused before it reached :meth:`predict` (e.g. malformed JSON)."""
        labels = MetricLabels(self.name, self.primary.version.version, self.current_variant())
        self.metrics.request_rejected(labels, code=code)

    def failed(self, code: str) -> None:
        """Count a request that failed outside :meth:`predict` with a 5xx."""
        labels = MetricLabels(self.name, self.primary.version.version, self.current_variant())
        self.metrics.request_failed(labels, code=code)

    def current_variant(self) -> Variant:
        """The role of the pinned version right now (``champion`` or ``canary``)."""
        return self.plan().role

    def plan(self) -> ServingPlan:
        """What the pinned version does now (the last refresh's answer; never waits)."""
        return self.role.current() if self.role is not None else ServingPlan()

    @property
    def _fixed(self) -> bool:
        """Whether the deployment's variables fix the A/B test or the shadow."""
        return self.ab is not None or self.shadow is not None

    def flush(self) -> None:
        """Finish background work now: shadow scorings, then capture writes (tests, shutdown)."""
        self._shadow_runner.drain()
        if self.capture is not None:
            self.capture.flush()

    def close(self) -> None:
        """Flush and stop accepting capture entries."""
        self.flush()
        if self.capture is not None:
            self.capture.close()

    # -- internals ---------------------------------------------------------------------------
    def _look_up(self, entity_id: str, served: ServedModel) -> dict[str, Any]:
        if self.features is None:
            raise InvalidRecordsError(
                "this deployment looks up no features: send 'record' or 'records'",
                field="entity_id",
            )
        names = served.version.input_schema.feature_names
        return dict(zip(names, self.features(entity_id, names), strict=True))

    def _route(
        self, key: str | None, ab: tuple[AbTest, ServedModel] | None, role: Variant
    ) -> tuple[ServedModel, Variant]:
        if ab is None:
            return self.primary, role
        test, arm_b = ab
        arm = assign_arm(key, weight=test.weight, salt=test.salt)
        return (arm_b if arm is Variant.B else self.primary), arm


def _response(
    name: str, served: ServedModel, variant: Variant, request_id: str, prediction: Prediction
) -> PredictResponse:
    probabilities: list[dict[str, float]] | None = None
    predictions: list[str] | list[float]
    if prediction.values is not None:
        predictions = prediction.values.tolist()
    else:
        predictions = list(prediction.labels)
        if prediction.probabilities is not None:
            classes = prediction.classes
            probabilities = [
                dict(zip(classes, row, strict=True)) for row in prediction.probabilities.tolist()
            ]
    # Every value here comes from the registry and the verified model: no re-validation.
    return PredictResponse.model_construct(
        model=name,
        version=served.version.version,
        variant=variant,
        request_id=request_id,
        predictions=predictions,
        probabilities=probabilities,
    )


def _check_explainable(name: str, served: ServedModel, *, expanded: bool) -> None:
    """Refuse (422 ``not_explainable``) what this version's explainer cannot answer."""
    explainer, number = served.explainer, served.version.version
    if explainer is None:
        if served.version.lineage.imported is not None:
            reason = "was registered from an ONNX file, which brings no explainer"
        else:
            reason = "was registered without an explainer: retrain it to explain its predictions"
        raise NotExplainableError(f"version {number} of {name!r} {reason}", field="explain")
    if expanded and explainer.records:
        raise NotExplainableError(
            f"version {number} of {name!r} is explained by sampling its input features, "
            'not per model column: ask for "explain": true',
            field="explain",
        )


def _explained(
    response: PredictResponse, served: ServedModel, matrix: Any, *, expanded: bool
) -> PredictResponse:
    """``response`` with one :class:`ExplanationBody` per row of ``matrix``.

    An exact explainer of a model with preprocessing explains the estimator's columns,
    computed from the validated records by the explainer's own preprocessing graph.
    """
    explainer = served.explainer
    assert explainer is not None
    model = model_outputs(served) if explainer.approximate else None
    try:
        x = served.features.transform(matrix) if served.features is not None else matrix
        explanation = explainer.explain(x, model=model, expanded=expanded)
    except FlywheelError:
        raise
    except Exception as err:
        raise InvalidArtifactError("the explainer failed on this input", field="explainer") from err
    features, outputs = explanation.features, list(explanation.outputs)
    base = explanation.base_values.tolist()
    per_column: list[dict[str, list[float]] | None] = [None] * len(explanation.values)
    if explanation.expanded is not None:
        names = explanation.columns
        per_column = [dict(zip(names, row, strict=True)) for row in explanation.expanded.tolist()]
    bodies = [
        ExplanationBody.model_construct(
            space=explanation.space,
            outputs=outputs,
            base_value=base,
            attributions=dict(zip(features, row, strict=True)),
            method=explanation.method,
            approximate=explanation.approximate,
            error_bound=explanation.error_bound,
            expanded=columns,
        )
        for row, columns in zip(explanation.values.tolist(), per_column, strict=True)
    ]
    return response.model_copy(update={"explanations": bodies})


def model_outputs(served: ServedModel) -> Callable[[Any], Any]:
    """The served model as ``X -> [rows, explained outputs]`` (probabilities or values).

    What a sampling (approximate) explainer evaluates: the outputs it explains.
    """
    import numpy as np

    classes = served.version.output_schema.classes
    keep = [1] if len(classes) == 2 else list(range(len(classes)))

    def run(x: Any) -> Any:
        prediction = served.model.predict(x)
        if prediction.values is not None:
            return prediction.values.reshape(-1, 1)
        assert prediction.probabilities is not None
        return np.asarray(prediction.probabilities)[:, keep]

    return run


class _ShadowRunner:
    """Scores copies of requests with the shadow version on one background thread.

    Never raises into, waits for, or changes the caller's request: failures and
    skips (more than :data:`MAX_PENDING_SHADOW` waiting) are counted.
    """

    def __init__(self, service: InferenceService) -> None:
        self._service = service
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: list[
            tuple[ServedModel, Sequence[Mapping[str, Any]], str, str | None, str | None]
        ] = []
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def submit(
        self,
        shadow: ServedModel,
        rows: Sequence[Mapping[str, Any]],
        request_id: str,
        entity: str | None,
        body: str | None = None,
    ) -> None:
        with self._lock:
            if self._pending >= MAX_PENDING_SHADOW:
                skipped = True
            else:
                skipped = False
                self._pending += 1
                self._queue.append((shadow, rows, request_id, entity, body))
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="flywheel-shadow", daemon=True
                    )
                    self._thread.start()
                self._wake.notify()
        if skipped:
            self._failed(shadow)

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending and time.monotonic() < deadline:
                self._idle.wait(timeout=0.05)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                shadow, rows, request_id, entity, body = self._queue.pop(0)
            try:
                self._score(shadow, rows, request_id, entity, body)
            except Exception:
                self._failed(shadow)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._idle.notify_all()

    def _score(
        self,
        shadow: ServedModel,
        rows: Sequence[Mapping[str, Any]],
        request_id: str,
        entity: str | None,
        body: str | None = None,
    ) -> None:
        service = self._service
        started = service._timer()
        prediction = shadow.model.predict(shadow.validator.matrix(rows))
        latency_ms = (service._timer() - started) * 1000.0
        if service.capture is not None:
            service.capture.submit(
                CaptureEntry(
                    request_id=request_id,
                    model=service.name,
                    version=shadow.version.version,
                    variant=Variant.SHADOW.value,
                    timestamp=service._clock(),
                    latency_ms=latency_ms,
                    records=rows,
                    prediction=prediction,
                    entity_id=entity,
                    body=body,
                )
            )

    def _failed(self, shadow: ServedModel) -> None:
        service = self._service
        labels = MetricLabels(service.name, shadow.version.version, Variant.SHADOW.value)
        # Metrics must never break the background thread.
        with contextlib.suppress(Exception):
            service.metrics.shadow_failed(labels)


def new_request_id() -> str:
    """A request id when the caller's event has none (local runs, direct invokes)."""
    return str(uuid.uuid4())
