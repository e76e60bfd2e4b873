"""Every adapter and service of Flywheel, built on demand from settings.

:class:`AwsPlatform` wires the AWS adapters (DynamoDB, S3, Step Functions, EventBridge,
Lambda, CloudWatch, STS) with clients from :class:`~flywheel.composition.ClientFactory`;
:class:`InMemoryPlatform` wires the in-memory adapters.  The services are built the
same way on both.  Use-case modules are imported inside the methods, so building a
service loads only what it needs (no scikit-learn in a serving or approval function).
"""

from __future__ import annotations

import abc
import math
import os
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from flywheel.clock import default_clock
from flywheel.errors import ConfigError, DatasetError, FlywheelError, ModelUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import boto3
    from pydantic import BaseModel

    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
    from flywheel.adapters.lambda_records import LambdaRecordsWriter
    from flywheel.adapters.local_llm import LocalConverse
    from flywheel.adapters.memory_workflows import InMemoryEventPublisher
    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.audit.anchoring import Anchoring
    from flywheel.audit.ports import AnchorStore, AuditLog, HeadSigner
    from flywheel.clock import Clock
    from flywheel.composition.clients import ClientFactory
    from flywheel.features.ports import BlobStore, OnlineStore
    from flywheel.features.store import FeatureStore
    from flywheel.features.transformations import TransformationRegistry
    from flywheel.gateway.metrics import GatewayMetrics
    from flywheel.gateway.service import PromptGateway
    from flywheel.gateway.settings import GatewaySettings
    from flywheel.llm.budgets import Budgets
    from flywheel.llm.catalog import PromptCatalog
    from flywheel.llm.evaluation import EvaluationInput, Evaluator
    from flywheel.llm.gate import PromptGatePolicy
    from flywheel.llm.guardrails import GuardrailJudges, GuardrailPolicy
    from flywheel.llm.meter import BudgetMeter, UsageStore
    from flywheel.llm.monitor_policy import PromptMonitorPolicy
    from flywheel.llm.policy import LlmPolicy
    from flywheel.llm.prices import PriceTable
    from flywheel.llm.prompts import Provider
    from flywheel.llm.providers import CompletionProvider
    from flywheel.monitoring.drift_monitor import DriftMonitor
    from flywheel.monitoring.feedback import FeedbackService, LabelClaims
    from flywheel.monitoring.llm_monitor import LlmQualityMonitor
    from flywheel.monitoring.performance_monitor import PerformanceMonitor
    from flywheel.monitoring.reports import ReportIndex
    from flywheel.monitoring.settings import MonitoringSettings
    from flywheel.registry.ports import RegistryStorage
    from flywheel.registry.service import RegistryService
    from flywheel.runs.log import RunLog
    from flywheel.serving.capture import CaptureStore
    from flywheel.serving.costs import ServingUsage
    from flywheel.serving.metrics import ServingMetrics
    from flywheel.serving.service import FeatureLookup, InferenceService
    from flywheel.serving.settings import ServingSettings
    from flywheel.settings import Settings
    from flywheel.workflows.approvals import ApprovalService
    from flywheel.workflows.config import ModelConfigStore
    from flywheel.workflows.experiments import ExperimentService
    from flywheel.workflows.failures import WorkflowFailures
    from flywheel.workflows.ports import (
        CanaryHealth,
        EventPublisher,
        PlatformApi,
        ServingControl,
        TaskTokens,
    )
    from flywheel.workflows.promotion import PromotionSteps
    from flywheel.workflows.promotion_requests import PromotionRequests
    from flywheel.workflows.prompt_gate import EvaluationGate
    from flywheel.workflows.prompt_registration import PromptRegistrations
    from flywheel.workflows.retrain import RetrainRequests
    from flywheel.workflows.training import TrainingSteps
    from flywheel.workflows.writer import RecordsWriter

__all__ = [
    "AwsPlatform",
    "InMemoryPlatform",
    "Platform",
    "check_environment",
    "environment_settings",
]

S = TypeVar("S", bound="Settings")
P = TypeVar("P", bound="BaseModel")


