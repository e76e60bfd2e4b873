"""The Python SDK: every CLI operation as a method, on a platform from the composition root.

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

from flywheel.audit.models import AuditAction
from flywheel.composition import AwsPlatform, InMemoryPlatform, environment_settings
from flywheel.errors import (
    ApproverNotAllowedError,
    ArtifactNotFoundError,
    ConfigError,
    InvalidInputError,
    NotPermittedError,
    ReasonRequiredError,
    UnauthenticatedError,
)
from flywheel.registry.models import (
    Alias,
    ArtifactRef,
    FeatureViewLineage,
    Model,
    ModelVersion,
    Page,
    RegistryKind,
    VersionStatus,
)
from flywheel.settings import Settings

if TYPE_CHECKING:
    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.audit.anchoring import AnchorOutcome
    from flywheel.audit.chain import VerifyReport
    from flywheel.audit.models import AuditEntry, ChainHead
    from flywheel.composition import Platform
    from flywheel.features.store import FeatureStore
    from flywheel.llm.catalog import PromptCatalog, PromptDiff, PromptVersion
    from flywheel.llm.costs import LlmCostReport
    from flywheel.llm.prompts import PromptSpec
    from flywheel.project.loader import LoadedProject
    from flywheel.registry.ports import RegistryStorage
    from flywheel.registry.service import RegistryService
    from flywheel.runs.log import RunLog
    from flywheel.runs.models import Run, RunComparison
    from flywheel.serving.capture import CaptureSource
    from flywheel.serving.comparison import VariantComparison
    from flywheel.serving.costs import ModelCostReport
    from flywheel.serving.experiments import Experiment
    from flywheel.training.config import TrainingConfig
    from flywheel.training.datasets import Dataset
    from flywheel.training.reproduce import ReproduceReport
    from flywheel.workflows.cards import ModelCard
    from flywheel.workflows.config import ModelConfig, ModelConfigStore, StoredConfig
    from flywheel.workflows.experiments import ExperimentReport
    from flywheel.workflows.ports import PlatformApi
    from flywheel.workflows.records import PromptEvaluationDoc
    from flywheel.workflows.stage_promotion import PromotionCheck, PromotionOutcome, StageRef

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
    #: The run recorded for this training (``flywheel runs list NAME``).
    run: Run | None = None


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`Flywheel.register_onnx` did: the version and how long each step took."""

    version: ModelVersion
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigChange:
    """What :meth:`Flywheel.apply_project` did to one model's stored workflow config."""

    model: str
    #: ``configured`` (new), ``changed``, ``unchanged``, or ``retired`` (stored, but the
    #: project no longer names the model in this stage: left as it is).
    action: str
    revision: int | None
    sha256: str | None


@dataclass(frozen=True)
class ChangeResult:
    """A promotion or rollback: the new champion and what alias ``live`` serves."""

    version: ModelVersion
    #: The Lambda version alias live serves alone; ``None``: no inference function is
    #: deployed for the model (only the registry changed).
    lambda_version: str | None


@dataclass(frozen=True)
class WinnerResult:
    """What :meth:`Flywheel.promote_winner` did: the stopped experiment, its winner, and
    the promotion request (``None`` when the champion won and nothing is promoted)."""

    experiment: Experiment
    winner: int
    promotion: dict[str, Any] | None


@dataclass(frozen=True)
class PromptRegistration:
    """What :meth:`Flywheel.register_prompt` did: the version, whether it was created now
    (``False``: the latest version already held this spec) and its approval."""

    version: ModelVersion
    spec: PromptSpec
    created: bool
    approval_id: str | None


@dataclass(frozen=True)
class CostReport:
    """What :meth:`Flywheel.cost_report` found: the LLM gateway's usage per prompt and
    team, and the classic models' serving (``None`` when the report was narrowed to a
    prompt or a team)."""

    llm: LlmCostReport
    models: ModelCostReport | None


@dataclass(frozen=True)
class PredictResult:
    model: str
    version: int
    predictions: list[Any]
    probabilities: list[list[float]] | None


