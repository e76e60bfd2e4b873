"""The promotion workflow, as Amazon States Language.

::

    Initialize -> EvaluateCandidate -> CandidatePassed?
        no  -> CandidateRejected (Fail: CandidateRejected)
        yes -> PublishVersion -> ShiftAlias -> Bake (Wait) -> CheckCanary -> Healthy?
            yes -> LastStep? yes -> PromoteAll -> Promoted (Succeed)
                             no  -> ShiftAlias (the next step's weight)
            no  -> Rollback -> RolledBack (Fail: CanaryRolledBack)
    any task error -> RecordFailure -> PromotionFailed (Fail)

``EvaluateCandidate`` is a prompt version's evaluation gate (ADR 81; a model passes
through it untouched): it answers the version's evaluation set with the version and the
champion and rejects the version (audited, ``approved -> rejected``) when the prompt's gate
says so. A provider or evaluator that is throttled or unavailable
(``EvaluationUnavailableError``) is retried a few times before the failure path.

The canary walks the model's steps (``FLYWHEEL_CANARY_STEPS`` of the promotion
functions, from the project file): ``shift_alias`` returns the step it set, its bake
(``Bake`` waits ``$.canary.Payload.bake_seconds``) and whether it is the last; the next
``shift_alias`` reads the previous step from ``$.canary``. No variables, no JSONata.

Started by an EventBridge rule on ``VersionApproved`` (never by a nested
``startExecution``). ``record_failure`` also restores alias ``live`` to the champion
alone, so every failure leaves alias, registry and audit consistent.

Input (from the rule)::

    {"model_name": "breast-cancer", "version": 7, "event_id": "...", "approval": {...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.workflows.asl import State, fail, lambda_task, run_context, succeed

if TYPE_CHECKING:
    from collections.abc import Mapping

STEPS: dict[str, tuple[str, str, str]] = {
    # state: (function, result key, next state)
    "EvaluateCandidate": ("evaluate_candidate", "evaluation", "CandidatePassed"),
    "PublishVersion": ("publish_version", "published", "ShiftAlias"),
    "ShiftAlias": ("shift_alias", "canary", "Bake"),
    "CheckCanary": ("check_canary", "canary_check", "CanaryHealthy"),
    "PromoteAll": ("promote_all", "promotion", "Promoted"),
    "Rollback": ("rollback", "rollback", "RolledBack"),
}
REQUIRED_FUNCTIONS = frozenset([*(fn for fn, _, _ in STEPS.values()), "record_failure"])
#: What ``evaluate_candidate`` raises when the provider or an evaluator stays throttled or
#: unavailable after its own retries: worth retrying the whole step a few times.
EVALUATION_UNAVAILABLE_ERRORS = ("EvaluationUnavailableError",)


@dataclass(frozen=True)
class PromotionSettings:
    machine_timeout: int
    #: The stage's one-step canary, for models that name no steps of their own.
    bake_seconds: int
    canary_weight: float
    function_timeouts: Mapping[str, int]

    def task(self, function: str) -> int:
        return self.function_timeouts[function] + 30


def promotion_definition(functions: Mapping[str, str], settings: PromotionSettings) -> State:
    """The promotion state machine; ``functions`` maps step names to Lambda ARNs."""
    missing = REQUIRED_FUNCTIONS - set(functions)
    if missing:
        raise ValueError(f"missing functions: {sorted(missing)}")

    states: dict[str, State] = {
        "Initialize": run_context("EvaluateCandidate"),
    }
    initialize = states["Initialize"]
    initialize["Parameters"]["canary_weight"] = settings.canary_weight
    initialize["Parameters"]["bake_seconds"] = settings.bake_seconds
    for name, (function, result_key, next_state) in STEPS.items():
        states[name] = lambda_task(
            functions[function],
            result_key=result_key,
            timeout_seconds=settings.task(function),
            on_error="RecordFailure",
            next_state=next_state,
        )
    states["EvaluateCandidate"]["Retry"].append(
        {
            "ErrorEquals": list(EVALUATION_UNAVAILABLE_ERRORS),
            "IntervalSeconds": 20,
            "MaxAttempts": 2,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        }
    )
    states["CandidatePassed"] = {
        "Type": "Choice",
        "Comment": "A prompt version's evaluation gate (a model always passes).",
        "Choices": [
            {
                "Variable": "$.evaluation.Payload.passed",
                "BooleanEquals": True,
                "Next": "PublishVersion",
            }
        ],
        "Default": "CandidateRejected",
    }
    states["CandidateRejected"] = fail(
        "CandidateRejected",
        "The evaluation gate rejected the prompt version; see $.evaluation.Payload.reasons.",
    )
    states["Bake"] = {
        "Type": "Wait",
        "Comment": "Let the canary take this step's share of live traffic before judging it.",
        "SecondsPath": "$.canary.Payload.bake_seconds",
        "Next": "CheckCanary",
    }
    states["CanaryHealthy"] = {
        "Type": "Choice",
        "Comment": "check_canary reads the canary alarms (infra/constructs/canary_alarms.py).",
        "Choices": [
            {
                "Variable": "$.canary_check.Payload.healthy",
                "BooleanEquals": True,
                "Next": "LastStep",
            }
        ],
        "Default": "Rollback",
    }
    states["LastStep"] = {
        "Type": "Choice",
        "Comment": "Promote after the last step; otherwise shift_alias sets the next weight.",
        "Choices": [
            {"Variable": "$.canary.Payload.last", "BooleanEquals": True, "Next": "PromoteAll"}
        ],
        "Default": "ShiftAlias",
    }
    states["Promoted"] = succeed("The new version serves all traffic and is the champion.")
    states["RolledBack"] = fail(
        "CanaryRolledBack", "The canary breached an alarm; alias live is back on the champion."
    )
    record_failure = lambda_task(
        functions["record_failure"],
        result_key="failure",
        timeout_seconds=settings.task("record_failure"),
        on_error="PromotionFailed",
        next_state="PromotionFailed",
        comment="Restore alias live to the champion, then audit promotion_failed.",
    )
    record_failure["Catch"][0]["ResultPath"] = "$.cleanup_error"
    states["RecordFailure"] = record_failure
    states["PromotionFailed"] = fail("PromotionFailed", "A promotion step failed; see $.error.")
    # Keep the natural reading order in the definition.
    order = [
        "Initialize", "EvaluateCandidate", "CandidatePassed", "CandidateRejected",
        "PublishVersion", "ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy",
        "LastStep", "PromoteAll", "Promoted", "Rollback", "RolledBack", "RecordFailure",
        "PromotionFailed",
    ]  # fmt: skip
    return {
        "Comment": "Flywheel promotion: evaluate a prompt version, publish a pinned version, "
        "canary on alias live step by step (bake, check alarms), promote or roll back.",
        "StartAt": "Initialize",
        "TimeoutSeconds": settings.machine_timeout,
        "States": {name: states[name] for name in order},
    }