class Platform(abc.ABC):
    """The composition root: adapters from the backend, services built on them.

    Subclasses provide the adapters (the ``_make_*`` methods); every service below is
    built from them the same way whatever the backend.
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or default_clock()

    # -- adapters (one per platform) ---------------------------------------------------------
    @cached_property
    def audit(self) -> AuditLog:
        return self._make_audit()

    @cached_property
    def signer(self) -> HeadSigner | None:
        """The audit writer's key (signs and verifies chain heads), if the platform has one."""
        return self._make_signer()

    @cached_property
    def anchor_store(self) -> AnchorStore | None:
        """Signed heads kept outside the database, if the platform has an anchors bucket."""
        return self._make_anchor_store()

    @cached_property
    def records(self) -> RegistryStorage:
        """Registry and workflow records (the registry table)."""
        return self._make_records()

    @cached_property
    def registry(self) -> RegistryService:
        from flywheel.registry.service import RegistryService

        return RegistryService(self.records, self.audit)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return self._make_artifacts()

    @cached_property
    def capture(self) -> CaptureStore:
        """Captured predictions and labels (the features bucket)."""
        return self._make_capture()

    @cached_property
    def reports(self) -> CaptureStore:
        """The monitors' reports, read back by key (the artifacts bucket)."""
        return self._make_reports()

    @cached_property
    def configs(self) -> ModelConfigStore:
        from flywheel.workflows.config import ModelConfigStore

        return ModelConfigStore(self.registry, self.records)

    @cached_property
    def tokens(self) -> TaskTokens:
        """Step Functions task tokens (approvals resume the training run)."""
        return self._make_tokens()

    @cached_property
    def serving_control(self) -> ServingControl:
        """Published versions and alias ``live`` of each model's inference function."""
        return self._make_serving_control()

    @cached_property
    def promotion_serving(self) -> ServingControl:
        """What the promotion steps route with: alias ``live`` of a model's inference
        function, or, for a prompt, the registry itself (the LLM gateway derives its
        routing from it), chosen by the name's registry kind."""
        from flywheel.workflows.prompt_serving import PromptServingControl, ServingByKind

        prompts = PromptServingControl(
            self.records, default_canary_weight=self.settings.canary_weight
        )
        return ServingByKind(self.records, models=self.serving_control, prompts=prompts)

    @cached_property
    def canary_health(self) -> CanaryHealth:
        return self._make_canary_health()

    @cached_property
    def label_claims(self) -> LabelClaims:
        return self._make_label_claims()

    @cached_property
    def blobs(self) -> BlobStore:
        """The offline feature store's objects (the features bucket)."""
        return self._make_blobs()

    @cached_property
    def usage_store(self) -> UsageStore:
        """LLM budget spend, usage counters and budget alerts (the gateway's usage table)."""
        return self._make_usage_store()

    @cached_property
    def serving_usage(self) -> ServingUsage:
        """The inference functions' versions and Lambda metrics (what serving costs)."""
        return self._make_serving_usage()

    def events(self, source: str | None = None) -> EventPublisher:
        """Publishes to the project bus with ``source`` (default: the settings')."""
        return self._make_events(source or self.settings.event_source)

    @abc.abstractmethod
    def fetch(self, uri: str) -> bytes:
        """The bytes of a dataset source (``s3://bucket/key``)."""

    @abc.abstractmethod
    def _make_audit(self) -> AuditLog: ...

    @abc.abstractmethod
    def _make_signer(self) -> HeadSigner | None: ...

    @abc.abstractmethod
    def _make_anchor_store(self) -> AnchorStore | None: ...

    @abc.abstractmethod
    def _make_records(self) -> RegistryStorage: ...

    @abc.abstractmethod
    def _make_artifacts(self) -> ArtifactStore: ...

    @abc.abstractmethod
    def _make_capture(self) -> CaptureStore: ...

    @abc.abstractmethod
    def _make_reports(self) -> CaptureStore: ...

    @abc.abstractmethod
    def _make_events(self, source: str) -> EventPublisher: ...

    @abc.abstractmethod
    def _make_tokens(self) -> TaskTokens: ...

    @abc.abstractmethod
    def _make_serving_control(self) -> ServingControl: ...

    @abc.abstractmethod
    def _make_canary_health(self) -> CanaryHealth: ...

    @abc.abstractmethod
    def _make_label_claims(self) -> LabelClaims: ...

    @abc.abstractmethod
    def _make_online_store(self, write_workers: int) -> OnlineStore: ...

    @abc.abstractmethod
    def _make_blobs(self) -> BlobStore: ...

    @abc.abstractmethod
    def _make_llm_provider(self, provider: Provider) -> CompletionProvider: ...

    @abc.abstractmethod
    def _make_usage_store(self) -> UsageStore: ...

    @abc.abstractmethod
    def _make_serving_usage(self) -> ServingUsage: ...

    def api(self, actor: str) -> PlatformApi | None:  # noqa: ARG002
        """The platform's API as ``actor`` calls it (``None``: no API, in process only)."""
        return None

    def deployed_api(self) -> PlatformApi | None:
        """A deployed stage's REST API, each request signed as this platform's AWS
        identity (``None`` elsewhere: in memory, and the local runtime's functions, which
        take a named actor). What only a deployed stage does through its API, because
        people's roles there lack the rights (registering prompts), goes through it."""
        return None

    @abc.abstractmethod
    def caller_identity(self) -> str | None:
        """The authenticated principal these adapters act as (``None``: not known)."""

    # -- audit -------------------------------------------------------------------------------
    def anchoring(self) -> Anchoring:
        """What the scheduled anchor job runs."""
        from flywheel.audit.anchoring import Anchoring

        store = self.anchor_store
        if store is None:
            raise ConfigError("FLYWHEEL_ANCHORS_BUCKET is not set", field="FLYWHEEL_ANCHORS_BUCKET")
        return Anchoring(audit=self.audit, anchors=store, clock=self.clock, verifier=self.signer)

    # -- workflows ---------------------------------------------------------------------------
    def approval_service(self, *, source: str | None = None) -> ApprovalService:
        """What ``approval_api.handler`` runs; its events carry ``source`` (default: the
        settings')."""
        from flywheel.workflows.approvals import ApprovalService

        return ApprovalService(
            registry=self.registry,
            records=self.records,
            tokens=self.tokens,
            events=self.events(source),
            clock=self.clock,
            max_timeout_seconds=self.settings.approval_timeout_seconds,
            rejected_error=self.settings.approval_rejected_error,
        )

    def training_steps(self) -> TrainingSteps:
        """What ``training_steps.handler`` runs (training sets from feature views too)."""
        from flywheel.workflows.training import TrainingSteps

        return TrainingSteps(
            registry=self.registry,
            records=self.records,
            artifacts=self.artifacts,
            approvals=self.approval_service(),
            fetch=self.fetch,
            clock=self.clock,
            lock_ttl_seconds=self.settings.run_lock_ttl_seconds,
            max_approval_timeout_seconds=self.settings.approval_timeout_seconds,
            features=self.feature_store(),
        )

    def promotion_steps(self) -> PromotionSteps:
        """What ``promotion_steps.handler`` runs."""
        from flywheel.workflows.promotion import PromotionSteps

        return PromotionSteps(
            registry=self.registry,
            records=self.records,
            serving=self.promotion_serving,
            health=self.canary_health,
            default_canary_weight=self.settings.canary_weight,
            canary_steps=self.settings.canary_steps,
            capture=self.capture,
            prediction_psi=self.settings.canary_prediction_psi,
            prediction_min_rows=self.settings.canary_prediction_min_rows,
            artifacts=self.artifacts,
            quality_rollback={
                name: policy.rollback_canary for name, policy in self.prompt_monitors().items()
            },
        )

    def run_log(self) -> RunLog:
        """Experiment runs (``flywheel runs``): records next to the registry, trials as JSON."""
        from flywheel.runs.log import RunLog

        return RunLog(self.records, self.artifacts, models=self.records)

    def retrain_requests(self) -> RetrainRequests:
        """What ``retrain_api.handler`` runs: ``RetrainRequested`` as ``flywheel.operator``."""
        from flywheel.workflows.retrain import OPERATOR_SOURCE, RetrainRequests

        return RetrainRequests(configs=self.configs, events=self.events(OPERATOR_SOURCE))

    def promotion_requests(self) -> PromotionRequests:
        """What the ``promotions`` route runs: ``PromotionRequested`` as ``flywheel.operator``."""
        from flywheel.workflows.promotion_requests import PromotionRequests
        from flywheel.workflows.retrain import OPERATOR_SOURCE

        return PromotionRequests(
            registry=self.registry, records=self.records, events=self.events(OPERATOR_SOURCE)
        )

    def experiments(self) -> ExperimentService:
        """Shadow and A/B experiments of models and prompts (``flywheel experiment``), with
        their comparison."""
        from flywheel.workflows.experiments import ExperimentService

        return ExperimentService(
            registry=self.registry,
            records=self.records,
            clock=self.clock,
            capture=self.capture,
            llm_capture_prefix=self.settings.llm_capture_prefix,
        )

    def workflow_failures(self) -> WorkflowFailures:
        """What ``record_failure`` runs (both workflows share the function)."""
        from flywheel.workflows.failures import WorkflowFailures

        return WorkflowFailures(
            registry=self.registry,
            approvals=self.approval_service(),
            promotion=self.promotion_steps(),
        )

    # -- monitoring --------------------------------------------------------------------------
    def _monitoring(self, settings: MonitoringSettings | None) -> MonitoringSettings:
        from flywheel.monitoring.settings import MonitoringSettings

        chosen = settings or self.settings
        if not isinstance(chosen, MonitoringSettings):
            raise ConfigError("monitoring services need MonitoringSettings", field="settings")
        return chosen

    def feedback_service(self, settings: MonitoringSettings | None = None) -> FeedbackService:
        """What ``feedback.handler`` runs."""
        from flywheel.monitoring.feedback import FeedbackService

        settings = self._monitoring(settings)
        return FeedbackService(
            registry=self.registry,
            claims=self.label_claims,
            sink=self.capture,
            clock=self.clock,
            prefix=settings.labels_prefix,
        )

    def drift_monitor(self, settings: MonitoringSettings | None = None) -> DriftMonitor:
        """What ``drift_scorer.handler`` runs."""
        from flywheel.monitoring.drift_monitor import DriftMonitor

        settings = self._monitoring(settings)
        return DriftMonitor(
            registry=self.registry,
            artifacts=self.artifacts,
            capture=self.capture,
            events=self.events(settings.event_source),
            clock=self.clock,
            capture_prefix=settings.capture_prefix,
            reports_prefix=settings.reports_prefix,
            configs=self.configs,
            prediction_psi=settings.prediction_psi,
        )

    def performance_monitor(self, settings: MonitoringSettings | None = None) -> PerformanceMonitor:
        """What ``performance_monitor.handler`` runs."""
        from flywheel.monitoring.performance_monitor import PerformanceMonitor

        settings = self._monitoring(settings)
        return PerformanceMonitor(
            registry=self.registry,
            configs=self.configs,
            artifacts=self.artifacts,
            capture=self.capture,
            labels=self.capture,
            events=self.events(settings.event_source),
            clock=self.clock,
            capture_prefix=settings.capture_prefix,
            labels_prefix=settings.labels_prefix,
            reports_prefix=settings.reports_prefix,
        )

    def llm_quality_monitor(self, settings: MonitoringSettings | None = None) -> LlmQualityMonitor:
        """What ``llm_monitor.handler`` runs: prompts' captured calls (``llm_capture_prefix``)
        scored by :meth:`quality_evaluators`, verdicts recorded and audited in the
        registry, ``LlmQualityDegraded`` as the monitoring source (ADR 82).

        Raises
        ------
        ConfigError
            ``FLYWHEEL_PROMPT_MONITORS`` or ``FLYWHEEL_LLM_POLICY`` is invalid.
        """
        from flywheel.monitoring.llm_monitor import LlmQualityMonitor

        settings = self._monitoring(settings)
        return LlmQualityMonitor(
            registry=self.registry,
            records=self.records,
            catalog=self.prompt_catalog(),
            evaluators=self.quality_evaluators,
            artifacts=self.artifacts,
            capture=self.capture,
            events=self.events(settings.event_source),
            clock=self.clock,
            policies=self.prompt_monitors(),
            llm_policy=self.llm_policy(),
            capture_prefix=settings.llm_capture_prefix,
            reports_prefix=settings.reports_prefix,
            cost=self.quality_cost,
        )

    def prompt_monitors(self) -> dict[str, PromptMonitorPolicy]:
        """Each prompt's production monitor policy (``FLYWHEEL_PROMPT_MONITORS``).

        Raises
        ------
        ConfigError
            A policy is invalid, naming the prompt and the first bad field.
        """
        from flywheel.llm.monitor_policy import PromptMonitorPolicy

        return _per_prompt(
            self.settings.prompt_monitors,
            PromptMonitorPolicy,
            "FLYWHEEL_PROMPT_MONITORS",
            "monitor",
        )

    def quality_evaluators(self, policy: PromptMonitorPolicy) -> dict[str, Evaluator]:
        """The evaluators of a prompt's production monitor: :meth:`prompt_evaluators` with
        the policy's thresholds (the local runtime, and prompts without a guardrail)."""
        return self.prompt_evaluators(policy.thresholds or None)

    def quality_cost(self, policy: PromptMonitorPolicy, item: EvaluationInput) -> Decimal:  # noqa: ARG002
        """What scoring ``item`` costs: nothing with the embedded evaluators."""
        return Decimal(0)

    def report_index(self, reports_prefix: str = "reports/") -> ReportIndex:
        """The monitors' reports (``flywheel monitor``)."""
        from flywheel.monitoring.reports import ReportIndex

        return ReportIndex(self.reports, prefix=reports_prefix)

    # -- LLM applications (ADR 78) -------------------------------------------------------------
    def prompt_catalog(self, prices: PriceTable | None = None) -> PromptCatalog:
        """Prompt versions in the registry (``prices``: default, the shipped table)."""
        from flywheel.llm.catalog import PromptCatalog

        return PromptCatalog(self.registry, self.artifacts, prices=prices)

    def prompt_registrations(self) -> PromptRegistrations:
        """Registering prompt versions and asking for their approval (the SDK's path, and
        what the registration route's function runs): announced as the training workflow
        announces its candidates (``ApprovalRequested``, the workflows' source)."""
        from flywheel.workflows.approvals import ANNOUNCEMENT_SOURCE
        from flywheel.workflows.prompt_registration import PromptRegistrations

        return PromptRegistrations(
            catalog=self.prompt_catalog(),
            approvals=self.approval_service(source=ANNOUNCEMENT_SOURCE),
            registry=self.registry,
        )

    def llm_provider(self, provider: Provider) -> CompletionProvider:
        """What answers prompts of ``provider``: its adapter, throttled and unavailable
        calls retried with jitter (``llm_max_attempts`` calls within ``llm_timeout_seconds``).

        Raises
        ------
        ConfigError
            ``openai_compatible`` without ``FLYWHEEL_OPENAI_BASE_URL``.
        """
        from flywheel.llm.providers import RetryingProvider, RetryPolicy

        policy = RetryPolicy(
            max_attempts=self.settings.llm_max_attempts,
            deadline_seconds=self.settings.llm_timeout_seconds,
        )
        return RetryingProvider(self._make_llm_provider(provider), policy)

    def llm_policy(self) -> LlmPolicy:
        """The stage's LLM policy (``FLYWHEEL_LLM_POLICY``; none set: no budgets).

        Raises
        ------
        ConfigError
            The policy is invalid, naming the first bad field.
        """
        from pydantic import ValidationError

        from flywheel.llm.policy import LlmPolicy

        try:
            return LlmPolicy.model_validate(self.settings.llm_policy)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "policy"
            raise ConfigError(
                f"FLYWHEEL_LLM_POLICY: {where}: {first.get('msg', 'invalid value')}",
                field="FLYWHEEL_LLM_POLICY",
            ) from None

    def budgets(self, policy: LlmPolicy | None = None) -> Budgets:
        """Reserve and settle LLM calls against the policy's budgets (ADR 79), counting
        their usage, on the usage table."""
        from flywheel.llm.budgets import Budgets

        chosen = policy or self.llm_policy()
        return Budgets(chosen.budget_policy(), self.usage_store, clock=self.clock)

    def prompt_gateway(
        self,
        settings: GatewaySettings | None = None,
        *,
        metrics: GatewayMetrics,
        background: bool = True,
    ) -> PromptGateway:
        """What ``llm_gateway.handler`` runs: prompt calls routed by the registry, reserved,
        settled and counted on :attr:`usage_store` by :meth:`llm_policy`, answered by
        :meth:`llm_provider`, guarded by :meth:`guardrail_judges`, captured to the
        features bucket (``llm_capture_prefix``).

        ``settings``: the gateway's own knobs (default: these settings with the gateway's
        defaults). ``background``: ``False`` writes capture only on ``flush`` (tests).

        Raises
        ------
        ConfigError
            ``FLYWHEEL_LLM_POLICY`` is not a valid policy.
        """
        from flywheel.gateway.service import PromptGateway
        from flywheel.gateway.settings import GatewaySettings

        if settings is None:
            current = self.settings
            settings = (
                current
                if isinstance(current, GatewaySettings)
                else GatewaySettings(**current.model_dump())
            )
        policy = self.llm_policy()
        return PromptGateway.start(
            settings,
            records=self.records,
            catalog=self.prompt_catalog(),
            policy=policy,
            budgets=self.budgets(policy),
            providers=self.llm_provider,
            metrics=metrics,
            sink=self.capture,
            background=background,
            guardrails=self.guardrail_judges,
        )

    def guardrail_judges(self, policy: GuardrailPolicy) -> GuardrailJudges:
        """What judges a prompt's guardrails in the gateway's request path: the embedded
        evaluators (:func:`flywheel.llm.guardrails.embedded_judges`; no service)."""
        from flywheel.llm.guardrails import embedded_judges

        return embedded_judges(policy)

    def prompt_gates(self) -> dict[str, PromptGatePolicy]:
        """Each prompt's evaluation gate (``FLYWHEEL_PROMPT_GATES``).

        Raises
        ------
        ConfigError
            A gate is invalid, naming the prompt and the first bad field.
        """
        from flywheel.llm.gate import PromptGatePolicy

        return _per_prompt(
            self.settings.prompt_gates, PromptGatePolicy, "FLYWHEEL_PROMPT_GATES", "gate"
        )

    def prompt_evaluators(
        self, thresholds: Mapping[str, float] | None = None
    ) -> dict[str, Evaluator]:
        """The evaluators that judge prompt answers (toxicity, groundedness, relevance,
        format: :func:`flywheel.llm.evaluators.embedded_evaluators`), with the gate's
        per-answer ``thresholds``.

        Raises
        ------
        ConfigError
            The evaluators are not installed with this Flywheel.
        """
        try:
            from flywheel.llm.evaluators import embedded_evaluators  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(
                "the prompt evaluators (flywheel.llm.evaluators) are not installed: a prompt "
                "version with an evaluation set cannot be judged",
                field="evaluators",
            ) from None
        found: dict[str, Evaluator] = embedded_evaluators(thresholds)
        return found

    def consistency_evaluator(self, gate: PromptGatePolicy, budgets: Budgets) -> Evaluator:
        """The self-consistency check of a gate that sets ``consistency_min`` (or a
        ``consistency`` threshold): its samples drawn through :meth:`llm_provider` and
        charged to ``budgets`` (:mod:`flywheel.llm.evaluators.consistency`).

        Raises
        ------
        ConfigError
            The evaluators are not installed with this Flywheel.
        """
        try:
            from flywheel.llm.evaluators.consistency import (  # type: ignore[import-not-found,unused-ignore]
                DEFAULT_THRESHOLD,
                SelfConsistencyEvaluator,
            )
        except ImportError:
            raise ConfigError(
                "the prompt evaluators (flywheel.llm.evaluators) are not installed: the "
                "gate's consistency_min cannot be judged",
                field="evaluators",
            ) from None
        found: Evaluator = SelfConsistencyEvaluator(
            providers=self.llm_provider,
            budgets=budgets,
            threshold=gate.thresholds.get("consistency", DEFAULT_THRESHOLD),
            samples=gate.consistency_samples,
            temperature=gate.consistency_temperature,
        )
        return found

    def evaluation_gate(self) -> EvaluationGate:
        """What ``promotion_steps.handler.evaluate_candidate`` runs: a prompt version's
        evaluation set answered by it and by the champion through :meth:`llm_provider`,
        reserved and settled on :meth:`budgets` like the gateway's calls, scored by
        :meth:`prompt_evaluators` (and :meth:`consistency_evaluator` when the gate sets
        ``consistency_min``), judged by the prompt's gate (:meth:`prompt_gates`).

        Raises
        ------
        ConfigError
            ``FLYWHEEL_LLM_POLICY`` or ``FLYWHEEL_PROMPT_GATES`` is invalid.
        """
        from flywheel.llm.set_runner import REFERENCE, REFERENCE_THRESHOLD, SetRunner
        from flywheel.workflows.prompt_gate import EvaluationGate

        def runner(gate: PromptGatePolicy) -> SetRunner:
            policy = self.llm_policy()
            budgets = self.budgets(policy)
            own = (REFERENCE, "consistency")
            thresholds = {k: v for k, v in gate.thresholds.items() if k not in own}
            evaluators = self.prompt_evaluators(thresholds or None)
            if "consistency" in gate.evaluators():
                evaluators = {
                    **evaluators,
                    "consistency": self.consistency_evaluator(gate, budgets),
                }
            return SetRunner(
                budgets=budgets,
                providers=self.llm_provider,
                evaluators=evaluators,
                policy=policy,
                concurrency=self.settings.evaluation_concurrency,
                reference_threshold=gate.thresholds.get(REFERENCE, REFERENCE_THRESHOLD),
            )

        return EvaluationGate(
            registry=self.registry,
            records=self.records,
            catalog=self.prompt_catalog(),
            runner=runner,
            gates=self.prompt_gates(),
            clock=self.clock,
        )

    def budget_meter(self, policy: LlmPolicy | None = None) -> BudgetMeter:
        """What ``llm_budgets.handler`` runs: ``BudgetThresholdReached`` as ``flywheel.llm``."""
        from flywheel.llm.meter import LLM_SOURCE, BudgetMeter

        store = self.usage_store
        return BudgetMeter(
            policy or self.llm_policy(), store, store, self.events(LLM_SOURCE), clock=self.clock
        )

    # -- feature store -----------------------------------------------------------------------
    def feature_store(
        self,
        *,
        offline: bool = True,
        write_workers: int = 8,
        transformations: TransformationRegistry | None = None,
        chunk_rows: int = 10_000,
    ) -> FeatureStore:
        """The feature store; ``offline=False``: online reads and writes only (no pyarrow).

        ``transformations``: the registry of transformation functions (default: the
        process-wide one); ``chunk_rows``: rows per materialization chunk.
        """
        from flywheel.features.registry import FeatureRegistry
        from flywheel.features.store import FeatureStore
        from flywheel.features.transformations import TRANSFORMATIONS

        return FeatureStore(
            registry=FeatureRegistry(self.registry, self.records, clock=self.clock),
            online=self._make_online_store(write_workers),
            records=self.records,
            blobs=self.blobs if offline else None,
            clock=self.clock,
            transformations=TRANSFORMATIONS if transformations is None else transformations,
            chunk_rows=chunk_rows,
        )

    # -- serving -----------------------------------------------------------------------------
    def inference_service(
        self, settings: ServingSettings, *, metrics: ServingMetrics
    ) -> InferenceService:
        """The inference function's service: registry (read-only), artifacts, capture.

        Raises
        ------
        ModelUnavailableError
            The pinned model could not be loaded (HTTP 503; counted as ``Errors`` with
            ``Variant=unavailable``); the cause is chained and logged, never shown.
        """
        from flywheel.serving.metrics import MetricLabels
        from flywheel.serving.service import InferenceService

        try:
            service = InferenceService.start(
                settings,
                registry=self.records,
                artifacts=self.artifacts,
                metrics=metrics,
                sink=self.capture,
            )
            if settings.feature_view is not None:
                service.features = self._feature_lookup(settings, service)
        except FlywheelError as err:
            pinned = settings.model_version
            labels = MetricLabels(
                settings.model_name or "unknown",
                int(pinned) if pinned.isdigit() else 0,
                "unavailable",
            )
            metrics.request_failed(labels, code=ModelUnavailableError.code)
            raise ModelUnavailableError(
                f"model {settings.model_name!r} version {settings.model_version} could not be "
                f"loaded ({err.code})",
                details={"cause": err.code},
            ) from err
        return service

    def _feature_lookup(
        self, settings: ServingSettings, service: InferenceService
    ) -> FeatureLookup:
        view, version = settings.feature_view, settings.feature_view_version
        assert view is not None
        store = self.feature_store(offline=False)
        available = set(store.view(view, version).view.feature_names)
        needed = service.primary.version.input_schema.feature_names
        missing = [name for name in needed if name not in available]
        if missing:
            raise ConfigError(
                f"feature view {view!r} lacks feature(s) the model needs: {', '.join(missing)}",
                field="feature_view",
            )

        def lookup(entity_id: str, names: Sequence[str]) -> Sequence[Any]:
            return store.online_vector(view, entity_id, version=version, features=names)

        return lookup


