"""``EvaluateCandidate``: the promotion workflow's evaluation gate of a prompt version
(ADR 81).

The step runs after ``Initialize`` and before ``PublishVersion``. For a model it does
nothing (its gate ran in its training workflow). For an approved prompt version it runs
the version's evaluation set against the version and against the prompt's champion on the
same items (:class:`~flywheel.llm.set_runner.SetRunner`), judges the answers by the
prompt's gate policy (:func:`~flywheel.llm.gate.judge`) and records the decision with its
report (``MODEL#<name>`` / ``EVALUATION#V<n>``), with its audit entry (see Notes).

Notes
-----
* passed: ``evaluation_passed``; the workflow publishes and canaries the version;
* rejected: ``evaluation_rejected``, the version ``approved → rejected`` with the reasons;
  the workflow ends (``CandidateRejected``), nothing was routed to it;
* no evaluation set: skipped, the reason in the record (no audit entry: nothing was
  decided), or rejected when the gate says ``require_set``;
* the provider or an evaluator unavailable: the step fails
  (:class:`~flywheel.errors.EvaluationUnavailableError`, retried by the state machine),
  then ``record_failure`` audits ``evaluation_failed``; the version stays approved.

Examples
--------
>>> from flywheel.composition import InMemoryPlatform
>>> from flywheel.workflows.state import PromotionState
>>> platform = InMemoryPlatform()
>>> state = PromotionState.model_validate({"model_name": "iris", "version": 1, "run": {
...     "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:promotion:p-1",
...     "execution_name": "p-1", "started_at": "2026-01-01T00:00:00Z",
...     "state_machine": "promotion"}})
>>> platform.evaluation_gate().evaluate_candidate(state).reason
"'iris' is not a prompt: nothing to evaluate (a model's gate runs in its training workflow)"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import ConfigError, IllegalTransitionError, ModelNotFoundError
from flywheel.llm.gate import PromptGatePolicy, judge
from flywheel.registry.models import RegistryKind, VersionStatus
from flywheel.workflows.records import (
    PromptEvaluationDoc,
    evaluation_key,
    read,
    write,
)
from flywheel.workflows.state import CandidateEvaluationResult

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.clock import Clock
    from flywheel.llm.catalog import PromptCatalog, PromptVersion
    from flywheel.llm.gate import PromptGateReport
    from flywheel.llm.set_runner import SetRunner
    from flywheel.registry.models import RecordWrite
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.state import PromotionState

__all__ = ["EvaluationGate", "read_evaluation"]

#: Most reasons an audit entry lists (the record holds the whole report).
_AUDITED_REASONS = 10
_MAX_REASON = 2048


def read_evaluation(records: RecordStore, name: str, version: int) -> PromptEvaluationDoc | None:
    """What version ``version`` of prompt ``name``'s evaluation gate decided (``None``: it
    has not run)."""
    found = read(records, evaluation_key(name, version), PromptEvaluationDoc)
    return found[0] if found is not None else None


class EvaluationGate:
    """The use case behind ``promotion_steps.handler.evaluate_candidate``.

    Parameters
    ----------
    registry, records
        The registry (decisions are audited there) and its records.
    catalog
        Prompt versions and their evaluation sets, verified.
    runner
        Builds the set runner for a gate policy (its evaluators take the policy's
        per-answer ``thresholds``); called only when a set is run.
    gates
        Each prompt's gate policy (``FLYWHEEL_PROMPT_GATES``); the defaults otherwise.
    clock
        When the gate decided.
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        catalog: PromptCatalog,
        runner: Callable[[PromptGatePolicy], SetRunner],
        gates: Mapping[str, PromptGatePolicy] | None = None,
        clock: Clock,
    ) -> None:
        self._registry = registry
        self._records = records
        self._catalog = catalog
        self._runner = runner
        self._gates = dict(gates or {})
        self._clock = clock

    def policy(self, name: str) -> PromptGatePolicy:
        """Prompt ``name``'s gate (the defaults when the project file declares none)."""
        return self._gates.get(name) or PromptGatePolicy()

    def evaluate_candidate(self, state: PromotionState) -> CandidateEvaluationResult:
        """Run prompt version ``state.version``'s gate and record the decision (see the
        module docstring); a retried step returns what its execution recorded.

        Raises
        ------
        IllegalTransitionError
            The prompt version is neither approved nor on canary.
        EvaluationUnavailableError
            The provider or an evaluator could not answer (the step is retried).
        ProviderError, BudgetExceededError, ConfigError
            A call was refused, or the evaluators are not installed.
        """
        name, number = state.model_name, state.version
        try:
            kind = self._registry.get_model(name).kind
        except ModelNotFoundError:
            kind = RegistryKind.MODEL  # PublishVersion says what is wrong
        if kind is not RegistryKind.PROMPT:
            return CandidateEvaluationResult(
                passed=True,
                evaluated=False,
                outcome="not_a_prompt",
                reason=f"{name!r} is not a prompt: nothing to evaluate (a model's gate runs in "
                "its training workflow)",
            )
        execution = state.run.execution_id
        recorded = read(self._records, evaluation_key(name, number), PromptEvaluationDoc)
        if recorded is not None and recorded[0].execution_id == execution:
            return _result(recorded[0])
        status = self._registry.get_version(name, number).status
        if status is VersionStatus.CANARY:
            return CandidateEvaluationResult(
                passed=True,
                evaluated=False,
                outcome="skipped",
                reason=f"version {number} is on canary already: its gate ran before its "
                "canary started",
            )
        if status is not VersionStatus.APPROVED:
            raise IllegalTransitionError(
                f"version {number} of {name!r} is {status}; only an approved version is "
                "evaluated and promoted",
                current=status,
                target=VersionStatus.CANARY,
            )
        policy = self.policy(name)
        found = self._catalog.get(name, number)
        revision = recorded[1] if recorded is not None else None
        if found.spec.evaluation is None:
            return self._no_set(state, policy, revision)
        return self._evaluate(state, found, policy, revision)

    # -- internals ---------------------------------------------------------------------------
    def _no_set(
        self, state: PromotionState, policy: PromptGatePolicy, revision: int | None
    ) -> CandidateEvaluationResult:
        number = state.version
        if policy.require_set:
            reason = (
                f"version {number} has no evaluation set and the prompt's gate requires one "
                "(require_set)"
            )
            doc = self._doc(state, "rejected", reason)
            self._registry.reject_evaluated(
                state.model_name,
                number,
                actor=state.run.actor,
                reason=reason,
                records=(self._write(state, doc, revision),),
                extra={"outcome": "rejected", "execution_id": state.run.execution_id},
            )
            return _result(doc)
        reason = f"version {number} has no evaluation set: its evaluation gate was skipped"
        doc = self._doc(state, "skipped", reason)
        # Recorded, not audited: nothing was decided (the canary's entries follow).
        self._records.put_record(self._write(state, doc, revision))
        return _result(doc)

    def _evaluate(
        self,
        state: PromotionState,
        found: PromptVersion,
        policy: PromptGatePolicy,
        revision: int | None,
    ) -> CandidateEvaluationResult:
        name, number = state.model_name, state.version
        evaluation_set = self._catalog.evaluation_set(found)
        assert evaluation_set is not None  # the spec names a sealed set
        champion = self._registry.get_model(name).champion
        runner = self._runner(policy)
        missing = sorted(set(policy.evaluators()) - set(runner.evaluators))
        if missing:
            raise ConfigError(
                f"the gate of {name!r} names evaluators this stage does not have: "
                f"{', '.join(missing)} (it has {', '.join(runner.evaluators)})",
                field="gate",
            )
        spec, items = found.spec, evaluation_set.items
        candidate = runner.answer(name, number, spec, items, context_of=spec)
        rival = None
        if champion is not None and champion != number:
            champion_spec = self._catalog.get(name, champion).spec
            rival = runner.answer(name, champion, champion_spec, items, context_of=spec)
        report = judge(policy, candidate=candidate, champion=rival)
        if report.passed:
            checked = (
                f"{len(report.checks)} checks passed"
                if report.checks
                else "no limit declared (llm.prompts.<name>.gate)"
            )
            against = (
                f"champion v{champion}" if rival is not None else "no champion to compare with"
            )
            reason = f"evaluation gate passed on {report.items} items: {checked}; {against}"
            doc = self._doc(state, "passed", reason, evaluation_set.sha256, report)
            self._audit(state, AuditAction.EVALUATION_PASSED, doc, revision)
            return _result(doc)
        more = f" (and {len(report.reasons) - 1} more)" if len(report.reasons) > 1 else ""
        reason = f"evaluation gate rejected version {number}: {report.reasons[0]}{more}"
        doc = self._doc(state, "rejected", reason[:_MAX_REASON], evaluation_set.sha256, report)
        self._registry.reject_evaluated(
            name,
            number,
            actor=state.run.actor,
            reason=doc.reason,
            records=(self._write(state, doc, revision),),
            extra=_details(doc),
        )
        return _result(doc)

    def _doc(
        self,
        state: PromotionState,
        outcome: Literal["passed", "skipped", "rejected"],
        reason: str,
        set_sha256: str | None = None,
        report: PromptGateReport | None = None,
    ) -> PromptEvaluationDoc:
        return PromptEvaluationDoc(
            version=state.version,
            outcome=outcome,
            reason=reason,
            execution_id=state.run.execution_id,
            evaluated_at=self._clock.now(),
            set_sha256=set_sha256,
            report=report,
        )

    @staticmethod
    def _write(
        state: PromotionState, doc: PromptEvaluationDoc, revision: int | None
    ) -> RecordWrite:
        return write(evaluation_key(state.model_name, state.version), doc, revision)

    def _audit(
        self,
        state: PromotionState,
        action: AuditAction,
        doc: PromptEvaluationDoc,
        revision: int | None,
    ) -> None:
        self._registry.record(
            AuditDraft(
                model=state.model_name,
                action=action,
                actor=state.run.actor,
                version=state.version,
                reason=doc.reason,
                details=_details(doc),
            ),
            records=(self._write(state, doc, revision),),
        )


def _scores(report: PromptGateReport | None) -> dict[str, float]:
    if report is None:
        return {}
    return {
        s.evaluator: s.candidate.mean for s in report.evaluators if s.candidate.mean is not None
    }


def _details(doc: PromptEvaluationDoc) -> dict[str, object]:
    """The audit entry's details: the outcome and its figures (the record has the rest)."""
    report = doc.report
    return {
        "outcome": doc.outcome,
        "execution_id": doc.execution_id,
        "set_sha256": doc.set_sha256,
        "items": report.items if report is not None else 0,
        "champion": report.champion if report is not None else None,
        "scores": _scores(report),
        "reasons": list(report.reasons[:_AUDITED_REASONS]) if report is not None else [],
    }


def _result(doc: PromptEvaluationDoc) -> CandidateEvaluationResult:
    report = doc.report
    return CandidateEvaluationResult(
        passed=doc.outcome != "rejected",
        evaluated=report is not None,
        outcome=doc.outcome,
        reason=doc.reason,
        reasons=report.reasons
        if report is not None
        else ((doc.reason,) if doc.outcome == "rejected" else ()),
        items=report.items if report is not None else 0,
        champion=report.champion if report is not None else None,
        scores=_scores(report),
    )
