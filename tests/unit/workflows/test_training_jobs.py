"""The Train step as a container job (ADR 85): PrepareTrainingJob stores the state, the job
trains on it and stores its result, CollectTrainingJob returns that result as Train would."""

from __future__ import annotations

from typing import Any

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.errors import ArtifactIntegrityError, TrainingError
from flywheel.workflows.config import parse_model_config
from flywheel.workflows.state import TrainingState
from flywheel.workflows.training import TrainingSteps

RUN = {
    "execution_id": "arn:aws:states:eu-west-1:123456789012:execution:training:run-1",
    "execution_name": "run-1",
    "started_at": "2026-01-01T00:00:00Z",
    "state_machine": "training",
}


def _state(steps: TrainingSteps, name: str = "iris") -> dict[str, Any]:
    """A run's state up to BuildTrainingSet, as the workflow passes it on."""
    steps.configs.put(
        parse_model_config({
            "name": name, "gate": {"metric": "accuracy"},
            "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
                         "estimator": "logistic_regression", "seed": 3},
        }),
        actor="ops",
    )  # fmt: skip
    state: dict[str, Any] = {"model_name": name, "trigger": {"reason": "manual"}, "run": RUN}
    for key, step in (
        ("lock", steps.acquire_run_lock),
        ("validation", steps.validate_data),
        ("training_set", steps.build_training_set),
    ):
        state[key] = {"Payload": step(TrainingState.model_validate(state)).model_dump(mode="json")}
    return state


@pytest.fixture
def steps() -> TrainingSteps:
    return InMemoryPlatform().training_steps()


def test_a_job_trains_what_the_train_step_would_and_collect_returns_it(
    steps: TrainingSteps,
) -> None:
    state = _state(steps)
    # When the job is prepared, run (as the container does) and collected
    prepared = steps.prepare_training_job(TrainingState.model_validate(state))
    ran = steps.run_training_job(prepared.input)
    state["training_job"] = {"Payload": prepared.model_dump(mode="json")}
    collected = steps.collect_training_job(TrainingState.model_validate(state))

    # Then the workflow gets the job's result, under the run's own keys
    assert collected == ran
    assert collected.run_id == "run-1"
    assert prepared.result_key == "training-jobs/iris/run-1/result.json"
    assert prepared.job_name.startswith("iris-")
    assert len(prepared.job_name) == len("iris-") + 16
    # And it is what the Lambda Train step trains on the same state
    direct = steps.train(TrainingState.model_validate(state))
    assert direct.metrics == ran.metrics
    assert direct.artifact.sha256 == ran.artifact.sha256


def test_collect_refuses_a_run_whose_job_left_no_result(steps: TrainingSteps) -> None:
    state = _state(steps)
    prepared = steps.prepare_training_job(TrainingState.model_validate(state))
    state["training_job"] = {"Payload": prepared.model_dump(mode="json")}
    with pytest.raises(TrainingError) as raised:
        steps.collect_training_job(TrainingState.model_validate(state))
    assert raised.value.field == "training_job"
    assert "finished without a result" in str(raised.value)


def test_collect_refuses_another_runs_result(steps: TrainingSteps) -> None:
    state = _state(steps)
    prepared = steps.prepare_training_job(TrainingState.model_validate(state))
    result = steps.run_training_job(prepared.input)
    # Given the result key holds a result of another run
    steps._artifacts.put_json(
        prepared.result_key, result.model_copy(update={"run_id": "run-0"}).model_dump(mode="json")
    )
    state["training_job"] = {"Payload": prepared.model_dump(mode="json")}
    with pytest.raises(TrainingError, match="result of run run-0, not run-1"):
        steps.collect_training_job(TrainingState.model_validate(state))


def test_a_job_refuses_an_input_that_is_not_the_prepared_one(steps: TrainingSteps) -> None:
    state = _state(steps)
    prepared = steps.prepare_training_job(TrainingState.model_validate(state))
    forged = prepared.input.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ArtifactIntegrityError):
        steps.run_training_job(forged)


def test_prepare_needs_the_training_set_snapshot(steps: TrainingSteps) -> None:
    state = _state(steps)
    del state["training_set"]
    with pytest.raises(KeyError, match="training_set"):
        steps.prepare_training_job(TrainingState.model_validate(state))