#: Amazon Bedrock Guardrails' list prices per text unit (1,000 characters), USD: content
#: filters, contextual grounding check.
GUARDRAIL_USD_PER_UNIT = (Decimal("0.00015"), Decimal("0.0001"))


class AwsPlatform(Platform):
    """The platform on AWS (or the local runtime's moto server, which speaks the same API).

    Examples
    --------
    >>> from flywheel.settings import Settings
    >>> platform = AwsPlatform(Settings(backend="local", endpoint_url="http://127.0.0.1:1",
    ...                                 audit_table="flywheel-audit"))
    >>> type(platform.audit).__name__
    'DynamoDbAuditLog'
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: boto3.Session | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(settings, clock=clock)
        self._session = session

    @cached_property
    def clients(self) -> ClientFactory:
        from flywheel.composition.clients import ClientFactory

        return ClientFactory.for_settings(self.settings, self._session)

    def _table_audit(self, *, signed: bool) -> DynamoDbAuditLog:
        from flywheel.adapters.dynamodb import DynamoDbAuditLog

        return DynamoDbAuditLog(
            self.settings.resource("audit_table"),
            client=self.clients.client("dynamodb"),
            clock=self.clock,
            signer=self.signer if signed else None,
        )

    def _table_registry(self, audit: DynamoDbAuditLog) -> DynamoDbModelRegistry:
        from flywheel.adapters.dynamodb import DynamoDbModelRegistry

        return DynamoDbModelRegistry(
            self.settings.resource("registry_table"),
            audit,
            client=self.clients.client("dynamodb"),
            clock=self.clock,
        )

    @cached_property
    def _writer_client(self) -> LambdaRecordsWriter | None:
        """The records writer, when the settings route writes through it."""
        from flywheel.adapters.lambda_records import LambdaRecordsWriter
        from flywheel.adapters.sts import identity_proof

        function = self.settings.records_writer
        if function is None:
            return None
        capability = self.settings.records_capability
        proof: Callable[[], str] | None = None
        if (
            capability in {"training", "operations", "promotions"}
            and self.settings.backend == "aws"
        ):
            sts = self.clients.client("sts")
            proof = lambda: identity_proof(sts)  # noqa: E731 - one request per write
        return LambdaRecordsWriter(
            function, capability, client=self.clients.client("lambda"), proof=proof
        )

    def _make_audit(self) -> AuditLog:
        from flywheel.adapters.lambda_records import WriterAuditLog

        writer = self._writer_client
        if writer is None:
            return self._table_audit(signed=True)
        return WriterAuditLog(self._table_audit(signed=False), writer)

    def records_writer(self) -> RecordsWriter:
        """What the records writer function runs: direct, signed table writes."""
        from flywheel.adapters.sts import StsIdentityVerifier
        from flywheel.registry.service import RegistryService
        from flywheel.workflows.config import ModelConfigStore
        from flywheel.workflows.writer import RecordsWriter

        audit = self._table_audit(signed=True)
        store = self._table_registry(audit)
        endpoints = [self.settings.endpoint_url] if self.settings.endpoint_url else []
        return RecordsWriter(
            store=store,
            audit=audit,
            configs=ModelConfigStore(RegistryService(store, audit), store),
            identity=StsIdentityVerifier(endpoints=endpoints),
            trust_asserted=self.settings.trust_asserted_actors,
        )

    def _make_signer(self) -> HeadSigner | None:
        from flywheel.adapters.kms import KmsHeadSigner

        key = self.settings.audit_key
        return KmsHeadSigner(key, client=self.clients.client("kms")) if key else None

    def _make_anchor_store(self) -> AnchorStore | None:
        from flywheel.adapters.s3_anchors import S3AnchorStore

        bucket = self.settings.anchors_bucket
        return S3AnchorStore(bucket, client=self.clients.client("s3")) if bucket else None

    def _make_records(self) -> RegistryStorage:
        from flywheel.adapters.dynamodb import DynamoDbAuditLog
        from flywheel.adapters.lambda_records import WriterRegistry

        writer = self._writer_client
        if writer is None:
            audit = self.audit
            assert isinstance(audit, DynamoDbAuditLog)
            return self._table_registry(audit)
        return WriterRegistry(self._table_registry(self._table_audit(signed=False)), writer)

    def _make_artifacts(self) -> ArtifactStore:
        from flywheel.adapters.s3_artifacts import S3ArtifactStore

        return S3ArtifactStore(
            self.settings.resource("artifacts_bucket"), client=self.clients.client("s3")
        )

    def _make_capture(self) -> CaptureStore:
        from flywheel.adapters.s3_capture import S3CaptureSink

        return S3CaptureSink(
            self.settings.resource("features_bucket"), client=self.clients.client("s3")
        )

    def _make_reports(self) -> CaptureStore:
        from flywheel.adapters.s3_capture import S3CaptureSink

        return S3CaptureSink(
            self.settings.resource("artifacts_bucket"), client=self.clients.client("s3")
        )

    def _make_events(self, source: str) -> EventPublisher:
        from flywheel.adapters.aws_workflows import EventBridgePublisher

        return EventBridgePublisher(
            self.settings.event_bus or "default",
            source=source,
            client=self.clients.client("events"),
        )

    def _make_tokens(self) -> TaskTokens:
        from flywheel.adapters.aws_workflows import StepFunctionsTaskTokens

        return StepFunctionsTaskTokens(client=self.clients.client("stepfunctions"))

    def _make_serving_control(self) -> ServingControl:
        from flywheel.adapters.aws_workflows import LambdaServingControl

        return LambdaServingControl(
            self.settings.inference_functions,
            alias=self.settings.live_alias,
            client=self.clients.client("lambda"),
        )

    def _make_canary_health(self) -> CanaryHealth:
        from flywheel.adapters.aws_workflows import CloudWatchCanaryHealth

        return CloudWatchCanaryHealth(
            self.settings.canary_alarms, client=self.clients.client("cloudwatch")
        )

    def _make_label_claims(self) -> LabelClaims:
        from flywheel.adapters.dynamodb_labels import DynamoDbLabelClaims

        return DynamoDbLabelClaims(
            self.settings.resource("idempotency_table"), client=self.clients.client("dynamodb")
        )

    def _make_online_store(self, write_workers: int) -> OnlineStore:
        from flywheel.adapters.dynamodb_features import DynamoDbOnlineStore

        return DynamoDbOnlineStore(
            self.settings.resource("online_features_table"),
            client=self.clients.client("dynamodb"),
            max_workers=write_workers,
        )

    def _make_blobs(self) -> BlobStore:
        from flywheel.adapters.s3_features import S3BlobStore

        return S3BlobStore(
            self.settings.resource("features_bucket"), client=self.clients.client("s3")
        )

    def _make_usage_store(self) -> UsageStore:
        from flywheel.adapters.dynamodb_budgets import DynamoDbBudgetLedger

        return DynamoDbBudgetLedger(
            self.settings.resource("llm_usage_table"), client=self.clients.client("dynamodb")
        )

    def _make_serving_usage(self) -> ServingUsage:
        from flywheel.adapters.cloudwatch_serving_usage import CloudWatchServingUsage

        return CloudWatchServingUsage(
            cloudwatch=self.clients.client("cloudwatch"),
            lambda_client=self.clients.client("lambda"),
        )

    @cached_property
    def llm_stand_in(self) -> LocalConverse:
        """The local stand-in that answers ``provider: local`` prompts (not a model)."""
        from flywheel.adapters.local_llm import LocalConverse

        return LocalConverse()

    def guardrail_judges(self, policy: GuardrailPolicy) -> GuardrailJudges:
        """In AWS, the stage's Amazon Bedrock guardrail when the policy names one
        (``ApplyGuardrail``, retried once within ``guardrail_timeout_seconds``); else,
        and always on the local runtime (whose moto server has no ``ApplyGuardrail``),
        the embedded evaluators."""
        if self.settings.backend != "aws" or policy.bedrock is None:
            return super().guardrail_judges(policy)
        from flywheel.adapters.bedrock_guardrails import BedrockGuardrail, bedrock_judges
        from flywheel.llm.providers import RetryPolicy

        timeout = self.settings.guardrail_timeout_seconds
        guardrail = BedrockGuardrail(
            client=self.clients.client("bedrock-runtime", read_timeout=timeout),
            guardrail=policy.bedrock,
            retry=RetryPolicy(max_attempts=2, deadline_seconds=timeout),
        )
        return bedrock_judges(guardrail, policy)

    def _make_llm_provider(self, provider: Provider) -> CompletionProvider:
        from flywheel.llm.prompts import Provider

        if provider is Provider.BEDROCK:
            from flywheel.adapters.bedrock import BedrockProvider

            client = self.clients.client(
                "bedrock-runtime", read_timeout=self.settings.llm_timeout_seconds
            )
            return BedrockProvider(client=client)
        if provider is Provider.OPENAI_COMPATIBLE:
            from flywheel.adapters.openai_http import OpenAiCompatibleProvider

            if not self.settings.openai_base_url:
                raise ConfigError(
                    "FLYWHEEL_OPENAI_BASE_URL is not set: prompts of provider "
                    "openai_compatible need the endpoint's base URL",
                    field="FLYWHEEL_OPENAI_BASE_URL",
                )
            return OpenAiCompatibleProvider(
                self.settings.openai_base_url,
                api_key=lambda: os.environ.get("FLYWHEEL_OPENAI_API_KEY") or None,
                timeout_seconds=self.settings.llm_timeout_seconds,
            )
        from flywheel.adapters.local_llm import LocalProvider

        return LocalProvider(self.llm_stand_in)

    def quality_evaluators(self, policy: PromptMonitorPolicy) -> dict[str, Evaluator]:
        """In AWS, a policy's Bedrock guardrail judges toxicity, groundedness and relevance
        (``ApplyGuardrail``, retried like the providers); format stays embedded."""
        found = super().quality_evaluators(policy)
        if policy.guardrail is None or self.settings.backend != "aws":
            return found
        from flywheel.adapters.bedrock_guardrails import BedrockGuardrail
        from flywheel.llm.providers import RetryPolicy

        guardrail = BedrockGuardrail(
            client=self.clients.client("bedrock-runtime"),  # no botocore retries
            guardrail=policy.guardrail,
            retry=RetryPolicy(
                max_attempts=self.settings.llm_max_attempts,
                deadline_seconds=self.settings.llm_timeout_seconds,
            ),
        )
        thresholds = {k: v for k, v in policy.thresholds.items() if k != "format"}
        return {**found, **guardrail.evaluators(thresholds or None)}

    def quality_cost(self, policy: PromptMonitorPolicy, item: EvaluationInput) -> Decimal:
        """With a guardrail in AWS: its content filters on the answer and its contextual
        grounding check on answer, question and context, each per text unit (1,000
        characters) at Bedrock Guardrails' list prices (:data:`GUARDRAIL_USD_PER_UNIT`)."""
        if policy.guardrail is None or self.settings.backend != "aws":
            return Decimal(0)
        answer = max(1, math.ceil(len(item.answer) / 1000))
        grounded = len(item.answer) + len(item.question or "") + sum(map(len, item.context))
        units = max(1, math.ceil(grounded / 1000))
        filters, grounding = GUARDRAIL_USD_PER_UNIT
        return filters * answer + (grounding * units if item.context else Decimal(0))

    def fetch(self, uri: str) -> bytes:
        from flywheel.adapters.s3_objects import read_object

        return read_object(self.clients.client("s3"), uri)

    def caller_identity(self) -> str | None:
        from flywheel.adapters.sts import caller_arn

        return caller_arn(self.clients.client("sts"))

    def deployed_api(self) -> PlatformApi | None:
        """The stage's REST API, SigV4-signed, when ``backend="aws"`` names one (``api_url``)."""
        from flywheel.adapters.api_client import HttpApi

        if self.settings.backend == "aws" and self.settings.api_url:
            return HttpApi(
                self.settings.api_url, session=self.clients.session, region=self.settings.region
            )
        return None

    def api(self, actor: str) -> PlatformApi | None:
        """The deployed API (SigV4, in AWS) or its functions (the local runtime)."""
        from flywheel.adapters.api_client import APPROVALS, CONFIG, PROMOTIONS, RETRAIN, LambdaApi

        deployed = self.deployed_api()
        if deployed is not None:
            return deployed
        functions = {
            route: function
            for route, function in (
                (APPROVALS, self.settings.approval_function),
                (RETRAIN, self.settings.retrain_function),
                # One function answers both operator routes (the operator source's producer).
                (PROMOTIONS, self.settings.retrain_function),
                (CONFIG, self.settings.retrain_function),
            )
            if function
        }
        if functions:
            return LambdaApi(functions, actor=actor, client=self.clients.client("lambda"))
        return None


