"""The training workflow, as Amazon States Language.

::

    Initialize -> AcquireRunLock -> Suppressed? --yes--> Suppressed (Succeed)
      -> ValidateData -> BuildTrainingSet -> Train -> Evaluate -> Gate -> Passed?
           no  -> ReleaseRunLockAfterGateRejection -> NotPromoted (Succeed)
           yes -> Register -> RequestApproval (waitForTaskToken)
                    approved -> ReleaseRunLock -> Done (Succeed)
                    ApprovalRejected -> ReleaseRunLockAfterRejection -> Rejected (Succeed)
    any error -> ReleaseRunLockAfterFailure -> RecordFailure -> TrainingFailed (Fail)

``Train`` trains, converts to ONNX and checks parity in one step, so no pickle ever
crosses a state boundary (on AWS Batch or SageMaker: :mod:`.training_engines`).
``release_run_lock`` must only release a lock held by this execution
(``$.run.execution_id``), which makes releasing after any failure safe.

Input (from the EventBridge rules, or ``aws stepfunctions start-execution``)::

    {"model_name": "breast-cancer", "trigger": {"reason": "schedule", ...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.workflows.asl import (
    State,
    callback_task,
    catch_all,
    fail,
    lambda_task,
    run_context,
    succeed,
)
from infra.workflows.training_engines import EngineJob, engine_states

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Task state name -> (function key in the ``functions`` mapping, result key in the state).
STEPS: dict[str, tuple[str, str]] = {
    "AcquireRunLock": ("acquire_run_lock", "lock"),
    "ValidateData": ("validate_data", "validation"),
    "BuildTrainingSet": ("build_training_set", "training_set"),
    "Train": ("train", "training"),
    "Evaluate": ("evaluate", "evaluation"),
    "Gate": ("gate", "gate"),
    "Register": ("register", "registration"),
}
REQUIRED_FUNCTIONS = frozenset(
    [*(fn for fn, _ in STEPS.values()), "request_approval", "release_run_lock", "record_failure"]
)
#: The states around a Train step on AWS Batch or SageMaker (ADR 85).
JOB_STEPS: dict[str, tuple[str, str]] = {
    "PrepareTrainingJob": ("prepare_training_job", "training_job"),
    "CollectTrainingJob": ("collect_training_job", "training"),
}
JOB_FUNCTIONS = frozenset(fn for fn, _ in JOB_STEPS.values())
APPROVAL_REJECTED_ERROR = "ApprovalRejected"


@dataclass(frozen=True)
class TrainingTimeouts:
    """Seconds: the whole machine, the approval wait and each function's own timeout."""

    machine: int
    approval: int
    approval_heartbeat: int
    functions: Mapping[str, int]

    def task(self, function: str) -> int:
        """A task may run a little longer than its function (invoke overhead)."""
        return self.functions[function] + 30


