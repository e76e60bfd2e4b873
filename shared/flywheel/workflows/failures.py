"""``record_failure``: the last step of both workflows' failure paths.

The training and promotion state machines share one ``record_failure`` function
(``promotion_steps.handler.record_failure``). It tells the two apart by their state
and leaves registry, alias and audit consistent:

- training: the run lock is already released (``ReleaseRunLockAfterFailure``); a
  candidate the run registered is rejected and its pending approval closed (expired
  when the approval wait timed out), one transaction with the audit entry; without a
  candidate only ``training_failed`` is audited (``data_validation_failed`` when the data
  failed its expectations, with the report). No half-registered version remains.
- promotion: see :meth:`~flywheel.workflows.promotion.PromotionSteps.record_failure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.workflows.data_checks import report_base
from flywheel.workflows.state import (
    FailureResult,
    PromotionState,
    TrainingState,
    is_training_state,
)

if TYPE_CHECKING:
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.approvals import ApprovalService
    from flywheel.workflows.promotion import PromotionSteps

#: The error Step Functions records when a task (here: the approval wait) times out.
TASK_TIMEOUT = "States.Timeout"
#: The error a data check raises (``DataValidationError``'s class name).
DATA_VALIDATION_ERROR = "DataValidationError"


class WorkflowFailures:
    """Dispatch a failed workflow's state to the right clean-up.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> platform = InMemoryPlatform()
    >>> failures = platform.workflow_failures()
    >>> run = {
    ...     "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:training:run-1",
    ...     "execution_name": "run-1", "started_at": "2026-01-01T00:00:00Z",
    ...     "state_machine": "training",
    ... }
    >>> lock = {"suppressed": False, "reason": "schedule trigger", "run_id": "run-1",
    ...         "trigger": "schedule"}
    >>> result = failures.record({
    ...     "model_name": "iris", "trigger": {"reason": "schedule"}, "run": run,
    ...     "lock": {"Payload": lock},
    ...     "error": {"Error": "DataValidationError", "Cause": "data.min_rows: 150 rows"},
    ... })
    >>> result.workflow, result.failed_step
    ('training', 'ValidateData')
    >>> result.reason
    'ValidateData failed: DataValidationError: data.min_rows: 150 rows'
    >>> [str(e.action) for e in platform.registry.audit.entries("iris")]
    ['data_validation_failed']
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        approvals: ApprovalService,
        promotion: PromotionSteps,
    ) -> None:
        self._registry = registry
        self._approvals = approvals
        self._promotion = promotion

    def record(self, event: dict[str, Any]) -> FailureResult:
        """Record the failure of whichever workflow ``event`` (its whole state) belongs to."""
        if is_training_state(event):
            return self.training(TrainingState.model_validate(event))
        return self._promotion.record_failure(PromotionState.model_validate(event))

    def training(self, state: TrainingState) -> FailureResult:
        """Close a failed training run: reject its candidate, close its approval, audit why."""
        name = state.model_name
        step = state.failed_step
        reason = f"{step} failed" + (f": {state.error.summary}" if state.error else "")
        if state.cleanup_error is not None:
            reason += f" (clean-up: {state.cleanup_error.summary})"
        reason = reason[:2048]
        version: int | None = None
        status: str | None = None
        if state.registration is not None:
            version = state.registration.payload.version
            expired = (
                step == "RequestApproval"
                and state.error is not None
                and state.error.error == TASK_TIMEOUT
            )
            status = str(
                self._approvals.withdraw(
                    name, version, actor=state.run.actor, reason=reason, expired=expired
                )
            )
        else:
            details = {
                "failed_step": step,
                "error": state.error.error if state.error else None,
                "execution_id": state.run.execution_id,
                "trigger": str(state.trigger.reason),
            }
            action = AuditAction.TRAINING_FAILED
            if state.error is not None and state.error.error == DATA_VALIDATION_ERROR:
                # No version exists yet: the entry changes nothing (writer.EFFECTS).
                action = AuditAction.DATA_VALIDATION_FAILED
                details["report"] = f"{report_base(name, state.run)}.json"
            self._registry.record(
                AuditDraft(
                    model=name,
                    action=action,
                    actor=state.run.actor,
                    reason=reason,
                    details=details,
                )
            )
        head = self._registry.audit.head(name)
        return FailureResult(
            workflow="training",
            reason=reason,
            failed_step=step,
            version=version,
            version_status=status,
            audit_seq=head.seq if head else 0,
        )
