"""Per-feature EMF documents, and the drift monitor's report with the protected attribute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flywheel.adapters.emf_monitoring import emf_documents, feature_drift_documents, write_documents
from flywheel.drift.profile import build_profile, text_columns, text_vocabulary
from flywheel.drift.scorer import score_window
from flywheel.serving.capture import capture_key, encode_rows
from tests.unit.monitoring.conftest import MODEL, Monitoring


def test_more_than_100_metrics_are_split_into_documents_of_at_most_100() -> None:
    metrics = {f"M{i}": (float(i), "Count") for i in range(230)}

    documents = emf_documents("NS", {"Model": "m", "Feature": "x"}, metrics)

    sizes = [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents]
    assert sizes == [100, 100, 30]
    assert all(d["Feature"] == "x" for d in documents)
    assert sum(len([k for k in d if k[1:].isdigit()]) for d in documents) == 230
    with pytest.raises(ValueError, match="at most 30 dimensions"):
        emf_documents("NS", {f"D{i}": "v" for i in range(31)}, metrics)


def test_one_document_per_scored_feature_and_none_for_unscored_ones(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    reference = build_profile(rng.normal(size=(2000, 3)), ["a", "b", "c"])
    window = {"a": rng.normal(1.0, size=500), "b": rng.normal(size=500), "c": np.full(500, np.nan)}
    result = score_window(reference, window)

    documents = feature_drift_documents("NS", MODEL, 3, result.features)

    assert [(d["Feature"], d["FeatureDrifted"]) for d in documents] == [("a", 1), ("b", 0)]
    assert documents[0]["Version"] == "3"
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    assert write_documents(documents) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["Feature"] for line in lines] == ["a", "b"]
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert write_documents(documents) == 0


def test_the_drift_report_shows_selection_rates_of_the_protected_attribute(
    world: Monitoring,
) -> None:
    # Given a champion trained on ages ~ N(40, 10) and a protected attribute on age
    rng = np.random.default_rng(0)
    training = np.column_stack([rng.normal(40, 10, 2000), rng.normal(1, 0.1, 2000)])
    world.champion_with_profile(build_profile(training, ["age", "income"]))
    world.configure(bias={"attribute": "age", "threshold": 40, "favorable": "1"})
    # And traffic where the young get "1" and the old "0"
    ages = list(rng.normal(40, 10, 200))
    world.serve(["1" if a <= 40 else "0" for a in ages], ages=ages)

    run = world.drift_monitor().run(MODEL)

    page = world.artifacts.text(run.report_html)
    assert 'id="bias"' in page
    assert "Bias: age (favorable: 1)" in page
    assert "demographic parity difference 1.000" in page


@pytest.mark.parametrize(
    ("served", "moved"),
    [(["1"] * 150 + ["0"] * 150, False), (["1"] * 300, True)],
    ids=["like-the-holdout", "all-positive"],
)
def test_the_drift_report_judges_the_champions_scores_against_its_holdouts(
    world: Monitoring, served: list[str], moved: bool
) -> None:
    # Given a champion whose holdout scored half its rows 0.2 and half 0.8
    rng = np.random.default_rng(3)
    training = np.column_stack([rng.normal(40, 10, 2000), rng.normal(1, 0.1, 2000)])
    profile = build_profile(training, ["age", "income"], predictions=[0.2] * 100 + [0.8] * 100)
    world.champion_with_profile(profile)
    # And traffic scored 0.8 ("1") or 0.2 ("0"), features as in training
    world.serve(served, ages=list(rng.normal(40, 10, len(served))))

    run = world.drift_monitor().run(MODEL)

    assert run.result is not None
    predictions = run.result.prediction_drift
    assert predictions is not None
    assert (predictions.window_rows, predictions.holdout_rows) == (300, 200)
    assert predictions.drifted is moved
    assert (predictions.psi > 0.2) is moved
    stored = world.artifacts.json(run.report_json)
    assert stored["prediction_drift"]["drifted"] is moved
    page = world.artifacts.text(run.report_html)
    assert 'id="predictions"' in page
    assert ("moved: the window's scores" in page) is moved


def test_a_profile_without_holdout_scores_reports_no_prediction_drift(world: Monitoring) -> None:
    rng = np.random.default_rng(4)
    training = np.column_stack([rng.normal(40, 10, 500), rng.normal(1, 0.1, 500)])
    world.champion_with_profile(build_profile(training, ["age", "income"]))
    world.serve(["1"] * 100)

    run = world.drift_monitor().run(MODEL)

    assert run.result is not None
    assert run.result.prediction_drift is None
    assert 'id="predictions"' not in world.artifacts.text(run.report_html)


def _capture(world: Monitoring, features: list[dict[str, object]], request: int) -> None:
    """One capture file: one request whose records are ``features``."""
    when = world.clock.now().timestamp() + request  # distinct keys, same hour
    rows = [
        {
            "request_id": f"req-{request}", "row": i, "timestamp": "", "model": MODEL,
            "version": 1, "variant": "champion", "features": f, "prediction": "1",
            "probabilities": {"0": 0.3, "1": 0.7}, "entity_id": None,
        }
        for i, f in enumerate(features)
    ]  # fmt: skip
    world.capture.put(capture_key(MODEL, 1, when), encode_rows(rows))


def test_boolean_features_count_as_the_model_saw_them_not_as_missing(world: Monitoring) -> None:
    # Given a model trained on a 0/1 feature (a bool in its input schema)
    rng = np.random.default_rng(7)
    training = np.column_stack([rng.integers(0, 2, 2000), rng.normal(40, 10, 2000)])
    profile = build_profile(training, ["member", "age"])
    world.champion_with_profile(profile)
    # And traffic sending it as JSON true/false, in the same proportions
    flags = rng.integers(0, 2, 400).astype(bool)
    _capture(world, [{"member": bool(b), "age": 40.0 + i % 20} for i, b in enumerate(flags)], 0)

    run = world.drift_monitor().run(MODEL)

    assert run.result is not None
    member = run.result.feature("member")
    assert member.current_missing_rate == 0.0
    assert member.current_rows == 400
    assert member.current_mean == pytest.approx(flags.mean())
    assert not member.drifted


def test_a_window_read_in_small_batches_scores_like_one_read_whole(world: Monitoring) -> None:
    # Given 12 capture files of 25 rows, ages moved up by half a standard deviation
    rng = np.random.default_rng(8)
    training = np.column_stack([rng.normal(40, 10, 3000), rng.normal(1, 0.1, 3000)])
    profile = build_profile(training, ["age", "income"], predictions=[0.3] * 100 + [0.7] * 100)
    world.champion_with_profile(profile)
    for request in range(12):
        ages = rng.normal(45, 10, 25)
        _capture(world, [{"age": float(a), "income": 1.0} for a in ages], request)

    whole = world.drift_monitor().run(MODEL)
    monitor = world.drift_monitor()
    monitor.batch_rows = 40  # at most 40 + 24 rows decoded at a time
    batched = monitor.run(MODEL)

    assert whole.result is not None
    assert batched.result is not None
    assert batched.rows == whole.rows == 300
    assert batched.result.verdict == whole.result.verdict
    assert batched.result.prediction_drift == whole.result.prediction_drift
    # Counts are exact; sums differ only by float rounding of the batches' order.
    for mine, theirs in zip(batched.result.features, whole.result.features, strict=True):
        assert (mine.feature, mine.method, mine.drifted) == (
            theirs.feature,
            theirs.method,
            theirs.drifted,
        )
        measured = {k: v for k, v in theirs.statistics.model_dump().items() if v is not None}
        assert mine.statistics.model_dump(exclude_none=True) == pytest.approx(measured, rel=1e-9)
        assert mine.current_mean == pytest.approx(theirs.current_mean, rel=1e-12)


def test_categorical_and_text_features_of_a_typed_model_are_scored(world: Monitoring) -> None:
    # Given a model trained on a plan category, a support note (text) and an age
    rng = np.random.default_rng(9)
    plans = rng.choice(["basic", "pro", "team"], 3000, p=[0.6, 0.3, 0.1]).astype(object)
    notes = list(rng.choice(["love the product", "billing question", "great support"], 3000))
    vocabulary = text_vocabulary(notes)
    text = text_columns("note", notes, vocabulary)
    training = np.empty((3000, 4), dtype=object)
    training[:, 0] = plans
    training[:, 1] = rng.normal(40, 10, 3000)
    training[:, 2] = text["note:length"]
    training[:, 3] = text["note:known_words"]
    profile = build_profile(
        training, ["plan", "age", "note:length", "note:known_words"], ["plan"]
    ).model_copy(update={"text": {"note": vocabulary}})
    world.champion_with_profile(profile)
    # And traffic that moved to "team", brings a plan the model never saw, and words it
    # never read (the same lengths)
    served = rng.choice(["basic", "team", "gold"], 500, p=[0.3, 0.5, 0.2])
    said = rng.choice(["love the product", "refund the invoice"], 500)
    _capture(
        world,
        [{"plan": str(p), "age": 40.0, "note": str(n)} for p, n in zip(served, said, strict=True)],
        0,
    )

    run = world.drift_monitor().run(MODEL)

    assert run.result is not None
    plan = run.result.feature("plan")
    assert plan.kind == "categorical"
    assert plan.drifted
    assert plan.current_rows == 500
    assert plan.current_missing_rate == 0.0  # strings counted as categories, not as gaps
    assert "gold" in plan.new_categories
    known = run.result.feature("note:known_words")
    assert known.drifted
    assert known.current_mean == pytest.approx(0.5 * 1 + 0.5 * (1 / 3), abs=0.05)  # "the" is known
    assert run.result.feature("note:length").current_rows == 500