class InMemoryPlatform(Platform):
    """The platform in process memory: tests, notebooks and experiments.

    Examples
    --------
    >>> platform = InMemoryPlatform()
    >>> platform.registry.registry.list_models(limit=5).items
    []
    """

    def __init__(self, settings: Settings | None = None, *, clock: Clock | None = None) -> None:
        from flywheel.settings import Settings

        super().__init__(settings or Settings(backend="local"), clock=clock)

    def _make_audit(self) -> AuditLog:
        from flywheel.adapters.memory import InMemoryAuditLog

        return InMemoryAuditLog(clock=self.clock, signer=self.signer)

    def _make_signer(self) -> HeadSigner | None:
        from flywheel.adapters.memory_audit import HmacHeadSigner

        return HmacHeadSigner()

    def _make_anchor_store(self) -> AnchorStore | None:
        from flywheel.adapters.memory_audit import InMemoryAnchorStore

        return InMemoryAnchorStore()

    def _make_records(self) -> RegistryStorage:
        from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry

        audit = self.audit
        assert isinstance(audit, InMemoryAuditLog)
        return InMemoryModelRegistry(audit, clock=self.clock)

    def _make_artifacts(self) -> ArtifactStore:
        from flywheel.adapters.memory_artifacts import InMemoryArtifactStore

        return InMemoryArtifactStore()

    def _make_capture(self) -> CaptureStore:
        from flywheel.adapters.memory_capture import InMemoryCaptureSink

        return InMemoryCaptureSink()

    def _make_reports(self) -> CaptureStore:
        from flywheel.adapters.memory_capture import InMemoryCaptureSink

        return InMemoryCaptureSink()

    @cached_property
    def published(self) -> InMemoryEventPublisher:
        """Every event the services published, whatever its source."""
        from flywheel.adapters.memory_workflows import InMemoryEventPublisher

        return InMemoryEventPublisher()

    def _make_events(self, source: str) -> EventPublisher:  # noqa: ARG002
        return self.published

    def _make_tokens(self) -> TaskTokens:
        from flywheel.adapters.memory_workflows import InMemoryTaskTokens

        return InMemoryTaskTokens()

    def _make_serving_control(self) -> ServingControl:
        from flywheel.adapters.memory_workflows import InMemoryServingControl

        return InMemoryServingControl(self.settings.inference_functions)

    def _make_canary_health(self) -> CanaryHealth:
        from flywheel.adapters.memory_workflows import InMemoryCanaryHealth

        return InMemoryCanaryHealth(self.settings.canary_alarms)

    def _make_label_claims(self) -> LabelClaims:
        from flywheel.adapters.memory_labels import InMemoryLabelClaims

        return InMemoryLabelClaims()

    @cached_property
    def online_store(self) -> OnlineStore:
        """The one online store of this platform (whatever ``write_workers`` asks)."""
        from flywheel.adapters.memory_features import InMemoryOnlineStore

        return InMemoryOnlineStore()

    def _make_online_store(self, write_workers: int) -> OnlineStore:  # noqa: ARG002
        return self.online_store

    def _make_blobs(self) -> BlobStore:
        from flywheel.adapters.memory_features import InMemoryBlobStore

        return InMemoryBlobStore()

    def _make_usage_store(self) -> UsageStore:
        from flywheel.adapters.memory_budgets import InMemoryBudgetLedger

        return InMemoryBudgetLedger()

    def _make_serving_usage(self) -> ServingUsage:
        from flywheel.adapters.memory_serving_usage import InMemoryServingUsage

        return InMemoryServingUsage()

    @cached_property
    def llm_stand_in(self) -> LocalConverse:
        """The local stand-in (not a model) that answers every provider's prompts here."""
        from flywheel.adapters.local_llm import LocalConverse

        return LocalConverse()

    def _make_llm_provider(self, provider: Provider) -> CompletionProvider:  # noqa: ARG002
        from flywheel.adapters.local_llm import LocalProvider

        return LocalProvider(self.llm_stand_in)

    def fetch(self, uri: str) -> bytes:
        raise DatasetError(f"no object store for {uri} in memory", field="dataset.source")

    def caller_identity(self) -> str | None:
        return None


