"""Model configs (validation, storage, audit) and the gate policy's verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.errors import ConfigError, ModelConfigNotFoundError
from flywheel.registry.models import ArtifactRef, ParityReport
from flywheel.sdk import Flywheel
from flywheel.workflows.config import GatePolicy, load_model_config, parse_model_config
from flywheel.workflows.gate import evaluate_gate
from flywheel.workflows.state import EvaluationResult, ModelScore
from tests.unit.workflows.conftest import World
from tests.workflow_support import MODEL, model_config

REPORT = ArtifactRef(uri="memory://report", sha256="0" * 64, size_bytes=1, format="json")
PARITY = ParityReport(
    rows=100, precision="float64", max_abs_diff=1e-12, p99_abs_diff=0, passed=True
)


def evaluation(
    candidate: dict[str, float],
    champion: dict[str, float] | None = None,
    *,
    gap: float | None = None,
    champion_gap: float | None = None,
) -> EvaluationResult:
    return EvaluationResult(
        candidate=ModelScore(metrics=candidate, fairness_gap=gap),
        champion=ModelScore(version=3, metrics=champion, fairness_gap=champion_gap)
        if champion is not None
        else None,
        holdout_rows=100,
        report=REPORT,
    )


def test_a_config_names_its_bad_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_model_config(model_config(gate={"metric": "rmse"}))
    assert caught.value.field == "gate.metric"
    assert caught.value.message.startswith("gate.metric: unknown metric 'rmse' for classification")

    with pytest.raises(ConfigError, match=r"^retraining\.triggers\.0: "):
        parse_model_config(model_config(retraining={"triggers": ["hourly"]}))


def test_a_config_file_takes_its_name_from_the_command(tmp_path: Path) -> None:
    path = tmp_path / "cancer.yaml"
    path.write_text(
        "training:\n  task: classification\n  dataset: {source: 'sklearn:breast_cancer'}\n"
        "  estimator: logistic_regression\ngate: {metric: roc_auc}\n"
    )
    assert load_model_config(path, name="cancer").training.model == "cancer"

    path.write_text(path.read_text() + "name: cancer\n")
    with pytest.raises(ConfigError, match="configures 'cancer', not 'other'"):
        load_model_config(path, name="other")


def test_configuring_a_model_is_stored_and_audited(world: World) -> None:
    platform = InMemoryPlatform(clock=world.clock)
    platform.audit, platform.records = world.audit, world.store  # the fixture's stores
    fw = Flywheel(platform, actor="ops@example.com")
    stored = fw.configure_model(
        MODEL,
        parse_model_config(model_config(gate={"min_improvement": 0.01})),
        reason="stricter gate",
    )

    assert stored.revision == 2  # the fixture configured revision 1
    assert fw.model_config(MODEL).config.gate.min_improvement == 0.01
    entry = list(world.audit.entries(MODEL))[-1]
    assert (str(entry.action), entry.actor, entry.reason) == (
        "model_configured",
        "ops@example.com",
        "stricter gate",
    )
    assert entry.details["config_sha256"] == stored.sha256
    with pytest.raises(ModelConfigNotFoundError):
        fw.model_config("unconfigured")


def test_a_run_for_an_unconfigured_model_fails_and_is_audited(world: World) -> None:
    execution = world.start_training("schedule", model="unconfigured")

    assert execution.error == "TrainingFailed"
    assert execution.state["error"]["Error"] == "ModelConfigNotFoundError"
    assert [str(e.action) for e in world.audit.entries("unconfigured")] == ["training_failed"]


def test_the_candidate_must_beat_the_champion_by_the_margin() -> None:
    policy = GatePolicy(metric="roc_auc", min_improvement=0.01)

    assert evaluate_gate(policy, evaluation({"roc_auc": 0.96}, {"roc_auc": 0.95}), PARITY).passed
    verdict = evaluate_gate(policy, evaluation({"roc_auc": 0.955}, {"roc_auc": 0.95}), PARITY)
    assert not verdict.passed
    assert verdict.reasons == [
        "champion: roc_auc 0.955 vs champion v3 0.95: improvement 0.005 < required 0.01"
    ]


def test_lower_is_better_metrics_are_compared_the_other_way() -> None:
    policy = GatePolicy(metric="log_loss", maximums={"log_loss": 0.3})

    assert evaluate_gate(policy, evaluation({"log_loss": 0.2}, {"log_loss": 0.25}), PARITY).passed
    verdict = evaluate_gate(policy, evaluation({"log_loss": 0.31}, {"log_loss": 0.25}), PARITY)
    assert [c.name for c in verdict.checks if not c.passed] == ["maximum.log_loss", "champion"]


def test_parity_failures_and_incomparable_champions_fail_the_gate() -> None:
    broken = PARITY.model_copy(update={"passed": False, "max_abs_diff": 0.2})
    verdict = evaluate_gate(GatePolicy(metric="accuracy"), evaluation({"accuracy": 0.99}), broken)
    assert verdict.reasons == [
        "parity: float64 max|Δ| 0.2: the ONNX model does not match scikit-learn"
    ]

    other = evaluation({"accuracy": 0.99})
    other = other.model_copy(
        update={"champion": ModelScore(version=3, comparable=False, reason="its classes differ")}
    )
    assert not evaluate_gate(GatePolicy(metric="accuracy"), other, PARITY).passed
    assert evaluate_gate(
        GatePolicy(metric="accuracy", on_incomparable_champion="ignore"), other, PARITY
    ).passed


def test_fairness_may_not_regress_beyond_the_allowance() -> None:
    policy = GatePolicy.model_validate(
        {
            "metric": "accuracy",
            "fairness": {"group_feature": "age", "threshold": 40, "max_gap_increase": 0.01},
        }
    )
    fine = evaluation({"accuracy": 0.95}, {"accuracy": 0.94}, gap=0.035, champion_gap=0.03)
    worse = evaluation({"accuracy": 0.95}, {"accuracy": 0.94}, gap=0.05, champion_gap=0.03)

    assert evaluate_gate(policy, fine, PARITY).passed
    verdict = evaluate_gate(policy, worse, PARITY)
    assert verdict.reasons == [
        "fairness: accuracy gap (age <= 40 vs above) 0.05 > champion's 0.03 + 0.01"
    ]


def test_a_configs_digest_does_not_depend_on_the_order_of_its_sets() -> None:
    one = parse_model_config(model_config(retraining={"triggers": ["drift", "manual"]}))
    two = parse_model_config(model_config(retraining={"triggers": ["manual", "drift"]}))

    assert one.sha256 == two.sha256
    assert one.model_dump(mode="json")["retraining"]["triggers"] == ["drift", "manual"]
