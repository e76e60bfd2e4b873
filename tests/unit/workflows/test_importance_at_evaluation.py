"""Evaluate compares the candidate's global importance with the champion's, on the same holdout,
and the comparison reaches the evaluation report, the approval and the approvers' event."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flywheel.registry.models import ArtifactRef, VersionDraft
from flywheel.workflows.importance import ImportanceComparison
from tests.unit.workflows.conftest import World
from tests.workflow_support import MODEL


def _champion(world: World, **training: object) -> None:
    """A first run, approved and promoted (``training`` overrides its training config)."""
    if training:
        world.configure(training=training)
    first = world.start_training("schedule")
    world.approve(first)
    world.registry.promote(MODEL, 1, actor="ops", reason="first champion")
    world.clock.advance(timedelta(hours=2))


def _comparison(evaluation: dict[str, object]) -> ImportanceComparison:
    return ImportanceComparison.model_validate(evaluation["importance"])


def test_a_champion_retrained_on_the_same_data_ranks_every_feature_the_same(
    world: World,
) -> None:
    # Given a champion, and a second run on the same data with the same seed
    _champion(world)
    second = world.start_training("drift")

    # Then the champion was re-explained on the candidate's holdout: the same rows as the
    # candidate's own importance, so the same model gives the same figures exactly
    evaluation = second.state["evaluation"]["Payload"]
    comparison = _comparison(evaluation)
    champion = world.registry.get_version(MODEL, 1)
    # (the registry keeps importance largest first, though stores keep maps unordered)
    assert list(champion.importance.values()) == sorted(champion.importance.values())[::-1]
    assert comparison.champion_source == "holdout"
    assert comparison.champion_version == 1
    assert comparison.rank_correlation == pytest.approx(1.0)
    assert comparison.ndcg == pytest.approx(1.0)
    assert comparison.common_features == 30
    assert [f.feature for f in comparison.features] == list(champion.importance)[:5]
    assert all(f.movement == "=" for f in comparison.features)
    assert [f.champion for f in comparison.features] == pytest.approx(
        list(champion.importance.values())[:5], rel=1e-12
    )
    # And the evaluation report in the artifact store holds the same comparison
    report = world.artifacts.get_json(ArtifactRef.model_validate(evaluation["report"]))
    assert report["importance"] == evaluation["importance"]


def test_the_approval_and_the_approvers_event_carry_the_comparison(world: World) -> None:
    _champion(world)
    world.start_training("drift")

    approval, _ = world.approvals.find_for_version(MODEL, 2) or (None, 0)
    assert approval is not None
    comparison = ImportanceComparison.model_validate(approval.summary["importance"])
    assert comparison.champion_version == 1
    detail_type, detail = world.events.events[-1]
    assert detail_type == "ApprovalRequested"
    line = detail["evaluation"]["importance"]
    assert line == comparison.summary()
    assert line.startswith("vs champion v1: rank correlation 1.00, NDCG@5 1.00; top 5: ")
    assert line.count("(=)") == 5


def test_a_first_model_has_nothing_to_compare(world: World) -> None:
    execution = world.start_training("schedule")

    assert execution.state["evaluation"]["Payload"]["importance"] is None
    _, detail = world.events.events[-1]
    assert detail["evaluation"]["importance"] == "no champion to compare with"


def test_a_champion_of_another_kind_is_re_explained_on_the_candidates_holdout(
    world: World,
) -> None:
    # Given a random forest champion (tree SHAP in probability space) trained on another split
    _champion(
        world,
        estimator="random_forest",
        hyperparameters={"n_estimators": 20, "max_depth": 4},
        test_size=0.4,
    )
    # When a logistic regression candidate (linear SHAP in log-odds) is evaluated
    world.configure()
    second = world.start_training("manual")

    comparison = _comparison(second.state["evaluation"]["Payload"])
    registered = world.registry.get_version(MODEL, 1).importance
    # Then the champion's figures are its SHAP on this holdout, not the registered ones
    assert comparison.champion_source == "holdout"
    shown = {f.feature: f.champion for f in comparison.features}
    assert any(shown[name] != pytest.approx(registered[name], rel=1e-6) for name in shown)
    # and only ranks are compared: both tops are listed, each with its rank in the other
    candidate = world.registry.get_version(MODEL, 2).importance
    assert [f.feature for f in comparison.features[:5]] == list(candidate)[:5]
    assert all(f.champion_rank is not None for f in comparison.features)
    assert sum(f.champion_rank <= 5 for f in comparison.features if f.champion_rank) == 5
    assert comparison.rank_correlation is not None
    assert -1.0 <= comparison.rank_correlation < 1.0
    assert comparison.ndcg is not None
    assert 0.0 < comparison.ndcg <= 1.0


def test_a_champion_without_an_explainer_is_compared_as_registered(world: World) -> None:
    # Given a champion registered with its global importance but no explainer artifact
    first = world.start_training("schedule")
    world.approve(first)
    trained = world.registry.get_version(MODEL, 1)
    draft = VersionDraft.model_validate(trained.model_dump(include=set(VersionDraft.model_fields)))
    copy = world.registry.register(draft.model_copy(update={"explainer": None}), actor="ops")
    world.registry.request_approval(MODEL, copy.version, actor="ops")
    world.registry.approve(MODEL, copy.version, actor="lead", reason="copy for the test")
    world.registry.promote(MODEL, copy.version, actor="ops", reason="champion without explainer")
    world.clock.advance(timedelta(hours=2))

    # When the next run evaluates its candidate
    second = world.start_training("drift")

    # Then the champion's registered figures stand in (same data and seed: the same ranks)
    comparison = _comparison(second.state["evaluation"]["Payload"])
    assert comparison.champion_version == copy.version
    assert comparison.champion_source == "registered"
    assert comparison.rank_correlation == pytest.approx(1.0)