class Flywheel:
    """Train, govern and use models. Build it with :meth:`connect` or :meth:`in_memory`."""

    def __init__(
        self,
        platform: Platform,
        *,
        actor: str,
        features: FeatureStore | None = None,
    ) -> None:
        self.platform = platform
        self.registry: RegistryService = platform.registry
        self.artifacts: ArtifactStore = platform.artifacts
        #: Workflow records (model configs, run locks, approvals) next to the registry.
        self.records: RegistryStorage = platform.records
        self.actor = actor
        self._features = features

    @property
    def features(self) -> FeatureStore:
        """The feature store, built on first use (only training from a view needs it)."""
        if self._features is None:
            self._features = self.platform.feature_store()
        return self._features

    @property
    def capture(self) -> CaptureSource:
        """Where the inference functions' captured predictions are (the features bucket)."""
        return self.platform.capture

    def fetch(self, uri: str) -> bytes:
        """The bytes of a dataset source (``s3://bucket/key``)."""
        return self.platform.fetch(uri)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def connect(cls, settings: Settings | None = None, *, actor: str | None = None) -> Flywheel:
        """The SDK on a deployment (``backend="aws"``) or on the local runtime.

        With ``backend="local"`` and no endpoint, the local runtime is started if it is
        not running and its endpoint and resource names are used.  In AWS, ``FLYWHEEL_STAGE``
        alone is enough: the stage's record names the rest; you act as your AWS identity.
        """
        from flywheel.local.server import connect

        settings = connect(settings or environment_settings(Settings))
        platform = AwsPlatform(settings)
        if settings.backend != "aws":
            return cls(platform, actor=actor or settings.actor or _default_actor())
        if actor or settings.actor:
            raise ConfigError(
                "--actor and FLYWHEEL_ACTOR apply to the local runtime only: in AWS you act "
                "as your AWS identity",
                field="actor",
            )
        principal = platform.caller_identity()
        if principal is None:
            raise UnauthenticatedError(
                "your AWS identity could not be established (sts:GetCallerIdentity failed); "
                "check your credentials",
                field="identity",
            )
        return cls(platform, actor=principal)

    @classmethod
    def for_stage(
        cls,
        stage: str,
        *,
        role_arn: str | None = None,
        actor: str | None = None,
        target: bool = False,
        settings: Settings | None = None,
    ) -> Flywheel:
        """The SDK on ``stage``, found through its SSM record (local runtime or AWS).

        ``target=True``: write through the stage's ``promotions`` capability (what a stage
        promotion into it needs); ``role_arn``: assume that role first (the target
        stage's promotion role, in another account).

        Examples
        --------
        >>> role = "arn:aws:iam::222222222222:role/flywheel-prod-stage-promotion"
        >>> prod = Flywheel.for_stage("prod", role_arn=role, target=True)  # doctest: +SKIP
        """
        from flywheel.composition.stages import PROMOTIONS_CAPABILITY, stage_platform
        from flywheel.local.server import connect

        if settings is None and os.environ.get("FLYWHEEL_BACKEND") == "aws":
            # Only where and how to reach AWS: the stage's record names everything else.
            settings = Settings(
                backend="local",
                region=os.environ.get("FLYWHEEL_REGION", "us-east-1"),
                endpoint_url=os.environ.get("FLYWHEEL_ENDPOINT_URL"),
            ).model_copy(update={"backend": "aws"})
        base = settings if settings is not None else Settings()
        if base.backend != "aws":
            base = connect(base)
        if base.backend == "aws" and (actor or os.environ.get("FLYWHEEL_ACTOR")):
            raise ConfigError(
                "--actor and FLYWHEEL_ACTOR apply to the local runtime only: in AWS you act "
                "as your AWS identity",
                field="actor",
            )
        platform = stage_platform(
            stage,
            backend=base.backend,
            region=base.region,
            endpoint_url=base.endpoint_url,
            project=os.environ.get("FLYWHEEL_PROJECT", "flywheel"),
            role_arn=role_arn,
            capability=PROMOTIONS_CAPABILITY if target else None,
        )
        if base.backend != "aws":
            return cls(platform, actor=actor or base.actor or _default_actor())
        proven = platform.caller_identity()
        if proven is None:
            raise UnauthenticatedError(
                f"your AWS identity in {stage} could not be established "
                "(sts:GetCallerIdentity failed); check your credentials",
                field="identity",
            )
        return cls(platform, actor=proven)

    @classmethod
    def in_memory(
        cls,
        *,
        actor: str = "local-user",
        platform: InMemoryPlatform | None = None,
        features: FeatureStore | None = None,
    ) -> Flywheel:
        """Everything in process memory: for tests, notebooks and experiments.

        ``features`` (e.g. one built by ``platform.feature_store(...)`` with your own
        transformations) lets :meth:`train` build training sets from feature views.
        """
        return cls(platform or InMemoryPlatform(), actor=actor, features=features)

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
        from flywheel.runs.log import training_runs
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

        progress(f"training {cfg.entrypoint or cfg.estimator}, converting to ONNX, checking parity")
        started_at, started = self.platform.clock.now(), time.perf_counter()
        outcome = train(cfg, dataset, run_id=run_id, feature_view=feature_view)
        duration = time.perf_counter() - started

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
        explainer_ref = None
        if outcome.explainer_bytes is not None:
            explainer_ref = self.artifacts.put(
                f"{prefix}/explainer.npz",
                outcome.explainer_bytes,
                content_type="application/octet-stream",
            )
        timings["upload_s"] = time.perf_counter() - started

        progress("registering the candidate and requesting approval")
        started = time.perf_counter()
        draft = outcome.version_draft(
            artifact, reference_profile=profile_ref, explainer=explainer_ref
        )
        version = self.registry.register(draft, actor=self.actor, reason=reason)
        version = self.registry.request_approval(cfg.model, version.version, actor=self.actor)
        timings["register_s"] = time.perf_counter() - started
        run, trials = training_runs(
            outcome, actor=self.actor, started_at=started_at, duration_seconds=duration
        )
        run = self.run_log.record(run.model_copy(update={"version": version.version}), trials)
        timings.update({f"{k}_s": v for k, v in outcome.timings.items()})
        return TrainReport(version=version, timings=timings, training_set=snapshot, run=run)

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

    # -- experiment runs -----------------------------------------------------------------------
    @property
    def run_log(self) -> RunLog:
        """Every training and search trial of every model (``flywheel runs``)."""
        return self.platform.run_log()

    def runs(self, name: str, *, trials: bool = False) -> list[Run]:
        """The runs of ``name``, newest first; ``trials``: each search's trials after its run.

        Examples
        --------
        >>> Flywheel.in_memory().runs("churn")
        []
        """
        return self.run_log.runs(name, trials=trials)

    def compare_runs(self, *run_ids: str, model: str | None = None) -> RunComparison:
        """Runs side by side: parameters and metrics, one value per run.

        Raises
        ------
        RunNotFoundError
            Naming the first run id that no model (or ``model``) has.
        InvalidInputError
            Fewer than two run ids.
        """
        if len(run_ids) < 2:
            raise InvalidInputError("runs: name at least two runs to compare", field="runs")
        return self.run_log.compare(run_ids, model=model)

    def train_from_dict(
        self, config: dict[str, Any], *, reason: str | None = None, progress: Progress = _quiet
    ) -> TrainReport:
        """:meth:`train` from a config given as a dict (validated the same way as a file)."""
        from flywheel.training.config import parse_config

        return self.train(parse_config(config), reason=reason, progress=progress)

    def register_onnx(
        self,
        name: str,
        onnx: str | Path,
        *,
        schema: str | Path | Mapping[str, Any],
        reference: str | Path,
        expected: str | Path | None = None,
        reason: str | None = None,
        progress: Progress = _quiet,
    ) -> ImportReport:
        """Register an ONNX model trained elsewhere, through the same gate as a trained one.

        Validates the graph against ``schema``, runs it on the ``reference`` sample
        (CSV or Parquet), compares ``expected`` outputs when given, profiles the sample
        for drift, uploads the model and profile, registers a candidate whose lineage
        says it is not reproducible, and asks for approval. Nothing is registered when
        any step fails (see :func:`~flywheel.training.byo.import_onnx`).

        Examples
        --------
        >>> fw = Flywheel.in_memory(actor="ana")
        >>> fw.register_onnx(
        ...     "iris", "model.onnx", schema="schema.yaml", reference="sample.csv"
        ... ).version.status  # doctest: +SKIP
        <VersionStatus.PENDING_APPROVAL: 'pending_approval'>
        """
        from flywheel.registry.models import validate_model_name
        from flywheel.training.byo import import_onnx, load_schema, load_schema_file, read_file

        try:
            validate_model_name(name)
        except ValueError as err:
            raise ConfigError(f"name: {err}", field="name") from None
        timings: dict[str, float] = {}
        started = time.perf_counter()
        parsed = load_schema_file(schema) if isinstance(schema, str | Path) else load_schema(schema)
        onnx_bytes = read_file(onnx, field="onnx")
        sample = read_file(reference, field="reference")
        outputs = None if expected is None else read_file(expected, field="expected")
        run_id = f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"

        progress("validating the ONNX model and running it on the reference sample")
        imported = import_onnx(
            name,
            onnx_bytes,
            parsed,
            reference=sample,
            reference_name=Path(reference).name,
            expected=outputs,
            expected_name=None if expected is None else Path(expected).name,
            artifact_name=Path(onnx).name,
            run_id=run_id,
        )
        timings["check_s"] = time.perf_counter() - started

        progress("uploading artifact and reference profile")
        started = time.perf_counter()
        prefix = f"models/{name}/{run_id}"
        artifact = self.artifacts.put(
            f"{prefix}/model.onnx", imported.onnx_bytes, content_type="application/octet-stream"
        )
        profile_ref = self.artifacts.put_json(
            f"{prefix}/reference_profile.json", imported.profile.model_dump(mode="json")
        )
        timings["upload_s"] = time.perf_counter() - started

        progress("registering the candidate and requesting approval")
        started = time.perf_counter()
        draft = imported.version_draft(artifact, reference_profile=profile_ref)
        version = self.registry.register(draft, actor=self.actor, reason=reason)
        version = self.registry.request_approval(name, version.version, actor=self.actor)
        timings["register_s"] = time.perf_counter() - started
        return ImportReport(version=version, timings=timings)

    def reproduce(self, name: str, version: int | str) -> ReproduceReport:
        """Re-train a registered version from its lineage and compare the results."""
        from flywheel.training.reproduce import reproduce

        registered = self.registry.resolve(name, version)
        onnx_bytes = self.artifacts.get(registered.artifact)
        return reproduce(registered, onnx_bytes, fetch=self.fetch)

    # -- governance ----------------------------------------------------------------------------
    def retrain(self, name: str, *, reason: str, code_version: str | None = None) -> dict[str, Any]:
        """Ask for a training run of a configured model, as yourself (``code_version``: the
        git commit the run is for, recorded in its lineage; CI passes the deployed commit).

        The request goes through the API's retrain route (SigV4 in AWS; its function on the
        local runtime), so the run's requester is who the API says you are, and you will
        not be able to approve its candidate. Returns the API's receipt (``model_name``,
        ``requested_by``, ``reason``, ``event_id``); the run starts asynchronously.

        Raises
        ------
        ReasonRequiredError
            ``reason`` is empty.
        ConfigError
            No API here (an in-memory SDK).
        ModelNotFoundError
            The model has no workflow config (``flywheel models configure``).
        """
        if not (reason and reason.strip()):
            raise ReasonRequiredError("a reason is required to ask for a training run",
                                      field="reason")  # fmt: skip
        api = self.platform.api(self.actor)
        if api is None:
            raise ConfigError(
                "training runs are asked for through the platform's API: connect to the local "
                "runtime or a deployed stage",
                field="backend",
            )
        return api.request_retrain(name, reason=reason, code_version=code_version)

    def approve(self, name: str, version: int, *, reason: str) -> ModelVersion:
        """Approve ``version``: through its training run's approval when one waits on it
        (the API's path and checks, and the run resumes), else directly where allowed.

        Raises
        ------
        NotPermittedError
            In AWS, no run waits on the version and its policy allows no direct approval.
        ApproverNotAllowedError
            The four-eyes rule or the model's approver list refuses this actor.
        """
        return self._decide(name, version, "approve", reason)

    def reject(self, name: str, version: int, *, reason: str) -> ModelVersion:
        """Reject ``version`` (the same paths and checks as :meth:`approve`)."""
        return self._decide(name, version, "reject", reason)

    def _decide(self, name: str, version: int, decision: str, reason: str) -> ModelVersion:
        from flywheel.workflows.approvals import Decision
        from flywheel.workflows.records import ApprovalStatus

        action = AuditAction.APPROVED if decision == "approve" else AuditAction.REJECTED
        if not (reason and reason.strip()):
            raise ReasonRequiredError(f"a reason is required to record '{action}'", field="reason")
        self.registry.get_version(name, version)  # unknown model or version: a clear error
        service = self.platform.approval_service()
        found = service.find_for_version(name, version)
        if found is not None and found[0].status is ApprovalStatus.PENDING:
            api = self.platform.api(self.actor)
            if api is not None:
                api.decide(found[0].approval_id, decision=decision, reason=reason)
            else:
                service.decide(
                    found[0].approval_id, decision=Decision(decision), approver=self.actor,
                    reason=reason,
                )  # fmt: skip
            return self.registry.get_version(name, version)
        self._check_direct_decision(name, version)
        move = self.registry.approve if decision == "approve" else self.registry.reject
        return move(name, version, actor=self.actor, reason=reason)

    def _check_direct_decision(self, name: str, version: int) -> None:
        from flywheel.workflows.approvals import refusal, requester_of
        from flywheel.workflows.config import ApprovalPolicy

        stored = self.platform.configs.find(name)
        policy = stored.config.approval if stored is not None else ApprovalPolicy()
        if self.platform.settings.backend == "aws" and not policy.allow_direct_approval:
            raise NotPermittedError(
                f"no training run waits on version {version} of {name!r}, and its approval "
                "policy does not allow direct approval (approval.allow_direct_approval)",
                field="version",
            )
        why = refusal(
            self.actor,
            requested_by=requester_of(self.registry.audit.entries(name), version) or "",
            approvers=policy.approvers,
            require_distinct=policy.require_distinct_approver,
            distinct_sessions=policy.distinct_sessions,
        )
        if why is not None:
            raise ApproverNotAllowedError(f"{why}; ask someone else", field="approver")

    def promote(self, name: str, version: int, *, reason: str) -> ChangeResult:
        """Make approved ``version`` the champion; alias ``live`` follows, all or nothing.

        Where the platform serves ``name`` (its deployment record names an inference
        function), alias live serves the version alone before the command returns; a
        failure of either half leaves registry, audit trail and alias as they were.
        """
        if not self.serves(name):
            promoted = self.registry.promote(name, version, actor=self.actor, reason=reason)
            return ChangeResult(promoted, lambda_version=None)
        done = self.platform.promotion_steps().promote_now(
            name, version, actor=self.actor, reason=reason
        )
        return ChangeResult(done.version, lambda_version=done.lambda_version)

    def rollback(self, name: str, *, reason: str) -> ChangeResult:
        """Champion back to the previous production version; alias ``live`` follows, all or
        nothing (as :meth:`promote`)."""
        if not self.serves(name):
            restored = self.registry.rollback(name, actor=self.actor, reason=reason)
            return ChangeResult(restored, lambda_version=None)
        done = self.platform.promotion_steps().rollback_now(name, actor=self.actor, reason=reason)
        return ChangeResult(done.version, lambda_version=done.lambda_version)

    # -- experiments ---------------------------------------------------------------------------
    def start_experiment(
        self,
        name: str,
        *,
        shadow: int | None = None,
        ab: int | None = None,
        weight: float | None = None,
        salt: str | None = None,
        reason: str | None = None,
    ) -> Experiment:
        """Start a shadow (``shadow=N``) or A/B (``ab=N``, ``weight``, ``salt``) experiment of
        version N against the champion; the inference function (for a prompt, the LLM
        gateway) picks it up from the registry.

        Raises
        ------
        InvalidInputError
            Neither or both of ``shadow`` and ``ab``; ``weight`` or ``salt`` for a shadow.
        ExperimentInProgressError, PromotionInProgressError, ExperimentRefusedError
            Another experiment or a canary is running; the version cannot take part.
        """
        from flywheel.serving.experiments import ExperimentKind

        if (shadow is None) == (ab is None):
            raise InvalidInputError("name one version: --shadow VERSION or --ab VERSION",
                                    field="version")  # fmt: skip
        if shadow is not None and (weight is not None or salt is not None):
            raise InvalidInputError("--weight and --salt belong to an A/B experiment",
                                    field="weight" if weight is not None else "salt")  # fmt: skip
        kind = ExperimentKind.SHADOW if shadow is not None else ExperimentKind.AB
        version = shadow if shadow is not None else ab
        assert version is not None
        return self.platform.experiments().start(
            name, kind=kind, version=version, weight=weight, salt=salt, actor=self.actor,
            reason=reason,
        )  # fmt: skip

    def stop_experiment(self, name: str, *, reason: str) -> Experiment:
        """Stop ``name``'s running experiment (audited with ``reason``); serving drops it."""
        return self.platform.experiments().stop(name, actor=self.actor, reason=reason)

    def experiment_report(self, name: str) -> ExperimentReport:
        """``name``'s latest experiment and the comparison of what its variants answered
        since it started (shadow agreement, or A/B arms with their split and, once labels
        came back, their metrics; for a prompt, each variant's calls, errors, latency,
        tokens and cost, and the A/B split)."""
        return self.platform.experiments().report(name)

    def promote_winner(self, name: str, *, reason: str, version: int | None = None) -> WinnerResult:
        """Stop ``name``'s experiment and have the promotion workflow roll its winner out.

        The winner is ``version`` when given, the shadow version, or the A/B arm that is
        significantly better on the delayed labels. It must be approved (the approval
        policy decided it); the request goes through the API's promotions route, so the
        canary steps, checks and audit are the promotion workflow's. A champion that
        wins is kept, and nothing is promoted. A stopped experiment whose promotion was
        not requested (the API failed) is finished by the same call.

        Raises
        ------
        ExperimentNotFoundError
            No experiment runs (or waits for its winner's promotion).
        ExperimentRefusedError
            An A/B test without a verdict (name the winner), or a winner not approved.
        ConfigError
            No platform API to ask (the in-memory SDK).
        """
        if not (reason and reason.strip()):
            raise ReasonRequiredError("a reason is required to promote a winner", field="reason")
        service = self.platform.experiments()
        current = service.current(name)
        if current is not None and current.running:
            winner = service.winner(service.report(name), version)
            if winner == current.control:
                kept = service.stop(
                    name, actor=self.actor, reason=reason, winner=winner, outcome="champion kept"
                )
                return WinnerResult(kept, winner, None)
            self._check_promotable(name, winner)
            stopped = service.stop(
                name, actor=self.actor, reason=reason, winner=winner, outcome="promotion requested"
            )
        elif (
            current is not None
            and current.outcome == "promotion requested"
            and current.winner is not None
            and self.registry.get_version(name, current.winner).status is VersionStatus.APPROVED
            and version in (None, current.winner)
        ):
            stopped, winner = current, current.winner  # stopped; the request did not get through
        else:
            service.running(name)  # raises: nothing runs
            raise AssertionError("unreachable")  # pragma: no cover
        api = self.platform.api(self.actor)
        if api is None:
            raise ConfigError(
                "promotions are asked for through the platform's API: connect to the local "
                "runtime or a deployed stage",
                field="backend",
            )
        receipt = api.request_promotion(name, version=winner, reason=reason)
        return WinnerResult(stopped, winner, receipt)

    def _check_promotable(self, name: str, version: int) -> None:
        from flywheel.errors import ExperimentRefusedError

        status = self.registry.get_version(name, version).status
        if status is not VersionStatus.APPROVED:
            raise ExperimentRefusedError(
                f"version {version} of {name!r} won but is {status}: it must be approved first "
                "(flywheel approve, by someone its approval policy allows), then promoted",
                field="version",
            )

    def serves(self, name: str) -> bool:
        """Whether the platform deploys an inference function for ``name``."""
        return name in self.platform.settings.inference_functions

    # -- prompts (ADR 78) ----------------------------------------------------------------------
    @property
    def prompts(self) -> PromptCatalog:
        """Prompt versions in this registry (the shipped price table)."""
        return self.platform.prompt_catalog()

    def register_prompt(
        self, spec: PromptSpec | str | Path, *, reason: str | None = None
    ) -> PromptRegistration:
        """Validate a prompt spec (a file or a :class:`~flywheel.llm.prompts.PromptSpec`),
        store it, register it as a version of kind ``prompt`` and ask for its approval.

        Someone other than you approves it (``flywheel prompts approve``). Registering the
        spec the latest version already holds writes nothing new; it finishes an
        interrupted registration by asking for the approval. In a deployed stage the
        stage's registration route does it as you (``POST /v1/prompts/{name}/versions``:
        people's roles may not store specs nor announce approvals there), and a reason
        is required; the evaluation set the spec names travels with it, at most 1 MiB
        there (ADR 84). Locally and in memory it is done here.

        Raises
        ------
        ConfigError
            The spec is invalid, naming the field (``model_id``: no price for the model),
            or its evaluation set is (naming the line and field).
        RegistryKindError
            The name holds model versions.
        ReasonRequiredError
            In a deployed stage, no reason.
        PayloadTooLargeError
            In a deployed stage, an evaluation set larger than the route takes.

        Examples
        --------
        >>> fw = Flywheel.in_memory(actor="ana")
        >>> fw.register_prompt("examples/prompts/ticket-summary.v1.yaml").version.status
        <VersionStatus.PENDING_APPROVAL: 'pending_approval'>
        """
        from flywheel.llm.prompts import PromptSpec, load_prompt_file
        from flywheel.training.lineage import dependency_lock_hash

        parsed = spec if isinstance(spec, PromptSpec) else load_prompt_file(spec)
        api = self.platform.deployed_api()
        if api is not None:
            return self._register_through_route(api, parsed, reason)
        done = self.platform.prompt_registrations().register(
            parsed, actor=self.actor, environment=dependency_lock_hash(), reason=reason
        )
        return PromptRegistration(
            version=done.version, spec=done.spec, created=done.created, approval_id=done.approval_id
        )

    def _register_through_route(
        self, api: PlatformApi, spec: PromptSpec, reason: str | None
    ) -> PromptRegistration:
        """The deployed stage's registration route, as this identity, with the lines of the
        evaluation set the spec names (ADR 84); the price is checked here first so that the
        error reads as it does locally. The spec returned holds the set as sealed."""
        if not (reason and reason.strip()):
            raise ReasonRequiredError(
                "a reason is required to register a prompt version in a deployed stage",
                field="reason",
            )
        from flywheel.llm.prompts import EvaluationSpec
        from flywheel.llm.registration import request_body

        self.prompts.prices.price(spec.model_id, spec.provider)
        body, lines = request_body(spec)
        receipt = api.register_prompt(spec.name, body, reason=reason, evaluation_set=lines)
        version = self.registry.get_version(spec.name, int(receipt["version"]))
        approval = receipt.get("approval_id")
        sealed = receipt.get("evaluation")
        if sealed is not None:
            spec = spec.model_copy(update={"evaluation": EvaluationSpec.model_validate(sealed)})
        return PromptRegistration(
            version=version,
            spec=spec,
            created=bool(receipt["created"]),
            approval_id=str(approval) if approval is not None else None,
        )

    def list_prompts(self, *, limit: int = 50, page_token: str | None = None) -> Page[Model]:
        """The registered prompts, by name."""
        return self.prompts.list_prompts(limit=limit, page_token=page_token)

    def get_prompt(self, name: str) -> Model:
        """Prompt ``name``'s registry record (version counter, aliases).

        Raises
        ------
        ModelNotFoundError
            No prompt of that name.
        RegistryKindError
            The name holds model versions.
        """
        self._expect_prompt(name)
        return self.registry.get_model(name)

    def prompt(self, name: str, ref: int | str = Alias.CHAMPION) -> PromptVersion:
        """Version ``ref`` of prompt ``name`` with its spec (SHA-256 verified)."""
        return self.prompts.get(name, ref)

    def prompt_evaluation(self, name: str, ref: int | str) -> PromptEvaluationDoc | None:
        """What the evaluation gate of version ``ref`` of prompt ``name`` decided (ADR 81):
        the outcome and reason, and the report (per evaluator the candidate's and the
        champion's means and rates, the paired interval, the verdicts, the worst items
        with their evidence); ``None`` while its promotion workflow has not run the gate.

        Examples
        --------
        >>> fw = Flywheel.in_memory(actor="ana")
        >>> _ = fw.register_prompt("examples/prompts/ticket-summary.v1.yaml")
        >>> fw.prompt_evaluation("ticket-summary", 1) is None
        True
        """
        from flywheel.workflows.prompt_gate import read_evaluation

        version = self.prompts.get(name, ref).version
        return read_evaluation(self.platform.records, name, version.version)

    def diff_prompts(self, name: str, before: int | str, after: int | str) -> PromptDiff:
        """What changed between two versions of prompt ``name`` (template, parameters…)."""
        return self.prompts.diff(name, before, after)

    def approve_prompt(self, name: str, version: int, *, reason: str) -> ModelVersion:
        """Approve a prompt version: its approval's path and checks (:meth:`approve`)."""
        self._expect_prompt(name)
        return self.approve(name, version, reason=reason)

    def reject_prompt(self, name: str, version: int, *, reason: str) -> ModelVersion:
        """Reject a prompt version (as :meth:`approve_prompt`)."""
        self._expect_prompt(name)
        return self.reject(name, version, reason=reason)

    def promote_prompt(self, name: str, version: int, *, reason: str) -> ModelVersion:
        """Make an approved prompt version the champion now, by hand; the previous champion
        is archived and remembered for rollback. The gateway routes to it from the
        registry (approving a version already starts its promotion workflow, with a
        canary: this skips the canary).

        Raises
        ------
        PromotionInProgressError
            A version is on canary: its promotion workflow promotes it or rolls it back.
        ExperimentInProgressError
            An experiment runs (stop it, or promote its winner).
        """
        self._expect_prompt(name)
        if not (reason and reason.strip()):
            raise ReasonRequiredError("a reason is required to record 'promoted'", field="reason")
        steps = self.platform.promotion_steps()
        return steps.promote_now(name, version, actor=self.actor, reason=reason).version

    def rollback_prompt(self, name: str, *, reason: str) -> ModelVersion:
        """Champion back to the prompt's previous production version, audited (refused
        while a version is on canary, as :meth:`promote_prompt`)."""
        self._expect_prompt(name)
        if not (reason and reason.strip()):
            raise ReasonRequiredError(
                "a reason is required to record 'rolled_back'", field="reason"
            )
        steps = self.platform.promotion_steps()
        return steps.rollback_now(name, actor=self.actor, reason=reason).version

    # -- costs -----------------------------------------------------------------------------------
    def cost_report(
        self,
        *,
        prompt: str | None = None,
        team: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> CostReport:
        """What the period cost: LLM calls per prompt (by version and variant) and per
        team, from the gateway's usage counters; the classic models' requests, Lambda
        GB-seconds and estimated cost per model version, from the inference functions'
        metrics. ``since`` / ``until``: UTC days ``YYYY-MM-DD``, both included (default:
        this month so far). ``prompt`` or ``team`` narrows the report to it.

        Raises
        ------
        InvalidInputError
            A day is malformed, ``since`` is after ``until`` or in the future, or ``team``
            is not a team tag.
        ModelNotFoundError
            No prompt is registered under ``prompt``.

        Examples
        --------
        >>> fw = Flywheel.in_memory(actor="ana")
        >>> report = fw.cost_report(since="2026-12-01", until="2026-12-07")
        >>> report.llm.prompts, report.models.models
        ((), ())
        """
        from flywheel.llm.budgets import Scope
        from flywheel.llm.costs import ReportPeriod, llm_cost_report
        from flywheel.llm.prices import default_prices
        from flywheel.serving.costs import model_cost_report

        today = self.platform.clock.now().astimezone(UTC).date()
        period = ReportPeriod.of(since, until, today=today)
        if prompt is not None:
            self._expect_prompt(prompt)
        everything = prompt is None and team is None
        scopes = tuple(
            scope
            for scope, named in ((Scope.PROMPT, prompt), (Scope.TEAM, team))
            if everything or named is not None
        )
        llm = llm_cost_report(
            self.platform.usage_store,
            since=period.since,
            until=period.until,
            currency=default_prices().currency,
            prompt=prompt,
            team=team,
            scopes=scopes,
        )
        models = None
        if everything:
            settings = self.platform.settings
            models = model_cost_report(
                self.platform.serving_usage,
                settings.inference_functions,
                since=period.since,
                until=period.until,
                alias=settings.live_alias,
            )
        return CostReport(llm=llm, models=models)

    def _expect_prompt(self, name: str) -> None:
        from flywheel.errors import ModelNotFoundError, RegistryKindError

        try:
            found = self.registry.get_model(name)
        except ModelNotFoundError:
            raise ModelNotFoundError(f"prompt {name!r} does not exist", field="name") from None
        if found.kind is not RegistryKind.PROMPT:
            raise RegistryKindError.of(name, found.kind, RegistryKind.PROMPT)

    def _expect_model(self, name: str) -> None:
        """Refuse a prompt's name where a model is meant (an unknown name is left to the
        caller's own checks)."""
        from flywheel.errors import ModelNotFoundError, RegistryKindError

        try:
            found = self.registry.get_model(name)
        except ModelNotFoundError:
            return
        if found.kind is not RegistryKind.MODEL:
            raise RegistryKindError.of(name, found.kind, RegistryKind.MODEL)

    # -- stages --------------------------------------------------------------------------------
    def promote_to_stage(
        self,
        name: str,
        version: int,
        *,
        target: Flywheel,
        from_stage: str,
        to_stage: str,
        reason: str | None = None,
    ) -> PromotionOutcome:
        """Copy ``version`` of ``name`` from this stage into ``target``'s registry (ADR 65).

        The bytes are copied and re-verified in the target, which registers a new
        candidate and asks for its approval; both trails record the promotion and name
        each other's entry. A failure says what is done; the same call finishes it.

        Examples
        --------
        >>> dev, prod = Flywheel.in_memory(actor="ana"), Flywheel.in_memory(actor="ana")
        >>> dev.promote_to_stage("churn", 3, target=prod, from_stage="dev",
        ...                      to_stage="prod")  # doctest: +SKIP
        """
        from flywheel.artifacts.validation import validate_onnx
        from flywheel.workflows.stage_promotion import StagePromotion

        self._expect_model(name)
        promotion = StagePromotion(
            source=self._stage(from_stage),
            target=target._stage(to_stage),
            actor=self.actor,
            target_actor=target.actor,
            validate=validate_onnx,
        )
        return promotion.promote(name, version, reason=reason)

    def verify_promotions(
        self, name: str, *, target: Flywheel, from_stage: str, to_stage: str
    ) -> PromotionCheck:
        """Follow ``name``'s promotions from this stage to ``target`` through both trails.

        Examples
        --------
        >>> dev, prod = Flywheel.in_memory(), Flywheel.in_memory()
        >>> dev.verify_promotions("churn", target=prod, from_stage="dev", to_stage="prod").ok
        True
        """
        from flywheel.workflows.stage_promotion import verify_promotions

        return verify_promotions(
            name, source=self._stage(from_stage), target=target._stage(to_stage)
        )

    def _stage(self, stage: str) -> StageRef:
        from flywheel.workflows.approvals import ANNOUNCEMENT_SOURCE
        from flywheel.workflows.stage_promotion import StageRef

        return StageRef(
            stage,
            self.registry,
            self.records,
            self.artifacts,
            approvals=self.platform.approval_service(source=ANNOUNCEMENT_SOURCE),
            configs=self.platform.configs,
        )

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

    def apply_project(
        self, project: LoadedProject, stage: str, *, reason: str, dry_run: bool = False
    ) -> list[ConfigChange]:
        """Store the workflow config of every model ``project`` serves in ``stage`` whose
        stored config differs from the file's (what CI runs after a deploy); audited.

        Every config was validated when ``project`` was loaded, before anything is
        stored. Models already up to date are left alone, so a run that stopped halfway
        is finished by running it again. Where the platform has an API, each config goes
        through its config route as the caller (CI's deploy role needs nothing else);
        otherwise, and for ``dry_run``, the stored configs are read and compared here,
        and registered models the project no longer names are listed as ``retired``
        (they keep their config: their versions and trail stay governed).
        """
        if not (reason and reason.strip()):
            raise ReasonRequiredError("a reason is required to apply a project", field="reason")
        wanted = {m.name: project.model_configs[m.name] for m in project.project.models_in(stage)}
        api = None if dry_run else self.platform.api(self.actor)
        if api is not None:
            return [self._through_route(api, config, reason) for config in wanted.values()]
        changes: list[ConfigChange] = []
        for name, config in wanted.items():
            stored = self._configs().find(name)
            if stored is not None and stored.sha256 == config.sha256:
                changes.append(ConfigChange(name, "unchanged", stored.revision, config.sha256))
                continue
            action = "configured" if stored is None else "changed"
            revision = (stored.revision if stored else 0) + 1
            if not dry_run:
                revision = self._configs().put(config, actor=self.actor, reason=reason).revision
            changes.append(ConfigChange(name, action, revision, config.sha256))
        token: str | None = None
        while True:
            page = self.list_models(limit=100, page_token=token)
            for model in page.items:
                if model.name not in wanted and self._configs().find(model.name) is not None:
                    changes.append(ConfigChange(model.name, "retired", None, None))
            if (token := page.next_token) is None:
                return changes

    @staticmethod
    def _through_route(api: PlatformApi, config: ModelConfig, reason: str) -> ConfigChange:
        receipt = api.store_config(config.name, config.model_dump(mode="json"), reason=reason)
        revision = int(receipt["revision"])
        if not receipt["changed"]:
            action = "unchanged"
        else:
            action = "configured" if revision == 1 else "changed"
        return ConfigChange(config.name, action, revision, str(receipt["sha256"]))

    def model_config(self, name: str) -> StoredConfig:
        """The stored workflow config of ``name`` (``ModelConfigNotFoundError`` if none)."""
        return self._configs().get(name)

    def _configs(self) -> ModelConfigStore:
        return self.platform.configs

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
        """Verify ``name``'s chain: links, the audit writer's signature on the head, every
        anchor kept outside the database, the registry's state against the chain, and each
        version's artifacts against their digests."""
        if self.registry.audit.head(name) is None:
            self.registry.get_model(name)  # unknown model: a clear ModelNotFoundError
        from flywheel.workflows.evidence import verify_evidence

        store = self.platform.anchor_store
        return verify_evidence(
            self.registry,
            name,
            artifacts=self.artifacts,
            verifier=self.platform.signer,
            anchors=store.anchors(name) if store is not None else (),
            anchor=anchor,
        )

    def model_card(self, name: str, version: int | str | None = None) -> ModelCard:
        """The model card of ``version`` (number or alias; default: the champion, else the
        latest version) from the registry, its approval, the run log, the audit chain
        (verified: links, signed head, anchors, registry) and the model config.

        Raises
        ------
        ModelNotFoundError, VersionNotFoundError
            No such model, or no such version (or the model has none yet).

        Examples
        --------
        >>> card = Flywheel.connect().model_card("breast-cancer", 1)  # doctest: +SKIP
        >>> card.overview.owner, card.decision.actor  # doctest: +SKIP
        ('ml-platform-team', 'arn:aws:iam::123456789012:user/ana.approver')
        """
        from flywheel.errors import FlywheelError, VersionNotFoundError
        from flywheel.runs.models import RunNotFoundError
        from flywheel.workflows.approvals import find_approval
        from flywheel.workflows.cards import build_card
        from flywheel.workflows.evidence import verify_evidence

        model = self.registry.get_model(name)
        if version is None:
            version = model.champion or model.latest_version
            if not version:
                raise VersionNotFoundError(f"model {name!r} has no versions yet", field="version")
        registered = self.registry.resolve(name, version)
        found = find_approval(self.records, name, registered.version)
        try:
            stored = self.platform.configs.find(name)
        except FlywheelError:  # a config this release cannot read: the card goes without it
            stored = None
        run, trials = None, []
        try:
            run = self.run_log.get(name, registered.lineage.training_run_id)
            trials = self.run_log.trials(run)
        except RunNotFoundError:
            pass
        store = self.platform.anchor_store
        chain = verify_evidence(
            self.registry,
            name,
            verifier=self.platform.signer,
            anchors=store.anchors(name) if store is not None else (),
        )
        return build_card(
            model,
            registered,
            entries=self.registry.audit.entries(name),
            approval=found[0] if found is not None else None,
            config=stored.config if stored is not None else None,
            run=run,
            trials=trials,
            chain=chain,
            now=self.platform.clock.now(),
        )

    def anchor(self) -> list[AnchorOutcome]:
        """Anchor every chain now (what the scheduled anchor job does)."""
        return self.platform.anchoring().run()

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
        self._expect_model(name)
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


def _default_actor() -> str:
    for var in ("FLYWHEEL_ACTOR", "USER", "USERNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