def check_environment(settings_type: type[Settings]) -> None:
    """Inside Lambda, read ``settings_type`` from the environment now (the init phase).

    A missing or malformed ``FLYWHEEL_*`` variable then stops the execution environment
    before it serves anything, with one line naming the variable; outside Lambda this
    does nothing (the CLI and tests build settings themselves).
    """
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        settings_type()


def environment_settings(settings_type: type[S]) -> S:
    """Settings from this process's environment; in AWS, from the stage's own record too.

    With ``FLYWHEEL_BACKEND=aws`` and ``FLYWHEEL_STAGE`` (and no resource names set), the
    stage's record in SSM (``/flywheel/<project>-<stage>/platform``, written at deploy
    time) supplies the resource names, the deployments and the API's URL, so people need
    set nothing else.  Variables that are set win over the record.
    """
    backend = os.environ.get("FLYWHEEL_BACKEND", "local")
    stage = os.environ.get("FLYWHEEL_STAGE")
    if backend != "aws" or not stage or os.environ.get("FLYWHEEL_REGISTRY_TABLE"):
        return settings_type()
    import boto3

    from flywheel.adapters.ssm import read_platform_record

    project = os.environ.get("FLYWHEEL_PROJECT", "flywheel")
    region = os.environ.get("FLYWHEEL_REGION") or None
    client = boto3.Session(region_name=region).client("ssm", config=_client_config())
    record = read_platform_record(client, f"{project}-{stage}")
    values: dict[str, str] = dict(record.get("environment", {}))
    if record.get("api_url"):
        values.setdefault("FLYWHEEL_API_URL", str(record["api_url"]))
    if record.get("region") and region is None:
        values.setdefault("FLYWHEEL_REGION", str(record["region"]))
    values.update({k: v for k, v in os.environ.items() if k.startswith("FLYWHEEL_")})
    return settings_type.of_deployment(values)


def _client_config() -> Any:
    from flywheel.composition.clients import CLIENT_CONFIG

    return CLIENT_CONFIG


def _per_prompt(data: Mapping[str, Any], model: type[P], variable: str, what: str) -> dict[str, P]:
    """Each prompt's policy of a ``FLYWHEEL_PROMPT_*`` variable; a bad one is a
    :class:`ConfigError` naming the variable, the prompt and its first bad field."""
    from pydantic import ValidationError

    policies: dict[str, P] = {}
    for name, value in data.items():
        try:
            policies[name] = model.model_validate(value)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or what
            raise ConfigError(
                f"{variable}: {name}.{where}: {first.get('msg', 'invalid value')}",
                field=variable,
            ) from None
    return policies