def training_definition(
    functions: Mapping[str, str],
    timeouts: TrainingTimeouts,
    jobs: Mapping[str, EngineJob] | None = None,
) -> State:
    """The training state machine; ``functions`` maps step names to Lambda ARNs.

    ``jobs``: the models whose Train step runs on AWS Batch or SageMaker, each with its
    job (:mod:`infra.workflows.training_engines`); without any, the machine is exactly
    the Lambda-only one.
    """
    required = REQUIRED_FUNCTIONS | (JOB_FUNCTIONS if jobs else frozenset())
    missing = required - set(functions)
    if missing:
        raise ValueError(f"missing functions: {sorted(missing)}")

    def task(name: str, next_state: str, on_error: str = "ReleaseRunLockAfterFailure") -> State:
        function, result_key = STEPS.get(name) or JOB_STEPS[name]
        return lambda_task(
            functions[function],
            result_key=result_key,
            timeout_seconds=timeouts.task(function),
            on_error=on_error,
            next_state=next_state,
        )

    def release(next_state: str) -> State:
        return lambda_task(
            functions["release_run_lock"],
            result_key="lock_release",
            timeout_seconds=timeouts.task("release_run_lock"),
            on_error="RecordFailure",
            next_state=next_state,
        )

    record_failure = lambda_task(
        functions["record_failure"],
        result_key="failure",
        timeout_seconds=timeouts.task("record_failure"),
        on_error="TrainingFailed",
        next_state="TrainingFailed",
        comment="Audit the failure (registry unchanged: no candidate is left half-registered).",
    )
    record_failure["Catch"][0]["ResultPath"] = "$.cleanup_error"
    release_after_failure = release("RecordFailure")
    release_after_failure["Catch"][0]["ResultPath"] = "$.cleanup_error"

    states: dict[str, State] = {
        "Initialize": run_context("AcquireRunLock"),
        "AcquireRunLock": task("AcquireRunLock", "IsSuppressed"),
        "IsSuppressed": {
            "Type": "Choice",
            "Comment": "Cooldown or a run in progress: stop here (the lock step audited why).",
            "Choices": [
                {
                    "Variable": "$.lock.Payload.suppressed",
                    "BooleanEquals": True,
                    "Next": "Suppressed",
                }
            ],
            "Default": "ValidateData",
        },
        "Suppressed": succeed("Trigger suppressed by cooldown or deduplication."),
        "ValidateData": task("ValidateData", "BuildTrainingSet"),
        "BuildTrainingSet": task("BuildTrainingSet", "TrainingEngine" if jobs else "Train"),
        "Train": task("Train", "Evaluate"),
        "Evaluate": task("Evaluate", "Gate"),
        "Gate": task("Gate", "GatePassed"),
        "GatePassed": {
            "Type": "Choice",
            "Comment": "Policy verdict: the candidate must beat the champion on the same holdout.",
            "Choices": [
                {"Variable": "$.gate.Payload.passed", "BooleanEquals": True, "Next": "Register"}
            ],
            "Default": "ReleaseRunLockAfterGateRejection",
        },
        "ReleaseRunLockAfterGateRejection": release("NotPromoted"),
        "NotPromoted": succeed("The gate rejected the candidate; nothing was registered."),
        "Register": task("Register", "RequestApproval"),
        "RequestApproval": callback_task(
            functions["request_approval"],
            result_key="approval",
            payload={
                "model_name.$": "$.model_name",
                "run.$": "$.run",
                "training.$": "$.training",
                "evaluation.$": "$.evaluation",
                "gate.$": "$.gate",
                "registration.$": "$.registration",
            },
            timeout_seconds=timeouts.approval,
            heartbeat_seconds=timeouts.approval_heartbeat,
            catches=[
                {
                    "ErrorEquals": [APPROVAL_REJECTED_ERROR],
                    "ResultPath": "$.error",
                    "Next": "ReleaseRunLockAfterRejection",
                },
                *catch_all("ReleaseRunLockAfterFailure"),
            ],
            next_state="ReleaseRunLock",
            comment="Store the task token server-side and wait for POST /v1/approvals/{id}.",
        ),
        "ReleaseRunLock": release("Done"),
        "Done": succeed("Approved: VersionApproved starts the promotion workflow."),
        "ReleaseRunLockAfterRejection": release("Rejected"),
        "Rejected": succeed("An approver rejected the candidate."),
        "ReleaseRunLockAfterFailure": release_after_failure,
        "RecordFailure": record_failure,
        "TrainingFailed": fail("TrainingFailed", "A training step failed; see $.error."),
    }
    if jobs:
        states.update(
            engine_states(
                jobs,
                prepare=task("PrepareTrainingJob", "TrainingJob"),
                collect=task("CollectTrainingJob", "Evaluate"),
                on_error="ReleaseRunLockAfterFailure",
                lambda_train="Train",
            )
        )
    return {
        "Comment": "Flywheel training: lock, validate, build, train+ONNX, evaluate, gate, "
        "register, human approval.",
        "StartAt": "Initialize",
        "TimeoutSeconds": timeouts.machine,
        "States": states,
    }
