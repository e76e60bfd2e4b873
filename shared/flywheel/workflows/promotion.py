"""The promotion workflow's steps: publish, canary, check, promote all or roll back.

The same steps promote prompt versions (ADR 78): for a prompt, the serving control
(:class:`~flywheel.workflows.prompt_serving.ServingByKind`) derives the routing from the
registry, so the registry writes below are the routing; its canary is judged by alarms.

Invariant kept by every step and restored by :meth:`PromotionSteps.record_failure`:
alias ``live``'s primary version serves the registry's champion, and only the version
on canary (the registry's ``challenger``) gets a weight. Moving traffic *to* a version
writes the registry first and the alias second (``shift_alias``, ``promote_all``);
moving traffic *away* does the opposite (``rollback``), so traffic never goes where the
registry does not say. :class:`~flywheel.workflows.records.ServingDoc` records which
Lambda version serves each promoted model version, so a failure between the two writes
(or in any step) is repaired from the registry's point of view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.drift.profile import NumericProfile, ReferenceProfile
from flywheel.errors import (
    ApprovalArtifactMismatchError,
    ExperimentInProgressError,
    IllegalTransitionError,
    ModelNotFoundError,
    NoPreviousChampionError,
    PromotionInProgressError,
    ServingControlError,
)
from flywheel.llm.quality import QualityVerdictDoc
from flywheel.registry.models import RegistryKind, VersionStatus
from flywheel.serving.capture import decode_capture
from flywheel.serving.comparison import (
    PREDICTION_ALPHA,
    PredictionShift,
    partition_hour,
    prediction_shift,
    prediction_shift_from_reference,
)
from flywheel.serving.experiments import read_experiment
from flywheel.workflows.ports import AlarmState, AliasRouting
from flywheel.workflows.records import (
    CANARY,
    SERVING,
    CanaryDoc,
    ServingDoc,
    model_key,
    quality_key,
    read,
    write,
)
from flywheel.workflows.state import (
    CanaryCheckResult,
    CanaryShiftResult,
    FailureResult,
    PromotionResult,
    PublishResult,
    RollbackResult,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.models import Model, ModelVersion, RecordWrite
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.settings import CanaryStep
    from flywheel.workflows.ports import CanaryHealth, ServingControl
    from flywheel.workflows.state import PromotionState

#: How long a step bakes when neither the model's steps nor the workflow say (seconds).
DEFAULT_BAKE_SECONDS = 600
#: The state of the evaluation gate (``flywheel.workflows.prompt_gate``).
EVALUATE_CANDIDATE = "EvaluateCandidate"


@dataclass(frozen=True)
class _Step:
    """One step of the canary being run: ``number`` of ``steps``."""

    number: int
    steps: int
    weight: float
    bake_seconds: int

    @property
    def last(self) -> bool:
        return self.number == self.steps


@dataclass(frozen=True)
class ServedChange:
    """A registry change made by hand with alias live following it."""

    version: ModelVersion
    #: The Lambda version alias live now serves alone.
    lambda_version: str
    #: Whether the alias had to move (``False``: it already served that version).
    routed: bool


#: What ``CanaryCheckResult.breached`` names when the canary's predictions moved from
#: the champion's on the same traffic.
PREDICTION_DRIFT = "prediction-drift"
#: ... and when they moved from the canary version's own holdout scores (its reference
#: profile's prediction deciles).
REFERENCE_PREDICTION_DRIFT = "prediction-drift-vs-reference"
#: Why ``check_canary`` judges a prompt's canary by its alarms alone.
PROMPT_PREDICTION_CHECKS = (
    "prediction checks skipped: a prompt's answers are text, not scores (its canary is "
    "judged by its alarms)"
)
#: What ``CanaryCheckResult.breached`` names when the production quality monitor found a
#: prompt canary's answers degraded (ADR 82).
LLM_QUALITY = "llm-quality"


class PromotionSteps:
    """The use cases behind ``promotion_steps.handler.<step>``.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.settings import Settings
    >>> from flywheel.training.config import parse_config
    >>> from flywheel.training.trainer import train_from_config
    >>> from flywheel.workflows.state import PromotionState
    >>> platform = InMemoryPlatform(Settings(inference_functions={"iris": "iris-inference"}))
    >>> registry = platform.registry
    >>> outcome = train_from_config(parse_config({
    ...     "model": "iris", "task": "classification",
    ...     "dataset": {"source": "sklearn:iris"}, "estimator": "logistic_regression",
    ... }))
    >>> ref = platform.artifacts.put("models/iris/1/model.onnx", outcome.onnx_bytes)
    >>> _ = registry.register(outcome.version_draft(ref), actor="ci")
    >>> _ = registry.request_approval("iris", 1, actor="ci")
    >>> _ = registry.approve("iris", 1, actor="ana", reason="holdout accuracy")
    >>> steps = platform.promotion_steps()
    >>> state = PromotionState.model_validate({"model_name": "iris", "version": 1, "run": {
    ...     "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:promotion:p-1",
    ...     "execution_name": "p-1", "started_at": "2026-01-01T00:00:00Z",
    ...     "state_machine": "promotion",
    ... }})
    >>> steps.publish_version(state).lambda_version  # version 1 is the bootstrap version
    '2'
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        serving: ServingControl,
        health: CanaryHealth,
        default_canary_weight: float,
        canary_steps: Mapping[str, Sequence[CanaryStep]] | None = None,
        capture: CaptureSource | None = None,
        prediction_psi: float | None = None,
        prediction_min_rows: int = 50,
        prediction_max_rows: int = 20_000,
        capture_prefix: str = "capture/",
        artifacts: ArtifactStore | None = None,
        prediction_alpha: float = PREDICTION_ALPHA,
        quality_rollback: Mapping[str, bool] | None = None,
    ) -> None:
        self._registry = registry
        #: Prompt -> whether a degraded quality verdict fails its canary (default: yes).
        self._quality_rollback = dict(quality_rollback or {})
        self._artifacts = artifacts
        self._prediction_alpha = prediction_alpha
        self._records = records
        self._serving = serving
        self._health = health
        self._default_weight = default_canary_weight
        self._canary_steps = dict(canary_steps or {})
        self._capture = capture
        self._prediction_psi = prediction_psi
        self._prediction_min_rows = prediction_min_rows
        self._prediction_max_rows = prediction_max_rows
        self._capture_prefix = capture_prefix

    # -- PublishVersion ------------------------------------------------------------------------
    def publish_version(self, state: PromotionState) -> PublishResult:
        """Publish a Lambda version pinned to the approved model version (a prompt version
        has nothing to publish: it is served under its own number).

        Raises
        ------
        IllegalTransitionError
            The version is not approved.
        ApprovalArtifactMismatchError
            The approval event names another artifact than the registered one.
        PromotionInProgressError
            Another version of the model is on canary.
        ExperimentInProgressError
            The model runs a shadow or A/B experiment.
        """
        name, number = state.model_name, state.version
        version = self._registry.get_version(name, number)
        if version.status not in (VersionStatus.APPROVED, VersionStatus.CANARY):
            raise IllegalTransitionError(
                f"version {number} of {name!r} is {version.status}; only an approved version "
                "can be promoted",
                current=version.status,
                target=VersionStatus.CANARY,
            )
        approved_sha = state.approval.get("artifact_sha256")
        if approved_sha is not None and approved_sha != version.artifact.sha256:
            raise ApprovalArtifactMismatchError(
                f"the approval of version {number} names another artifact than the registry",
                field="artifact_sha256",
            )
        self._check_no_other_canary(self._registry.get_model(name), number)
        if version.status is VersionStatus.APPROVED:
            self._check_no_experiment(name)
        published = self._serving.publish(name, number)
        return PublishResult(
            function_name=published.function_name,
            lambda_version=published.lambda_version,
            model_version=number,
        )

    @staticmethod
    def _check_no_other_canary(model: Model, number: int) -> None:
        if model.challenger is not None and model.challenger != number:
            raise PromotionInProgressError(
                f"version {model.challenger} of {model.name!r} is on canary; promote or roll "
                "it back first",
                field="version",
                details={"challenger": model.challenger},
            )

    def _check_no_experiment(self, name: str) -> None:
        """A canary would mix its traffic into a running experiment's comparison."""
        found = read_experiment(self._records, name)
        if found is not None and found[0].running:
            experiment = found[0]
            raise ExperimentInProgressError(
                f"{name!r} runs the {experiment.kind} experiment {experiment.id} of version "
                f"{experiment.version}: stop it (flywheel experiment stop) or promote its "
                "winner (flywheel experiment promote-winner) first",
                field="experiment",
                details={"experiment": experiment.id},
            )

    # -- ShiftAlias ----------------------------------------------------------------------------
    def shift_alias(self, state: PromotionState) -> CanaryShiftResult:
        """Route the next canary step's weight to the new version.

        Step 1 moves the registry ``approved → canary`` (challenger) first, with the
        ``CANARY`` record of step 1 in the same transaction; each later step (after a
        healthy check) is audited as ``canary_advanced`` with its record, then routed.
        For a prompt the registry write is the routing (``route`` writes nothing).
        The steps are the model's (``canary_steps``), else one of the workflow's
        ``canary_weight`` and ``bake_seconds``.

        Raises
        ------
        PromotionInProgressError
            Another version is on canary, or alias live routes to other versions.
        IllegalTransitionError
            A later step of a version that is no longer on canary.
        """
        name, number = state.model_name, state.version
        lambda_version = self._published(state)
        step = self._next_step(state)
        self._check_no_other_canary(self._registry.get_model(name), number)
        routing = self._serving.routing(name)
        others = set(routing.weights) - {lambda_version}
        if others:
            raise PromotionInProgressError(
                f"alias live of {name!r} already routes traffic to versions {sorted(others)}",
                field="alias",
            )
        details = {
            "lambda_version": lambda_version,
            "weight": step.weight,
            "step": step.number,
            "steps": step.steps,
            "bake_seconds": step.bake_seconds,
        }
        status = self._registry.get_version(name, number).status
        if step.number == 1:
            if status is not VersionStatus.CANARY:
                self._check_no_experiment(name)
                # The first step's record goes with canary_started: whoever derives the
                # routing from the registry (the LLM gateway) always finds the weight.
                found = read(self._records, model_key(name, CANARY), CanaryDoc)
                doc = CanaryDoc(version=number, step=1, steps=step.steps, weight=step.weight)
                self._registry.start_canary(
                    name,
                    number,
                    actor=state.run.actor,
                    reason=f"canary at {step.weight:.0%} of live traffic" + _of(step),
                    records=(write(model_key(name, CANARY), doc, found[1] if found else None),),
                    extra=details,
                )
        else:
            self._advance(state, step, status, details)
        self._serving.route(
            name, AliasRouting(primary=routing.primary, weights={lambda_version: step.weight})
        )
        return CanaryShiftResult(
            model_version=number,
            lambda_version=lambda_version,
            primary=routing.primary,
            weight=step.weight,
            step=step.number,
            steps=step.steps,
            bake_seconds=step.bake_seconds,
            last=step.last,
        )

    def _plan(self, state: PromotionState) -> list[_Step]:
        """The steps this promotion walks: the model's, else one from the workflow input."""
        configured = self._canary_steps.get(state.model_name)
        if configured:
            return [
                _Step(i, len(configured), s.weight, s.bake_seconds)
                for i, s in enumerate(configured, start=1)
            ]
        bake = state.run.bake_seconds
        return [
            _Step(
                1,
                1,
                state.run.canary_weight or self._default_weight,
                DEFAULT_BAKE_SECONDS if bake is None else bake,
            )
        ]

    def _next_step(self, state: PromotionState) -> _Step:
        """Step 1, or the one after the step ``$.canary`` holds (a retried step gets the same)."""
        plan = self._plan(state)
        number = 1 if state.canary is None else state.canary.payload.step + 1
        if number > len(plan):
            raise IllegalTransitionError(
                f"the canary of version {state.version} of {state.model_name!r} has "
                f"{len(plan)} step(s); there is no step {number}",
                current=f"step {number - 1}",
                target=f"step {number}",
            )
        return plan[number - 1]

    def _advance(
        self, state: PromotionState, step: _Step, status: VersionStatus, details: dict[str, Any]
    ) -> None:
        """Audit ``canary_advanced`` once per step (the ``CANARY`` record remembers it)."""
        name, number = state.model_name, state.version
        model = self._registry.get_model(name)
        if status is not VersionStatus.CANARY or model.challenger != number:
            raise IllegalTransitionError(
                f"version {number} of {name!r} is {status}, not on canary: cannot take "
                f"step {step.number}",
                current=status,
                target=VersionStatus.CANARY,
            )
        found = read(self._records, model_key(name, CANARY), CanaryDoc)
        if found is not None and found[0].version == number and found[0].step >= step.number:
            return  # recorded by an earlier attempt of this step
        check = state.canary_check.payload.reason if state.canary_check else None
        doc = CanaryDoc(version=number, step=step.number, steps=step.steps, weight=step.weight)
        self._registry.record(
            AuditDraft(
                model=name,
                action=AuditAction.CANARY_ADVANCED,
                actor=state.run.actor,
                version=number,
                reason=f"canary at {step.weight:.0%} of live traffic" + _of(step),
                details={**details, "previous_check": check},
            ),
            records=(write(model_key(name, CANARY), doc, found[1] if found else None),),
        )

    @staticmethod
    def _published(state: PromotionState) -> str:
        if state.published is None:
            raise IllegalTransitionError(
                "no Lambda version was published for this promotion",
                current="unpublished",
                target="canary",
            )
        return state.published.payload.lambda_version

    # -- CheckCanary ---------------------------------------------------------------------------
    def check_canary(self, state: PromotionState) -> CanaryCheckResult:
        """Healthy when every canary alarm exists, none is in ``ALARM``, and the canary's
        predictions have moved neither from the champion's nor from its own holdout's.

        Both prediction checks (when a capture store and a PSI limit are configured)
        read the canary's captured scores:

        * against the champion's captured since the canary's first request: alias
          routing is random per invocation, so both saw the same traffic mix and a
          large PSI means the canary answers differently;
        * against the prediction deciles of the canary version's reference profile
          (its scores on the holdout at training; needs an artifact store): a large
          PSI means it scores live traffic unlike anything it was evaluated on.

        Under ``prediction_min_rows`` rows on either side a check gives no verdict.
        A prompt's canary: its alarms, and the quality monitor's verdict (ADR 82).
        """
        step = state.canary.payload.step if state.canary is not None else 1
        prompt = self._is_prompt(state.model_name)
        alarms = self._health.alarm_states(state.model_name)
        if not alarms:
            what = "prompt" if prompt else "model"
            return CanaryCheckResult(
                healthy=False, reason=f"no canary alarms are configured for this {what}", step=step
            )
        breached = sorted(
            n for n, s in alarms.items() if s in (AlarmState.ALARM, AlarmState.MISSING)
        )
        reasons = (
            [
                "canary alarms breached or missing: "
                + ", ".join(f"{n} ({alarms[n]})" for n in breached)
            ]
            if breached
            else [f"{len(alarms)} canary alarms, none in ALARM"]
        )
        champion: PredictionShift | None = None
        reference: PredictionShift | None = None
        if prompt:
            reasons.append(PROMPT_PREDICTION_CHECKS)
            degraded, reason = self._quality(state.model_name, state.version)
            reasons.append(reason)
            if degraded:
                breached.append(LLM_QUALITY)
        elif self._capture is not None and self._prediction_psi is not None:
            canary = self._canary_rows(state.model_name, state.version)
            champion = self._champion_shift(state.model_name, canary)
            reference = self._reference_shift(state.model_name, state.version, canary)
            judged = [(champion, "champion", PREDICTION_DRIFT)]
            if reference is not None:
                judged.append((reference, "holdout", REFERENCE_PREDICTION_DRIFT))
            elif self._artifacts is not None:
                reasons.append("no holdout prediction profile to compare with")
            for shift, side, breach in judged:
                moved, reason = self._judge(shift, side)
                reasons.append(reason)
                if moved:
                    breached.append(breach)
        return CanaryCheckResult(
            healthy=not breached,
            alarms={n: str(s) for n, s in sorted(alarms.items())},
            breached=tuple(breached),
            reason="; ".join(reasons),
            prediction_drift=None if champion is None else champion.psi,
            reference_prediction_drift=None if reference is None else reference.psi,
            step=step,
        )

    def _quality(self, name: str, version: int) -> tuple[bool, str]:
        """Whether the monitor's latest verdict for the canary fails the check, and why."""
        found = read(self._records, quality_key(name, version), QualityVerdictDoc)
        if found is None:
            return False, "no production quality verdict for the canary yet"
        verdict = found[0]
        if verdict.outcome != "degraded":
            return False, f"production quality {verdict.outcome} ({verdict.scored} scored calls)"
        breaches = "; ".join(verdict.breaches)
        if not self._quality_rollback.get(name, True):
            return False, (
                f"production quality degraded ({breaches}), not rolled back: the prompt's "
                "monitor says rollback_canary: false"
            )
        return True, f"production quality degraded: {breaches} (report {verdict.report_uri})"

    def _is_prompt(self, name: str) -> bool:
        try:
            return self._registry.get_model(name).kind is RegistryKind.PROMPT
        except ModelNotFoundError:
            return False  # judged as a model: its alarms say what is wrong

    def _judge(self, shift: PredictionShift, side: str) -> tuple[bool, str]:
        """Whether the canary's scores moved from ``side``'s (champion or holdout), and why.

        Moved means a PSI above the limit that is also more than sampling noise
        (χ² homogeneity p-value below ``prediction_alpha``).
        """
        limit = self._prediction_psi
        assert limit is not None
        if shift.psi is None:
            return False, (
                f"prediction drift from the {side} not judged ({shift.current_rows} canary "
                f"and {shift.reference_rows} {side} rows; {self._prediction_min_rows} needed)"
            )
        p_value = 1.0 if shift.p_value is None else shift.p_value
        if shift.psi <= limit:
            return False, f"{side} prediction PSI {shift.psi:.3f} <= {limit}"
        if p_value >= self._prediction_alpha:
            return False, (
                f"{side} prediction PSI {shift.psi:.3f} > {limit} but within sampling noise "
                f"(p {p_value:.2g} >= {self._prediction_alpha}; {shift.current_rows} canary "
                f"and {shift.reference_rows} {side} rows)"
            )
        return True, (
            f"canary predictions moved from the {side}'s: PSI {shift.psi:.3f} > {limit}, "
            f"p {p_value:.2g}"
        )

    def _canary_rows(self, name: str, version: int) -> list[dict[str, Any]]:
        prefix = f"{self._capture_prefix}model={name}/version={version}/"
        return [row for row in self._rows(prefix) if row.get("variant") == "canary"]

    def _champion_shift(self, name: str, canary: list[dict[str, Any]]) -> PredictionShift:
        champion_version = self._registry.get_model(name).champion
        if not canary or champion_version is None:
            return prediction_shift([], canary, min_rows=self._prediction_min_rows)
        start = min(str(row.get("timestamp")) for row in canary)
        first_hour = datetime.fromisoformat(start.replace("Z", "+00:00")).replace(
            minute=0, second=0, microsecond=0
        )
        champion = [
            row
            for row in self._rows(
                f"{self._capture_prefix}model={name}/version={champion_version}/",
                since=first_hour,
            )
            if row.get("variant") == "champion" and str(row.get("timestamp")) >= start
        ]
        return prediction_shift(champion, canary, min_rows=self._prediction_min_rows)

    def _reference_shift(
        self, name: str, version: int, canary: list[dict[str, Any]]
    ) -> PredictionShift | None:
        """``None`` without an artifact store or a holdout prediction profile (versions
        trained before profiles carried one)."""
        scores = self._holdout_scores(name, version)
        if scores is None:
            return None
        return prediction_shift_from_reference(scores, canary, min_rows=self._prediction_min_rows)

    def _holdout_scores(self, name: str, version: int) -> NumericProfile | None:
        if self._artifacts is None:
            return None
        ref = self._registry.get_version(name, version).reference_profile
        if ref is None:
            return None
        # Verified against the registry's SHA-256 like every artifact read.
        return ReferenceProfile.model_validate(self._artifacts.get_json(ref)).predictions

    def _rows(self, prefix: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Captured rows under ``prefix`` from the hour ``since`` on, oldest partitions first,
        at most about ``prediction_max_rows`` (a busy champion captures far more than a
        PSI needs, and the step has a minute)."""
        assert self._capture is not None
        rows: list[dict[str, Any]] = []
        for key in self._capture.keys(prefix):
            hour = partition_hour(key)
            if since is None or (hour is not None and hour >= since):
                rows.extend(decode_capture(self._capture.get(key)))
                if len(rows) >= self._prediction_max_rows:
                    break
        return rows

    # -- PromoteAll ----------------------------------------------------------------------------
    def promote_all(self, state: PromotionState) -> PromotionResult:
        """Registry ``canary → production`` (champion), then alias live → the new version alone."""
        name, number = state.model_name, state.version
        lambda_version = self._published(state)
        model = self._registry.get_model(name)
        previous = model.champion
        version = self._registry.get_version(name, number)
        if not (version.status is VersionStatus.PRODUCTION and model.champion == number):
            found = read(self._records, model_key(name, SERVING), ServingDoc)
            serving, revision = found if found else (ServingDoc(), None)
            mapping = {**serving.lambda_versions, str(number): lambda_version}
            check = state.canary_check.payload.reason if state.canary_check else "canary healthy"
            self._registry.promote(
                name,
                number,
                actor=state.run.actor,
                reason=check,
                records=(
                    write(model_key(name, SERVING), ServingDoc(lambda_versions=mapping), revision),
                ),
                extra={"lambda_version": lambda_version, **_steps_of(state)},
            )
        self._serving.route(name, AliasRouting(primary=lambda_version))
        return PromotionResult(
            model_version=number,
            lambda_version=lambda_version,
            previous_champion=previous if previous != number else None,
        )

    # -- Rollback ------------------------------------------------------------------------------
    def rollback(self, state: PromotionState) -> RollbackResult:
        """Alias live → the champion alone, then registry ``canary → rolled_back``."""
        name, number = state.model_name, state.version
        reason = (
            state.canary_check.payload.reason
            if state.canary_check is not None
            else "canary rolled back"
        )
        routing = self._restore_alias(name, number, self._lambda_version(state))
        if self._registry.get_version(name, number).status is VersionStatus.CANARY:
            self._registry.abort_canary(
                name,
                number,
                actor=state.run.actor,
                reason=reason,
                extra={"restored_primary": routing.primary, **_steps_of(state)},
            )
        return RollbackResult(model_version=number, restored_primary=routing.primary, reason=reason)

    @staticmethod
    def _lambda_version(state: PromotionState) -> str | None:
        return state.published.payload.lambda_version if state.published else None

    def _restore_alias(self, name: str, number: int, published: str | None) -> AliasRouting:
        """Make alias live serve the registry's champion alone (if this promotion touched it).

        The champion's Lambda version comes from :class:`ServingDoc`; a champion never
        promoted through this workflow (or none yet) keeps the alias's current primary,
        which this workflow only changes after the registry names a new champion.
        """
        model = self._registry.get_model(name)
        routing = self._serving.routing(name)
        ours = published is not None and routing.routes_to(published)
        if model.challenger not in (None, number) and not ours:
            return routing  # another promotion owns the canary: leave it alone
        found = read(self._records, model_key(name, SERVING), ServingDoc)
        target = found[0].lambda_version(model.champion) if found else None
        if target is None:
            if published is not None and routing.primary == published:
                raise ServingControlError(
                    f"cannot tell which Lambda version serves the champion of {name!r}: "
                    f"alias live's primary is this promotion's version {published}",
                    field="alias",
                )
            target = routing.primary
        restored = AliasRouting(primary=target)
        if restored != routing:
            self._serving.route(name, restored)
        return restored

    def serve_champion(self, name: str) -> AliasRouting:
        """Make alias live serve the registry's champion alone (after a registry rollback).

        Raises
        ------
        ServingControlError
            The champion was never published to alias live by the promotion workflow.
        """
        model = self._registry.get_model(name)
        found = read(self._records, model_key(name, SERVING), ServingDoc)
        target = found[0].lambda_version(model.champion) if found else None
        if target is None:
            raise ServingControlError(
                f"version {model.champion} of {name!r} has no published Lambda version",
                field="alias",
            )
        routing = self._serving.routing(name)
        restored = AliasRouting(primary=target)
        if restored != routing:
            self._serving.route(name, restored)
        return restored

    # -- by hand (flywheel promote / rollback) -------------------------------------------------
    def promote_now(self, name: str, version: int, *, actor: str, reason: str) -> ServedChange:
        """Make approved ``version`` the champion now, with alias live following, all or nothing.

        The version's Lambda version is published (idempotent) and alias live pointed at
        it alone; then the registry promotes it.  If the registry refuses, the alias is put
        back as it was and the error is raised: nothing changed.

        Raises
        ------
        PromotionInProgressError
            A canary is running on alias live (finish or roll back it first).
        ExperimentInProgressError
            An experiment runs (stop it, or promote its winner through the workflow).
        ServingControlError
            Publishing or routing failed (nothing changed), or the alias could not be put
            back after the registry refused (``details["diverged"]``).
        """
        self._registry.resolve(name, version)  # unknown model or version: nothing to do
        model = self._registry.get_model(name)
        self._check_no_prompt_canary(model)
        self._check_no_other_canary(model, version)
        self._check_no_experiment(name)
        lambda_version = self._serving.publish(name, version).lambda_version

        def promote(records: tuple[RecordWrite, ...]) -> ModelVersion:
            return self._registry.promote(
                name,
                version,
                actor=actor,
                reason=reason,
                records=records,
                extra={"lambda_version": lambda_version},
            )

        return self._follow(name, version, lambda_version, promote)

    def rollback_now(self, name: str, *, actor: str, reason: str) -> ServedChange:
        """Champion back to the previous production version, alias live following, all or
        nothing (the same order and guarantees as :meth:`promote_now`).

        Raises
        ------
        NoPreviousChampionError
            Nothing to roll back to (nothing changed).
        PromotionInProgressError, ServingControlError
            As for :meth:`promote_now`.
        """
        model = self._registry.get_model(name)
        self._check_no_prompt_canary(model)
        if model.champion is None or not model.champion_history:
            raise NoPreviousChampionError(
                f"model {name!r} has no previous champion to roll back to", field="name"
            )
        target = model.champion_history[-1]
        self._check_no_other_canary(model, target)
        found = read(self._records, model_key(name, SERVING), ServingDoc)
        known = found[0].lambda_version(target) if found else None
        lambda_version = known or self._serving.publish(name, target).lambda_version

        def rollback(records: tuple[RecordWrite, ...]) -> ModelVersion:
            return self._registry.rollback(name, actor=actor, reason=reason, records=records)

        return self._follow(name, target, lambda_version, rollback)

    @staticmethod
    def _check_no_prompt_canary(model: Model) -> None:
        """A prompt's canary belongs to its promotion workflow, which promotes or rolls it
        back; a hand change would race the workflow's next step."""
        if model.kind is RegistryKind.PROMPT and model.challenger is not None:
            raise PromotionInProgressError(
                f"version {model.challenger} of prompt {model.name!r} is on canary: its "
                "promotion workflow promotes it or rolls it back; let it finish first",
                field="version",
                details={"challenger": model.challenger},
            )

    def _follow(
        self,
        name: str,
        version: int,
        lambda_version: str,
        change: Callable[[tuple[RecordWrite, ...]], ModelVersion],
    ) -> ServedChange:
        """Route alias live to ``lambda_version`` alone, then apply the registry ``change``
        (recording the Lambda version); put the alias back if the registry refuses."""
        before = self._serving.routing(name)
        if before.weights:
            raise PromotionInProgressError(
                f"alias live of {name!r} is splitting traffic {before.weights}: a canary is "
                "running; let the promotion workflow finish or roll it back first",
                field="alias",
            )
        after = AliasRouting(primary=lambda_version)
        if after != before:
            self._serving.route(name, after)  # failure: raised, nothing changed
        found = read(self._records, model_key(name, SERVING), ServingDoc)
        serving, revision = found if found else (ServingDoc(), None)
        mapping = {**serving.lambda_versions, str(version): lambda_version}
        record = write(model_key(name, SERVING), ServingDoc(lambda_versions=mapping), revision)
        try:
            changed = change((record,))
        except Exception as refused:
            if after != before:
                try:
                    self._serving.route(name, before)
                except ServingControlError as err:
                    raise ServingControlError(
                        f"the registry refused the change ({refused}) and alias live of "
                        f"{name!r} could not be put back on Lambda version {before.primary}: "
                        "it now serves a version the registry does not name; run the command "
                        "again or point the alias back by hand",
                        field="alias",
                        details={"diverged": True, "alias_primary": lambda_version},
                    ) from err
            raise
        return ServedChange(version=changed, lambda_version=lambda_version, routed=after != before)

    # -- RecordFailure -------------------------------------------------------------------------
    def record_failure(self, state: PromotionState) -> FailureResult:
        """Restore alias live to the champion alone, then audit ``promotion_failed``
        (``evaluation_failed`` when the evaluation gate could not finish: the version
        stays approved).

        A version left on canary becomes ``rolled_back`` in the same transaction as the
        audit entry; the champion never changes here.
        """
        name, number = state.model_name, state.version
        step = state.failed_step
        reason = f"{step} failed" + (f": {state.error.summary}" if state.error else "")
        routing: AliasRouting | None = None
        alias_error: str | None = None
        try:
            routing = self._restore_alias(name, number, self._lambda_version(state))
        except ServingControlError as err:
            alias_error = err.message
        evaluating = step == EVALUATE_CANDIDATE
        entry = self._registry.fail_promotion(
            name,
            number,
            actor=state.run.actor,
            reason=reason[:2048],
            action=AuditAction.EVALUATION_FAILED if evaluating else AuditAction.PROMOTION_FAILED,
            extra={
                "failed_step": step,
                "error": state.error.error if state.error else None,
                "alias": routing.model_dump(mode="json") if routing else None,
                "alias_error": alias_error,
                "lambda_version": self._lambda_version(state),
            },
        )
        if alias_error is not None:
            raise ServingControlError(alias_error, field="alias")
        return FailureResult(
            workflow="promotion",
            reason=reason,
            failed_step=step,
            version=number,
            version_status=str(self._registry.get_version(name, number).status),
            alias=routing,
            audit_seq=entry.seq,
        )


def _of(step: _Step) -> str:
    return f" (step {step.number} of {step.steps})" if step.steps > 1 else ""


def _steps_of(state: PromotionState) -> dict[str, int]:
    """The canary step a promotion or rollback ended on, for its audit entry."""
    if state.canary is None:
        return {}
    shift = state.canary.payload
    return {"step": shift.step, "steps": shift.steps}
