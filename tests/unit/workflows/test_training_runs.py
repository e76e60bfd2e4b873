"""The training workflow records each training as a run (its search's trials too)."""

from __future__ import annotations

from flywheel.runs.models import RunKind
from tests.unit.workflows.conftest import START, World
from tests.workflow_support import MODEL

SEARCH = {"method": "grid", "space": {"C": [0.1, 1.0]}, "folds": 3}


def test_a_workflow_run_is_recorded_with_its_trials_and_linked_to_its_version(
    world: World,
) -> None:
    world.configure(training={"search": SEARCH})

    execution = world.start_training("schedule")

    runs = world.training.run_log.runs(MODEL, trials=True)
    run, *trials = runs
    assert run.run_id == execution.state["lock"]["Payload"]["run_id"]
    assert (run.kind, run.trigger, run.version, run.started_at) == (
        RunKind.TRAINING,
        "schedule",
        1,
        START,
    )
    assert run.actor == world.registry.get_version(MODEL, 1).created_by
    assert run.metrics["accuracy"] == world.registry.get_version(MODEL, 1).metrics["accuracy"]
    assert [t.parameters["C"] for t in trials] == [0.1, 1.0]
    assert all(t.kind is RunKind.TRIAL and t.parent == run.run_id for t in trials)
    assert run.search is not None
    assert run.parameters["C"] == run.search["best_params"]["C"]  # type: ignore[index]
    assert world.registry.get_version(MODEL, 1).lineage.search == run.search


def test_a_candidate_the_gate_rejects_is_still_a_run_without_a_version(world: World) -> None:
    world.configure(gate={"minimums": {"accuracy": 0.999}})

    world.start_training("schedule")

    (run,) = world.training.run_log.runs(MODEL)
    assert run.version is None
    assert run.metrics["accuracy"] < 0.999
    assert "gate_rejected" in world.actions()
