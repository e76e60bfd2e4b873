"""The Python SDK: every CLI operation as a method, wired from :class:`Settings`.

This module is a composition root: it builds boto3 clients and adapters and
hands them to the domain services. Nothing is created at import time.

Examples
--------
>>> fw = Flywheel.in_memory(actor="ana")
>>> fw.list_models().items
[]
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import ArtifactNotFoundError, ConfigError, DatasetError, InvalidInputError
from flywheel.registry.models import (
    Alias,
    ArtifactRef,
    FeatureViewLineage,
    Model,
    ModelVersion,
    Page,
)
from flywheel.registry.service import RegistryService
from flywheel.settings import Settings

if TYPE_CHECKING:
    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.audit.chain import VerifyReport
    from flywheel.audit.models import AuditEntry, ChainHead
    from flywheel.features.store import FeatureStore
    from flywheel.registry.ports import RecordStore
    from flywheel.serving.capture import CaptureSource
    from flywheel.serving.comparison import VariantComparison
    from flywheel.training.config import TrainingConfig
    from flywheel.training.datasets import Dataset
    from flywheel.training.reproduce import ReproduceReport
    from flywheel.workflows.config import ModelConfig, ModelConfigStore, StoredConfig

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrainReport:
    """What :meth:`Flywheel.train` did, with the figures worth printing."""

    version: ModelVersion
    timings: dict[str, float] = field(default_factory=dict)
    #: The stored training set, when it was joined from a feature view.
    training_set: ArtifactRef | None = None


@dataclass(frozen=True)
class PredictResult:
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None


class Flywheel:
    """Train, govern and use models. Build it with :meth:`from_settings` or :meth:`in_memory`."""

    def __init__(
        self,
        *,
        registry: RegistryService,
        artifacts: ArtifactStore,
        fetch: Callable[[str], bytes],
        actor: str,
        records: RecordStore | None = None,
        serving: Callable[[str], object] | None = None,
        capture: CaptureSource | None = None,
        features: FeatureStore | Callable[[], FeatureStore] | None = None,
    ) -> None:
        self.registry = registry
        # Built on first use (training from a feature view), so other calls never pay for it.
        self._features = features
        #: Where the inference functions' captured predictions are (the features bucket).
        self.capture = capture
        #: Points alias ``live`` at a model's champion (set when the deployment is known).
        self.serving = serving
        self.artifacts = artifacts
        self.fetch = fetch
        self.actor = actor
        #: Workflow records (model configs, run locks, approvals) next to the registry.
        self.records: RecordStore | None = records

    @property
    def features(self) -> FeatureStore | None:
        """The feature store (``None`` when this SDK has none), built on first use."""
        if callable(self._features):
            self._features = self._features()
        return self._features

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, actor: str | None = None
    ) -> Flywheel:
        """Wire DynamoDB, S3 and the audit log from settings (starting local moto if needed)."""
        import boto3

        from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
        from flywheel.adapters.s3_artifacts import S3ArtifactStore
        from flywheel.adapters.s3_capture import S3CaptureSink

        settings = settings or Settings()
        session_kwargs: dict[str, Any] = {"region_name": settings.region}
        client_kwargs: dict[str, Any] = {}
        if settings.backend == "local":
            from flywheel.local import server

            if settings.endpoint_url is None:
                # The local server runs the synthesized app; use the names it provisioned.
                endpoint = server.ensure_running(settings.local_port, settings.local_home)
                resources = server.control(settings.local_port, "/resources")["environment"]
                settings = settings.with_resources(resources, endpoint_url=endpoint)
            client_kwargs["endpoint_url"] = settings.endpoint_url
            session_kwargs.update(
                aws_access_key_id=server.LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=server.LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=server.LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
            )
        elif settings.endpoint_url:
            client_kwargs["endpoint_url"] = settings.endpoint_url
        session = boto3.Session(**session_kwargs)
        dynamodb = session.client("dynamodb", **client_kwargs)
        s3 = session.client("s3", **client_kwargs)
        audit = DynamoDbAuditLog(settings.audit_table, client=dynamodb)
        registry = DynamoDbModelRegistry(settings.registry_table, audit, client=dynamodb)
        artifacts = S3ArtifactStore(settings.artifacts_bucket, client=s3)

        def fetch(uri: str) -> bytes:
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            try:
                return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey as exc:
                raise DatasetError(f"no object at {uri}", field="dataset.source") from exc
            except s3.exceptions.NoSuchBucket as exc:
                raise DatasetError(f"no bucket for {uri}", field="dataset.source") from exc

        resolved = settings

        def features() -> FeatureStore:
            from flywheel.adapters.feature_wiring import feature_store

            return feature_store(resolved, session=session)

        serving: Callable[[str], object] | None = None
        if settings.inference_functions:

            def serving(name: str) -> object:
                from flywheel.adapters.wiring import promotion_steps

                return promotion_steps(resolved).serve_champion(name)

        return cls(
            registry=RegistryService(registry, audit),
            artifacts=artifacts,
            fetch=fetch,
            actor=actor or settings.actor or _caller_identity(session, settings, client_kwargs),
            records=registry,
            serving=serving,
            capture=S3CaptureSink(settings.features_bucket, client=s3),
            features=features,
        )

    @classmethod
    def for_deployment(cls, settings: Settings, *, actor: str) -> Flywheel:
        """An SDK on already-resolved settings (no local server is started)."""
        return cls.from_settings(settings, actor=actor)

    @classmethod
    def in_memory(
        cls, *, actor: str = "local-user", features: FeatureStore | None = None
    ) -> Flywheel:
        """Everything in process memory: for tests, notebooks and experiments.

        ``features`` (e.g. ``FeatureStore.in_memory()``) lets :meth:`train` build
        training sets from feature views.
        """
        from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
        from flywheel.artifacts.memory import InMemoryArtifactStore

        audit = InMemoryAuditLog()
        store = InMemoryModelRegistry(audit)
        registry = RegistryService(store, audit)

        def fetch(uri: str) -> bytes:
            raise DatasetError(f"no object store for {uri} in memory", field="dataset.source")

        return cls(
            registry=registry,
            artifacts=InMemoryArtifactStore(),
            fetch=fetch,
            actor=actor,
            records=store,
            features=features,
        )

    # -- training ------------------------------------------------------------------------------
    def train(
        self,
        config: TrainingConfig | str | Path,
        *,
        reason: str | None = None,
        progress: Progress = _quiet,
    ) -> TrainReport:
        """Train, convert to ONNX (parity checked), validate, upload, register, ask for approval.

        With ``dataset.feature_view`` the training set is the entity table joined with the
        view's features point-in-time (see :mod:`flywheel.training.feature_sets`); it is
        stored as a snapshot under ``training-sets/`` and the version's lineage names the
        snapshot and the view, so ``flywheel reproduce`` re-trains on the same rows.

        Nothing is registered when any step fails.
        """
        from flywheel.artifacts.validation import validate_onnx
        from flywheel.training.config import TrainingConfig, load_config
        from flywheel.training.trainer import load_configured_dataset, train

        timings: dict[str, float] = {}
        cfg = config if isinstance(config, TrainingConfig) else load_config(Path(config))
        run_id = f"{cfg.model}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"

        started = time.perf_counter()
        progress(f"loading dataset {cfg.dataset.source}")
        feature_view = snapshot = None
        if cfg.dataset.feature_view is None:
            dataset = load_configured_dataset(cfg, fetch=self.fetch)
        else:
            cfg, dataset, feature_view, snapshot = self._join_feature_view(cfg, run_id, progress)
        timings["load_data_s"] = time.perf_counter() - started

        progress(f"training {cfg.estimator}, converting to ONNX, checking parity")
        outcome = train(cfg, dataset, run_id=run_id, feature_view=feature_view)

        progress("validating the ONNX artifact")
        started = time.perf_counter()
        validate_onnx(outcome.onnx_bytes, outcome.input_schema, outcome.output_schema)
        timings["validate_s"] = time.perf_counter() - started

        progress("uploading artifact and reference profile")
        started = time.perf_counter()
        prefix = f"models/{cfg.model}/{run_id}"
        artifact = self.artifacts.put(
            f"{prefix}/model.onnx", outcome.onnx_bytes, content_type="application/octet-stream"
        )
        profile_ref = self.artifacts.put_json(
            f"{prefix}/reference_profile.json", outcome.profile.model_dump(mode="json")
        )
        timings["upload_s"] = time.perf_counter() - started

        progress("registering the candidate and requesting approval")
        started = time.perf_counter()
        draft = outcome.version_draft(artifact, reference_profile=profile_ref)
        version = self.registry.register(draft, actor=self.actor, reason=reason)
        version = self.registry.request_approval(cfg.model, version.version, actor=self.actor)
        timings["register_s"] = time.perf_counter() - started
        timings.update({f"{k}_s": v for k, v in outcome.timings.items()})
        return TrainReport(version=version, timings=timings, training_set=snapshot)

    def _join_feature_view(
        self, cfg: TrainingConfig, run_id: str, progress: Progress
    ) -> tuple[TrainingConfig, Dataset, FeatureViewLineage, ArtifactRef]:
        """The joined training set and its snapshot; the config lineage records (the snapshot)."""
        from flywheel.training.feature_sets import PARQUET_CONTENT_TYPE, build_from_feature_view

        assert cfg.dataset.feature_view is not None
        progress(f"joining feature view {cfg.dataset.feature_view.name} point-in-time")
        joined = build_from_feature_view(
            self.features, cfg.dataset, task=cfg.task, fetch=self.fetch
        )
        snapshot = self.artifacts.put(
            f"training-sets/{cfg.model}/{run_id}/data.parquet",
            joined.data,
            content_type=PARQUET_CONTENT_TYPE,
        )
        dataset = joined.dataset.model_copy(update={"dataset_id": snapshot.uri})
        lineage_dataset = cfg.dataset.snapshot(
            snapshot.uri, target=dataset.target, features=dataset.feature_names
        )
        config = cfg.model_copy(update={"dataset": lineage_dataset})
        return config, dataset, joined.lineage, snapshot

    def train_from_dict(
        self, config: dict[str, Any], *, reason: str | None = None, progress: Progress = _quiet
    ) -> TrainReport:
        """:meth:`train` from a config given as a dict (validated the same way as a file)."""
        from flywheel.training.config import parse_config

        return self.train(parse_config(config), reason=reason, progress=progress)

    def reproduce(self, name: str, version: int | str) -> ReproduceReport:
        """Re-train a registered version from its lineage and compare the results."""
        from flywheel.training.reproduce import reproduce

        registered = self.registry.resolve(name, version)
        onnx_bytes = self.artifacts.get(registered.artifact)
        return reproduce(registered, onnx_bytes, fetch=self.fetch)

    # -- governance ----------------------------------------------------------------------------
    def approve(self, name: str, version: int, *, reason: str) -> ModelVersion:
        return self.registry.approve(name, version, actor=self.actor, reason=reason)

    def reject(self, name: str, version: int, *, reason: str) -> ModelVersion:
        return self.registry.reject(name, version, actor=self.actor, reason=reason)

    def promote(self, name: str, version: int, *, reason: str) -> ModelVersion:
        return self.registry.promote(name, version, actor=self.actor, reason=reason)

    def rollback(self, name: str, *, reason: str) -> ModelVersion:
        """Champion back to the previous production version; alias ``live`` follows.

        The registry change and its audit entry are one transaction; then, when this SDK
        knows the serving deployment (``FLYWHEEL_INFERENCE_FUNCTIONS``), alias ``live`` is
        pointed at the restored version's published Lambda version alone.
        """
        restored = self.registry.rollback(name, actor=self.actor, reason=reason)
        if self.serving is not None:
            self.serving(name)
        return restored

    # -- workflow configuration ----------------------------------------------------------------
    def configure_model(
        self, name: str, config: ModelConfig | str | Path, *, reason: str | None = None
    ) -> StoredConfig:
        """Store ``name``'s workflow config (training, gate, retraining, approval); audited.

        Examples
        --------
        >>> fw = Flywheel.in_memory(actor="ana")
        >>> stored = fw.configure_model("iris", "examples/iris.model.yaml")  # doctest: +SKIP
        >>> stored.revision  # doctest: +SKIP
        1
        """
        from flywheel.errors import ConfigError
        from flywheel.workflows.config import ModelConfig, load_model_config

        if isinstance(config, ModelConfig):
            if config.name != name:
                raise ConfigError(
                    f"name: the config is for {config.name!r}, not {name!r}", field="name"
                )
            parsed = config
        else:
            parsed = load_model_config(Path(config), name=name)
        return self._configs().put(parsed, actor=self.actor, reason=reason)

    def model_config(self, name: str) -> StoredConfig:
        """The stored workflow config of ``name`` (``ModelConfigNotFoundError`` if none)."""
        return self._configs().get(name)

    def _configs(self) -> ModelConfigStore:
        from flywheel.workflows.config import ModelConfigStore

        if self.records is None:
            raise InvalidInputError("this Flywheel has no record store", field="records")
        return ModelConfigStore(self.registry, self.records)

    # -- reads ---------------------------------------------------------------------------------
    def list_models(self, *, limit: int = 50, page_token: str | None = None) -> Page[Model]:
        return self.registry.registry.list_models(limit=limit, page_token=page_token)

    def list_versions(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[ModelVersion]:
        return self.registry.registry.list_versions(name, limit=limit, page_token=page_token)

    def get_model(self, name: str) -> Model:
        return self.registry.get_model(name)

    def get_version(self, name: str, ref: int | str = Alias.CHAMPION) -> ModelVersion:
        return self.registry.resolve(name, ref)

    def audit_entries(self, name: str) -> list[AuditEntry]:
        """The model's audit chain (it starts before the first version is registered)."""
        entries = list(self.registry.audit.entries(name))
        if not entries:
            self.registry.get_model(name)  # unknown model: a clear ModelNotFoundError
        return entries

    def audit_head(self, name: str) -> ChainHead | None:
        return self.registry.audit.head(name)

    def verify(self, name: str, *, anchor: ChainHead | None = None) -> VerifyReport:
        if self.registry.audit.head(name) is None:
            self.registry.get_model(name)  # unknown model: a clear ModelNotFoundError
        return self.registry.verify(name, anchor=anchor)

    # -- inference -----------------------------------------------------------------------------
    def compare_variants(
        self,
        name: str,
        *,
        hours: int = 24,
        expected_share_b: float | None = None,
        labels: Mapping[tuple[str, int], Any] | None = None,
        now: datetime | None = None,
    ) -> VariantComparison:
        """Compare what each variant served in the last ``hours`` (shadow agreement, A/B arms).

        Reads the captured rows of every version of ``name`` partitioned in the window
        (whole hours, UTC).  ``labels`` maps ``(request_id, row)`` to ground truth.

        Raises
        ------
        ConfigError
            This SDK has no capture store (built without a deployment).
        InvalidInputError
            ``hours`` is not positive.
        ModelNotFoundError
            No model is registered under ``name``.
        """
        from flywheel.serving.capture import decode_capture
        from flywheel.serving.comparison import compare_variants, partition_hour

        if self.capture is None:
            raise ConfigError("no capture store: build the SDK with from_settings", field="capture")
        if hours < 1:
            raise InvalidInputError("hours must be at least 1", field="hours")
        self.registry.get_model(name)  # a misspelt name is an error, not "nothing captured"
        end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=hours - 1)
        rows: list[dict[str, Any]] = []
        for key in self.capture.keys(f"capture/model={name}/"):
            hour = partition_hour(key)
            if hour is not None and start <= hour <= end:
                rows.extend(decode_capture(self.capture.get(key)))
        return compare_variants(name, rows, labels, expected_share_b=expected_share_b)

    def predict(
        self,
        name: str,
        records: Sequence[Mapping[str, Any]],
        *,
        version: int | str = Alias.CHAMPION,
    ) -> PredictResult:
        """Score records locally with the registered ONNX artifact (SHA-256 verified first)."""
        from flywheel.serving.predictor import OnnxModel, records_to_matrix

        if not records:
            raise InvalidInputError("no records to score", field="records")
        registered = self.registry.resolve(name, version)
        data = self.artifacts.get(registered.artifact)
        model = OnnxModel.load(
            data,
            expected_sha256=registered.artifact.sha256,
            input_schema=registered.input_schema,
            output_schema=registered.output_schema,
        )
        prediction = model.predict(records_to_matrix(records, registered.input_schema))
        probabilities = (
            prediction.probabilities.tolist() if prediction.probabilities is not None else None
        )
        outputs: list[Any] = (
            list(prediction.labels)
            if prediction.values is None
            else [float(v) for v in prediction.values]
        )
        return PredictResult(
            model=name,
            version=registered.version,
            predictions=outputs,
            probabilities=probabilities,
        )

    def load_reference_profile(self, version: ModelVersion) -> Any:
        """The version's reference profile (SHA-256 verified)."""
        if version.reference_profile is None:
            raise ArtifactNotFoundError(f"version {version.version} has no reference profile")
        return self.artifacts.get_json(version.reference_profile)


def local_resource_names(settings: Settings) -> dict[str, str]:
    return {
        "FLYWHEEL_REGISTRY_TABLE": settings.registry_table,
        "FLYWHEEL_AUDIT_TABLE": settings.audit_table,
        "FLYWHEEL_ONLINE_FEATURES_TABLE": settings.online_features_table,
        "FLYWHEEL_IDEMPOTENCY_TABLE": settings.idempotency_table,
        "FLYWHEEL_ARTIFACTS_BUCKET": settings.artifacts_bucket,
        "FLYWHEEL_FEATURES_BUCKET": settings.features_bucket,
    }


def _caller_identity(session: Any, settings: Settings, client_kwargs: dict[str, Any]) -> str:
    """In AWS, the IAM principal making the calls; locally, the OS user."""
    if settings.backend != "aws":
        return _default_actor()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(session.client("sts", **client_kwargs).get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return _default_actor()


def _default_actor() -> str:
    for var in ("FLYWHEEL_ACTOR", "USER", "USERNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
