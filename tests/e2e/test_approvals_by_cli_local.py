"""`flywheel approve` on the local runtime takes the approval API's path: the same checks,
and the paused training run resumes (the synthesized workflows, in process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flywheel.errors import ApproverNotAllowedError, ModelNotFoundError, ReasonRequiredError
from flywheel.local.lifecycle import APPROVER, MODEL, OPERATOR, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.registry.models import VersionStatus

DATA_SCIENTIST = "arn:aws:iam::123456789012:user/dee.scientist"


@pytest.fixture
def life(aws_env: dict[str, str]) -> Iterator[Lifecycle]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
        life = Lifecycle(InProcessDriver(runtime))
        life.seed()  # the operator configured the model
        yield life


def _retrain(life: Lifecycle, requested_by: str | None = None) -> tuple[str, int]:
    """A run ``requested_by`` someone through the retrain route (as `flywheel retrain`
    calls it), or one nobody asked for (as the schedule starts it)."""

    def start() -> object:
        if requested_by is None:
            return life.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})
        return life.sdk(requested_by).retrain(MODEL, reason="new labels")

    arn, version, _ = life.train_until_approval(start)
    return arn, version


def test_the_requester_is_refused_by_the_cli_as_by_the_api(life: Lifecycle) -> None:
    arn, version = _retrain(life, requested_by=DATA_SCIENTIST)

    with pytest.raises(ApproverNotAllowedError, match="principal that requested this run"):
        life.sdk(DATA_SCIENTIST).approve(MODEL, version, reason="mine is fine")

    assert life.sdk(OPERATOR).get_version(MODEL, version).status is (VersionStatus.PENDING_APPROVAL)
    assert life.audit_actions()[-1] == "approval_refused"
    assert life.history(arn)[0] == "RUNNING"  # still waiting for someone else


def test_retrain_names_the_caller_as_the_runs_requester(life: Lifecycle) -> None:
    receipt = life.sdk(DATA_SCIENTIST).retrain(MODEL, reason="new labels")

    assert receipt["requested_by"] == DATA_SCIENTIST
    assert receipt["model_name"] == MODEL
    with pytest.raises(ModelNotFoundError):
        life.sdk(DATA_SCIENTIST).retrain("never-configured", reason="try")
    with pytest.raises(ReasonRequiredError):
        life.sdk(DATA_SCIENTIST).retrain(MODEL, reason=" ")


def test_the_configs_author_cannot_approve_a_run_nobody_asked_for(life: Lifecycle) -> None:
    _, version = _retrain(life)

    with pytest.raises(ApproverNotAllowedError, match="last changed this model's config"):
        life.sdk(OPERATOR).approve(MODEL, version, reason="ship it")


def test_an_approver_decides_from_the_cli_and_the_run_resumes(life: Lifecycle) -> None:
    arn, version = _retrain(life, requested_by=DATA_SCIENTIST)

    approved = life.sdk(APPROVER).approve(MODEL, version, reason="metrics reviewed")

    assert approved.status is VersionStatus.APPROVED
    status, states = life.wait(arn)
    assert status == "SUCCEEDED"
    assert "RequestApproval" in states
    decided = [e for e in life.sdk(OPERATOR).audit_entries(MODEL) if str(e.action) == "approved"]
    assert decided[-1].actor == APPROVER
