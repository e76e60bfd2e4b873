"""The performance monitor: predictions joined with delayed labels, verdicts, reports, events."""

from __future__ import annotations

from datetime import timedelta

from flywheel.monitoring.performance_monitor import PERFORMANCE_DEGRADED
from flywheel.serving.capture import encode_rows
from tests.unit.monitoring.conftest import MODEL, REGRESSOR, START, Monitoring


def label(world: Monitoring, ids: list[tuple[str, int]], value: str) -> None:
    for start in range(0, len(ids), 100):
        world.feedback(
            labels=[
                {"request_id": r, "row": i, "label": value} for r, i in ids[start : start + 100]
            ]
        )


def test_wrong_predictions_degrade_the_model_and_publish_the_evidence(world: Monitoring) -> None:
    # Given a champion (holdout accuracy 0.91) whose 150 predictions all turn out wrong
    world.champion()
    world.configure(performance={"metric": "accuracy", "max_relative_drop": 0.1})
    ids = world.serve(["1"] * 150)
    world.later(2)
    label(world, ids, "0")

    # When the monitor runs
    run = world.monitor().run(MODEL)

    # Then accuracy 0 on full coverage is reported as degraded, with a report and an event
    assert (run.status, run.verdict, run.degraded) == ("scored", "degraded", True)
    assert (run.predictions, run.labelled, run.label_coverage) == (150, 150, 1.0)
    assert (run.value, run.baseline) == (0.0, 0.91)
    [(kind, detail)] = world.events.events
    assert kind == PERFORMANCE_DEGRADED
    assert detail["model_name"] == MODEL
    assert detail["version"] == 1
    assert (detail["metric"], detail["value"], detail["baseline"]) == ("accuracy", 0.0, 0.91)
    assert detail["relative_drop"] == 1.0
    assert detail["labelled"] == 150
    assert "100.0% worse than the baseline" in detail["reasons"][0]
    assert detail["report"] == run.report_html
    stored = world.artifacts.json(run.report_json)
    assert stored["performance"]["verdict"] == "degraded"
    page = world.artifacts.text(run.report_html)
    assert 'id="performance"' in page
    assert "150 labelled of 150 predictions" in page


def test_right_predictions_are_ok_and_publish_nothing(world: Monitoring) -> None:
    world.champion()
    ids = world.serve(["1"] * 120)
    label(world, ids, "1")

    run = world.monitor().run(MODEL)

    assert (run.verdict, run.degraded, run.value) == ("ok", False, 1.0)
    assert world.events.events == []


def test_too_few_labels_is_no_verdict_yet(world: Monitoring) -> None:
    world.champion()
    ids = world.serve(["1"] * 150)
    label(world, ids[:40], "0")

    run = world.monitor().run(MODEL)

    assert run.verdict == "insufficient_labels"
    assert (run.labelled, round(run.label_coverage, 3)) == (40, 0.267)
    assert world.events.events == []


def test_labels_join_by_request_id_and_row(world: Monitoring) -> None:
    world.champion()
    first = world.serve(["1", "0"], request_id="a")
    world.serve(["1", "0"], request_id="b")
    world.feedback(
        labels=[
            {"request_id": "a", "row": 1, "label": "0"},  # right
            {"request_id": "b", "row": 0, "label": "0"},  # wrong
            {"request_id": "zzz", "row": 0, "label": "1"},  # no such prediction
        ]
    )

    run = world.monitor().run(MODEL)

    assert first == [("a", 0), ("a", 1)]
    assert (run.predictions, run.labelled, run.metrics["accuracy"]) == (4, 2, 0.5)


def test_predictions_older_than_the_window_are_left_out(world: Monitoring) -> None:
    world.champion()
    world.configure(window_hours=6)
    old = world.serve(["1"] * 50, request_id="old", at=START - timedelta(hours=8))
    new = world.serve(["1"] * 50, request_id="new")
    label(world, old + new, "1")

    run = world.monitor().run(MODEL)

    assert (run.predictions, run.labelled) == (50, 50)
    assert run.window_start == (START - timedelta(hours=6)).isoformat()


def test_group_metrics_of_the_protected_attribute_are_in_the_report(world: Monitoring) -> None:
    # Given younger customers always get the favorable class "1", older ones never
    world.champion()
    world.configure(bias={"attribute": "age", "threshold": 40, "favorable": "1"})
    ages = [25.0] * 60 + [55.0] * 60
    ids = world.serve(["1"] * 60 + ["0"] * 60, ages=ages)
    label(world, ids, "1")

    run = world.monitor().run(MODEL)

    assert run.bias is not None
    groups = {g.group: g.selection_rate for g in run.bias.groups}
    assert groups == {"<= 40": 1.0, "> 40": 0.0}
    assert run.bias.demographic_parity_difference == 1.0
    assert run.bias.equal_opportunity_difference == 1.0  # labels exist: TPR 1 vs 0
    assert not run.bias.passed
    page = world.artifacts.text(run.report_html)
    assert "Bias: age" in page
    assert "fails the bias policy" in page
    # and the violation is announced, naming the gaps and the report
    assert run.bias_violation
    detail_type, detail = world.events.events[-1]
    assert detail_type == "BiasViolation"
    assert detail["model_name"] == MODEL
    assert detail["attribute"] == "age"
    assert detail["violations"] == list(run.bias.violations)
    assert detail["report"] == run.report_html


def test_a_fair_window_announces_no_bias_violation(world: Monitoring) -> None:
    world.champion()
    world.configure(bias={"attribute": "age", "threshold": 40, "favorable": "1"})
    ages = [25.0] * 60 + [55.0] * 60
    ids = world.serve(["1", "0"] * 60, ages=ages)
    label(world, ids, "1")

    run = world.monitor().run(MODEL)

    assert run.bias is not None
    assert run.bias.passed
    assert not run.bias_violation
    assert "BiasViolation" not in [t for t, _ in world.events.events]


def test_models_without_a_champion_are_skipped(world: Monitoring) -> None:
    assert world.monitor().run(MODEL).reason == "not registered"


def test_a_regressor_is_measured_on_numeric_labels_only(world: Monitoring) -> None:
    # Given a regressor (holdout RMSE 2.0) whose stored labels include a stray class name
    world.champion(**REGRESSOR)
    world.serve(["10.0"] * 101, request_id="r")
    world.labels.put(
        "labels/model=churn/date=2026-03-01/hour=12/old.jsonl.gz",
        encode_rows([{"request_id": "r", "row": 0, "label": "yes"}]),
    )
    world.feedback(labels=[{"request_id": "r", "row": i, "label": 14.0} for i in range(1, 101)])

    run = world.monitor().run(MODEL)

    assert (run.labelled, run.metric, run.value) == (100, "rmse", 4.0)
    assert run.degraded  # RMSE doubled: 100% worse than the holdout, 10% allowed
