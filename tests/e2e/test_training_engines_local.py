"""The same model trained by each engine on the local runtime (ADR 85): the Lambda
function, an AWS Batch job and a SageMaker training job, each through the synthesized
workflow, ends as a registered candidate waiting for approval with the same lineage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import ModelNotFoundError, TrainingError
from flywheel.local.lifecycle import OPERATOR, InProcessDriver, Lifecycle
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.local.synth import templates
from flywheel.workflows.training import TrainingSteps

PROJECT = Path(__file__).with_name("engines_project") / "flywheel.yaml"
ENGINES = {"on-lambda": "lambda", "on-batch": "batch", "on-sagemaker": "sagemaker"}


@pytest.fixture
def runtime(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRuntime]:
    from moto import mock_aws

    monkeypatch.setenv("FLYWHEEL_PROJECT", str(PROJECT))
    template_set = templates("dev")
    with mock_aws(config=MOTO_CONFIG), LocalRuntime(template_set=template_set) as local:
        yield local


def _configure(lifecycle: Lifecycle) -> None:
    for name in ENGINES:
        lifecycle.sdk(OPERATOR).configure_model(
            name, PROJECT.parent / "models" / name / "model.yaml", reason="onboard"
        )


def _lineage(version: Any, name: str) -> str:
    """A version's lineage as JSON, its model's name and its run id replaced."""
    text = json.dumps(version.lineage.model_dump(mode="json"), sort_keys=True)
    return text.replace(version.lineage.training_run_id, "<run>").replace(name, "<model>")


def _train(runtime: LocalRuntime, name: str) -> tuple[Lifecycle, str]:
    lifecycle = Lifecycle(InProcessDriver(runtime), model=name)
    arn = runtime.start_execution("training", {"model_name": name, "trigger": {"reason": "manual"}})
    return lifecycle, arn


def test_each_engine_trains_the_same_candidate_waiting_for_approval(
    runtime: LocalRuntime,
) -> None:
    lifecycle = Lifecycle(InProcessDriver(runtime))
    _configure(lifecycle)
    sdk = lifecycle.sdk(OPERATOR)
    versions: dict[str, Any] = {}
    for name, engine in ENGINES.items():
        # When each model's run is started
        model, arn = _train(runtime, name)
        status, states = model.wait(arn, until="RequestApproval")
        # Then it reaches the approval request, through its engine's states
        assert status == "RUNNING", states
        trained = states[states.index("TrainingEngine") + 1 : states.index("Evaluate")]
        if engine == "lambda":
            assert trained == ["Train"]
        else:
            assert trained == [
                "PrepareTrainingJob", "TrainingJob", f"TrainJob-{name}", "CollectTrainingJob",
            ]  # fmt: skip
        assert states[-2:] == ["Register", "RequestApproval"]
        # And a candidate is registered, waiting for a person's approval
        assert model.approval(1).version == 1
        version = sdk.get_version(name, 1)
        assert str(version.status) == "pending_approval"
        versions[engine] = version

    # The two jobs ran the training image's `train` command with the job's input
    runs = {run.engine: run for run in runtime.training_jobs.runs}
    assert set(runs) == {"batch", "sagemaker"}
    for run in runs.values():
        assert run.succeeded, run.error
        assert run.environment["FLYWHEEL_RECORDS_CAPABILITY"] == "training-runs"
        assert '"sha256"' in run.environment["FLYWHEEL_TRAINING_JOB_INPUT"]

    # And every engine's candidate has the same lineage (but for its model's name and its
    # run: the snapshot it names), metrics and parity
    names = {engine: name for name, engine in ENGINES.items()}
    lineage = {e: _lineage(v, names[e]) for e, v in versions.items()}
    assert lineage["batch"] == lineage["lambda"] == lineage["sagemaker"]
    assert '"dataset_sha256": "' in lineage["lambda"]
    assert "training-sets/<model>/<run>/data.csv" in lineage["lambda"]
    for engine in ("batch", "sagemaker"):
        assert versions[engine].metrics == versions["lambda"].metrics
        assert versions[engine].parity == versions["lambda"].parity

    # And the same audit trail
    trails = {name: [str(entry.action) for entry in sdk.audit_entries(name)] for name in ENGINES}
    assert trails["on-batch"] == trails["on-lambda"] == trails["on-sagemaker"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("on-batch", "Essential container in task exited"),
        ("on-sagemaker", "AlgorithmError: TrainingError: the estimator diverged"),
    ],
)
def test_a_failed_job_fails_the_run_releases_the_lock_and_is_audited(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch, name: str, reason: str
) -> None:
    lifecycle = Lifecycle(InProcessDriver(runtime))
    _configure(lifecycle)

    def diverged(_self: TrainingSteps, _state: Any) -> Any:
        raise TrainingError("the estimator diverged")

    # Given a Train step that fails inside the job's container
    original = TrainingSteps.train
    monkeypatch.setattr(TrainingSteps, "train", diverged)
    # When the model's run is started
    model, arn = _train(runtime, name)
    status, states = model.wait(arn)
    # Then the job failed, the run failed and released its lock, and nothing was registered
    assert status == "FAILED", states
    assert states[-3:] == ["ReleaseRunLockAfterFailure", "RecordFailure", "TrainingFailed"]
    assert "CollectTrainingJob" not in states
    (run,) = runtime.training_jobs.runs
    assert run.error == "TrainingError: the estimator diverged"
    sdk = lifecycle.sdk(OPERATOR)
    with pytest.raises(ModelNotFoundError):
        sdk.get_model(name)  # no version was ever registered
    failures = [e for e in sdk.audit_entries(name) if str(e.action) == "training_failed"]
    assert len(failures) == 1
    assert reason in failures[0].reason
    # And the next run may start (the lock was released)
    monkeypatch.setattr(TrainingSteps, "train", original)
    model, arn = _train(runtime, name)
    status, states = model.wait(arn, until="RequestApproval")
    assert status == "RUNNING", states
