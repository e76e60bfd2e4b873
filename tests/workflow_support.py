"""Shared builders for workflow tests: configs, definitions, execution inputs, handler maps."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flywheel.registry.models import ArtifactRef, ModelVersion, ParityReport
from flywheel.workflows.state import (
    ApprovalRequest,
    EvaluationResult,
    GateResult,
    HoldoutRefs,
    ModelScore,
    RegistrationResult,
    RunContext,
    TaskResult,
    TrainResult,
)
from infra.workflows.promotion import REQUIRED_FUNCTIONS as PROMOTION_FUNCTIONS
from infra.workflows.promotion import PromotionSettings, promotion_definition
from infra.workflows.training import REQUIRED_FUNCTIONS as TRAINING_FUNCTIONS
from infra.workflows.training import TrainingTimeouts, training_definition

EVENTS = Path(__file__).parent / "events"
MODEL = "cancer"
TRAINING_MACHINE = "flywheel-test-training"
PROMOTION_MACHINE = "flywheel-test-promotion"
CANARY_WEIGHT = 0.2


def event(name: str, **replace: Any) -> dict[str, Any]:
    """A sample event from ``tests/events`` with top-level keys replaced."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    data.update(replace)
    return data


def model_config(**overrides: Any) -> dict[str, Any]:
    """Logistic regression on breast cancer: fast, and good enough to pass the gate."""
    config: dict[str, Any] = {
        "name": MODEL,
        "training": {
            "task": "classification",
            "dataset": {"source": "sklearn:breast_cancer"},
            "estimator": "logistic_regression",
            "hyperparameters": {"max_iter": 500},
            "seed": 7,
        },
        "gate": {"metric": "roc_auc", "min_improvement": 0.0, "minimums": {"accuracy": 0.9}},
        "retraining": {"cooldown_minutes": 60},
        "approval": {"timeout_hours": 24, "require_distinct_approver": True},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def training_machine() -> dict[str, Any]:
    """The training definition exactly as the CDK app builds it (function keys as ARNs)."""
    functions = {fn: fn for fn in TRAINING_FUNCTIONS}
    return training_definition(
        functions,
        TrainingTimeouts(
            machine=7200,
            approval=3600,
            approval_heartbeat=3540,
            functions=dict.fromkeys(TRAINING_FUNCTIONS, 60),
        ),
    )


def promotion_machine() -> dict[str, Any]:
    functions = {fn: fn for fn in PROMOTION_FUNCTIONS}
    return promotion_definition(
        functions,
        PromotionSettings(
            machine_timeout=3600,
            bake_seconds=300,
            canary_weight=CANARY_WEIGHT,
            function_timeouts=dict.fromkeys(PROMOTION_FUNCTIONS, 60),
        ),
    )


def training_input(
    reason: str = "schedule",
    *,
    event_id: str | None = None,
    requested_by: str | None = None,
    model: str = MODEL,
    code_version: str | None = None,
) -> dict[str, Any]:
    """What the EventBridge rules put in a training execution's input."""
    data = event("training_input.json", model_name=model)
    data["trigger"]["reason"] = reason
    # EventBridge gives every event its own id (redeliveries keep it): fresh unless given.
    data["trigger"]["event_id"] = event_id or str(uuid.uuid4())
    if requested_by is not None:
        data["trigger"]["detail"] = {"model_name": model, "requested_by": requested_by}
    if code_version is not None:
        data["trigger"]["detail"]["code_version"] = code_version
    return data


def promotion_input(detail: Mapping[str, Any]) -> dict[str, Any]:
    """What the VersionApproved rule puts in a promotion execution's input."""
    data = event("promotion_input.json")
    data.update(
        model_name=detail["model_name"],
        version=detail["version"],
        approval=dict(detail),
    )
    return data


Step = Callable[[dict[str, Any]], Any]


def as_handlers(steps: Mapping[str, Step]) -> dict[str, Callable[[dict[str, Any], Any], Any]]:
    """Domain methods as Lambda-style handlers (state in, JSON out)."""

    def wrap(step: Step) -> Callable[[dict[str, Any], Any], Any]:
        return lambda state, _context: step(state).model_dump(mode="json")

    return {name: wrap(step) for name, step in steps.items()}


REF = ArtifactRef(uri="memory://x", sha256="0" * 64, size_bytes=1, format="json")


def approval_request_for(
    version: ModelVersion,
    *,
    requested_by: str,
    timeout_seconds: int = 3600,
    distinct: bool = True,
    token: str = "token-1",
    execution: str = "run-1",
    artifact_sha256: str | None = None,
    **policy: Any,
) -> ApprovalRequest:
    """The ``RequestApproval`` payload for a registered version (stand-in training results)."""
    run = RunContext(
        execution_id=f"arn:aws:states:us-east-1:1:execution:training:{execution}",
        execution_name=execution,
        started_at="2026-01-01T12:00:00Z",
        state_machine="flywheel-test-training",
    )
    trained = TrainResult(
        run_id=execution,
        artifact=version.artifact,
        reference_profile=REF,
        draft=REF,
        holdout=HoldoutRefs(x=REF, y=REF, feature_names=("age", "income")),
        metrics=version.metrics,
        parity=ParityReport(
            rows=10, precision="float64", max_abs_diff=0.0, p99_abs_diff=0.0, passed=True
        ),
        n_train=30,
        n_holdout=10,
        converter="skl2onnx",
    )
    return ApprovalRequest(
        model_name=version.name,
        run=run,
        training=TaskResult(Payload=trained),
        evaluation=TaskResult(
            Payload=EvaluationResult(
                candidate=ModelScore(metrics=version.metrics), holdout_rows=10, report=REF
            )
        ),
        gate=TaskResult(Payload=GateResult(passed=True, metric="roc_auc")),
        registration=TaskResult(
            Payload=RegistrationResult(
                version=version.version,
                status="candidate",
                artifact_sha256=artifact_sha256 or version.artifact.sha256,
                artifact_uri=version.artifact.uri,
                requested_by=requested_by,
                approval_timeout_seconds=timeout_seconds,
                require_distinct_approver=distinct,
                **policy,
            )
        ),
        task_token=token,
    )
