"""The training workflow's steps on in-memory adapters, driven by the real definition."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest

from flywheel.registry.models import ArtifactRef, VersionDraft, VersionStatus
from flywheel.training.datasets import load_dataset
from flywheel.workflows.records import ApprovalStatus
from flywheel.workflows.training import dataset_csv
from tests.unit.workflows.conftest import REQUESTER, World
from tests.workflow_support import MODEL

HAPPY_PATH = [
    "Initialize",
    "AcquireRunLock",
    "IsSuppressed",
    "ValidateData",
    "BuildTrainingSet",
    "Train",
    "Evaluate",
    "Gate",
    "GatePassed",
    "Register",
    "RequestApproval",
]


def test_a_run_trains_registers_and_waits_for_approval(world: World) -> None:
    # When a scheduled trigger starts the training workflow
    execution = world.start_training("schedule")

    # Then it stops at RequestApproval with one candidate pending approval
    assert execution.status == "WAITING"
    assert execution.visited == HAPPY_PATH
    version = world.registry.get_version(MODEL, 1)
    assert version.status is VersionStatus.PENDING_APPROVAL
    assert version.metrics["accuracy"] > 0.9
    assert world.actions() == [
        "model_configured",
        "retrain_triggered",
        "version_registered",
        "approval_requested",
    ]
    # The token is stored server-side, bound to the version and its artifact.
    approval, _ = world.approvals.find_for_version(MODEL, 1) or (None, 0)
    assert approval is not None
    assert approval.status is ApprovalStatus.PENDING
    assert approval.artifact_sha256 == version.artifact.sha256
    assert approval.task_token == execution.task_token

    # When a reviewer approves, the run resumes, releases its lock and succeeds
    world.approve(execution)
    assert execution.status == "SUCCEEDED"
    assert execution.visited[len(HAPPY_PATH) :] == ["ReleaseRunLock", "Done"]
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.APPROVED
    assert world.events.events[-1][0] == "VersionApproved"
    assert world.registry.verify(MODEL).ok


def test_the_run_trains_on_an_immutable_snapshot_and_keeps_no_pickles(world: World) -> None:
    execution = world.start_training("schedule")
    state = execution.state

    # The training set is a snapshot in the artifact store with its SHA-256 ...
    snapshot = state["training_set"]["Payload"]["snapshot"]
    assert snapshot["uri"].startswith("memory://training-sets/cancer/")
    data = world.artifacts.get(_ref(snapshot))
    assert data == dataset_csv(load_dataset("sklearn:breast_cancer"))
    # ... and the registered lineage names the snapshot's content hash.
    version = world.registry.get_version(MODEL, 1)
    assert version.tags["training_set_sha256"] == snapshot["sha256"]

    # The holdout is stored as plain .npy arrays that load without pickle.
    trained = state["training"]["Payload"]
    x = np.load(io.BytesIO(world.artifacts.get(_ref(trained["holdout"]["x"]))), allow_pickle=False)
    y = np.load(io.BytesIO(world.artifacts.get(_ref(trained["holdout"]["y"]))), allow_pickle=False)
    assert x.dtype == np.float64
    assert x.shape == (trained["n_holdout"], 30)
    assert y.shape == (trained["n_holdout"],)
    # Register registered exactly the draft Train wrote.
    draft = VersionDraft.model_validate(world.artifacts.get_json(_ref(trained["draft"])))
    assert draft.artifact == version.artifact


def test_the_champion_is_scored_on_the_candidates_holdout(world: World) -> None:
    # Given a champion from a first run
    first = world.start_training("schedule")
    world.approve(first)
    world.registry.promote(MODEL, 1, actor="ops", reason="first champion")
    world.clock.advance(_hours(2))

    # When a second run evaluates its candidate
    second = world.start_training("drift")

    # Then both were scored on the second run's holdout, and the same data and seed give the
    # same model, so the candidate only ties: min_improvement 0 lets a tie through
    evaluation = second.state["evaluation"]["Payload"]
    assert evaluation["champion"]["version"] == 1
    assert evaluation["champion"]["comparable"] is True
    assert evaluation["candidate"]["metrics"] == pytest.approx(evaluation["champion"]["metrics"])
    assert second.state["gate"]["Payload"]["passed"] is True
    assert second.status == "WAITING"


def test_a_gate_rejection_registers_nothing_and_audits_why(world: World) -> None:
    # Given a policy no logistic regression can meet
    world.configure(gate={"minimums": {"accuracy": 0.9999}})

    # When a run trains a candidate
    execution = world.start_training("schedule")

    # Then the run ends NotPromoted, nothing is registered and the audit says why
    assert execution.status == "SUCCEEDED"
    assert execution.visited[-3:] == [
        "GatePassed",
        "ReleaseRunLockAfterGateRejection",
        "NotPromoted",
    ]
    with pytest.raises(Exception, match="does not exist"):
        world.registry.get_model(MODEL)
    entry = list(world.audit.entries(MODEL))[-1]
    assert str(entry.action) == "gate_rejected"
    assert entry.reason is not None
    assert entry.reason.startswith("minimum.accuracy: ")
    assert "< 0.9999" in entry.reason
    assert entry.details["checks"][0]["name"] == "parity"
    # and the lock is free again: a manual run may start at once
    assert world.start_training("manual").status == "SUCCEEDED"


def test_a_failed_step_releases_the_lock_and_audits_training_failed(world: World) -> None:
    # Given a source that cannot be read
    world.configure(training={"dataset": {"source": "/nowhere/churn.csv", "target": "churned"}})

    execution = world.start_training("schedule")

    assert execution.status == "FAILED"
    assert execution.error == "TrainingFailed"
    assert execution.visited[-4:] == [
        "ValidateData",
        "ReleaseRunLockAfterFailure",
        "RecordFailure",
        "TrainingFailed",
    ]
    entry = list(world.audit.entries(MODEL))[-1]
    assert str(entry.action) == "training_failed"
    assert entry.reason is not None
    assert entry.reason.startswith("ValidateData failed: DatasetError: dataset.source")
    assert execution.state["lock_release"]["Payload"]["released"] is True


def test_a_rejected_candidate_ends_the_run_as_rejected(world: World) -> None:
    from flywheel.workflows.approvals import Decision

    execution = world.start_training("manual", requested_by=REQUESTER)
    doc = world.approvals.decide(
        world.pending_approval_id(),
        decision=Decision.REJECT,
        approver="arn:aws:iam::123456789012:user/reviewer",
        reason="recall too low on the minority class",
    )
    kind, token, failure = world.tokens.sent[-1]
    assert (kind, failure["error"]) == ("failure", "ApprovalRejected")
    execution.send_task_failure(token, failure["error"], failure["cause"])

    assert doc.status is ApprovalStatus.REJECTED
    assert execution.status == "SUCCEEDED"
    assert execution.visited[-2:] == ["ReleaseRunLockAfterRejection", "Rejected"]
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.REJECTED
    assert approved_events(world) == []


def test_an_approval_that_times_out_rejects_the_candidate(world: World) -> None:
    execution = world.start_training("schedule")

    execution.time_out()

    assert execution.status == "FAILED"
    assert execution.visited[-3:] == [
        "ReleaseRunLockAfterFailure",
        "RecordFailure",
        "TrainingFailed",
    ]
    assert world.registry.get_version(MODEL, 1).status is VersionStatus.REJECTED
    approval, _ = world.approvals.find_for_version(MODEL, 1) or (None, 0)
    assert approval is not None
    assert approval.status is ApprovalStatus.EXPIRED
    assert world.actions()[-1] == "approval_expired"
    assert world.registry.verify(MODEL).ok


def _ref(data: dict[str, object]) -> ArtifactRef:
    return ArtifactRef.model_validate(data)


def _hours(n: int) -> timedelta:
    return timedelta(hours=n)


def approved_events(world: World) -> list[tuple[str, dict[str, object]]]:
    """The events that start a promotion (``ApprovalRequested`` only notifies people)."""
    return [e for e in world.events.events if e[0] == "VersionApproved"]


def test_a_run_asked_for_at_a_commit_records_that_commit_as_its_code_version(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step that knows no commit of its own (Lambda: no git checkout, no variable)
    monkeypatch.setattr("flywheel.training.trainer.code_commit", lambda: None)

    # When CI asks for a run at the commit it just deployed
    commit = "3f2a9c1d0b7e6a5f4c3b2a1d0e9f8a7b6c5d4e3f"
    world.start_training("manual", requested_by=REQUESTER, code_version=commit)

    # Then the registered candidate's lineage names that commit
    assert world.registry.get_version(MODEL, 1).lineage.code_commit == commit


def test_a_run_nobody_pinned_to_a_commit_names_none_in_lambda(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flywheel.training.trainer.code_commit", lambda: None)

    world.start_training("schedule")

    assert world.registry.get_version(MODEL, 1).lineage.code_commit is None
