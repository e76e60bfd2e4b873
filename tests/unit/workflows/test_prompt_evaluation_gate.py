"""The promotion workflow's evaluation gate of prompt versions (the synthesized definition,
in memory): a candidate is answered next to its champion on its evaluation set, judged,
and rejected before its canary or let through, every decision recorded and audited; an
outage fails the step visibly and never passes a candidate."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from flywheel.composition import InMemoryPlatform
from flywheel.errors import ProviderError
from flywheel.llm.budgets import Scope
from flywheel.llm.prompts import Provider
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.settings import CanaryStep, Settings
from flywheel.workflows.ports import AliasRouting
from flywheel.workflows.prompt_gate import read_evaluation
from flywheel.workflows.state import PromotionState
from tests import asl_walker
from tests.evaluator_support import Unavailable, fake_evaluators
from tests.factories import prompt_spec
from tests.workflow_support import (
    PROMOTION_MACHINE,
    as_handlers,
    promotion_input,
    promotion_machine,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"
NAME = "support-answer"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
ALARMS = [f"flywheel-dev-{NAME}-canary-errorrate"]
EVALUATED = ["Initialize", "EvaluateCandidate", "CandidatePassed"]
RELEASED = [
    *EVALUATED, "PublishVersion", "ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy",
    "LastStep", "PromoteAll", "Promoted",
]  # fmt: skip
REJECTED = [*EVALUATED, "CandidateRejected"]
#: A third version: grounded like version 1, in other words.
GROUNDED_V3 = """\
Question: {{ question }}
Using only what the passages below say, answer briefly.

{{ passages }}
"""


@dataclass
class Stage:
    platform: InMemoryPlatform
    ana: Flywheel
    bo: Flywheel

    def approve_and_promote(self, version: int) -> asl_walker.Execution:
        self.bo.approve_prompt(NAME, version, reason="reviewed")
        _, detail = self.platform.published.events[-1]
        return asl_walker.start(
            promotion_machine(),
            self.handlers(),
            promotion_input(detail),
            state_machine=PROMOTION_MACHINE,
        )

    def handlers(self) -> dict[str, Any]:
        steps = self.platform.promotion_steps()
        gate = self.platform.evaluation_gate()

        def state(method: Any) -> Any:
            return lambda event: method(PromotionState.model_validate(event))

        return as_handlers(
            {
                "evaluate_candidate": state(gate.evaluate_candidate),
                "publish_version": state(steps.publish_version),
                "shift_alias": state(steps.shift_alias),
                "check_canary": state(steps.check_canary),
                "promote_all": state(steps.promote_all),
                "rollback": state(steps.rollback),
                "record_failure": self.platform.workflow_failures().record,
            }
        )

    def actions(self) -> list[str]:
        return [str(e.action) for e in self.bo.audit_entries(NAME)]

    def evaluation_calls(self) -> dict[str, int]:
        """Calls counted as variant ``evaluation``, by version, today."""
        today = self.platform.clock.now().astimezone(UTC).date()
        rows = self.platform.usage_store.usage_rows(Scope.PROMPT, NAME, today, today)
        return {r.sk.split("#")[2]: r.calls for r in rows if r.sk.endswith("#evaluation")}


def stage(gates: dict[str, Any] | None = None, **settings: Any) -> Stage:
    platform = InMemoryPlatform(
        Settings(
            backend="local",
            canary_steps={NAME: (CanaryStep(weight=0.2, bake_minutes=5),)},
            canary_alarms={NAME: ALARMS},
            prompt_gates={NAME: gates} if gates is not None else {},
            evaluation_concurrency=2,
            **settings,
        )
    )
    return Stage(platform, Flywheel(platform, actor=ANA), Flywheel(platform, actor=BO))


@pytest.fixture(autouse=True)
def evaluators(monkeypatch: pytest.MonkeyPatch) -> None:
    """The composition root builds the test evaluators (the embedded ones are tested on
    their own)."""
    monkeypatch.setattr(
        InMemoryPlatform,
        "prompt_evaluators",
        lambda _self, thresholds=None: fake_evaluators(thresholds),
    )


@pytest.fixture
def champion() -> Stage:
    """Version 1 (grounded) evaluated, canaried and promoted; version 2 (ungrounded)
    registered."""
    world = stage()
    world.ana.register_prompt(EXAMPLES / "support-answer.v1.yaml", reason="first")
    first = world.approve_and_promote(1)
    assert (first.status, first.visited) == ("SUCCEEDED", RELEASED), first.state.get("error")
    world.ana.register_prompt(EXAMPLES / "support-answer.v2.yaml", reason="friendlier")
    return world


def test_the_first_version_is_evaluated_then_rolled_out(champion: Stage) -> None:
    evaluation = champion.bo.prompt_evaluation(NAME, 1)

    assert evaluation is not None
    assert evaluation.outcome == "passed"
    assert evaluation.reason == (
        "evaluation gate passed on 8 items: no limit declared (llm.prompts.<name>.gate); "
        "no champion to compare with"
    )
    assert champion.actions()[2:5] == ["approved", "evaluation_passed", "canary_started"]
    entry = champion.bo.audit_entries(NAME)[3]
    assert entry.actor.startswith(f"workflow:{PROMOTION_MACHINE}/")
    assert entry.details["scores"]["groundedness"] == 1.0
    assert entry.details["set_sha256"] == champion.bo.prompt(NAME, 1).spec.evaluation.sha256  # type: ignore[union-attr]


def test_an_ungrounded_candidate_is_rejected_before_its_canary_and_audited(
    champion: Stage,
) -> None:
    execution = champion.approve_and_promote(2)

    assert (execution.status, execution.error, execution.visited) == (
        "FAILED", "CandidateRejected", REJECTED,
    )  # fmt: skip
    result = execution.state["evaluation"]["Payload"]
    assert (result["passed"], result["outcome"], result["champion"]) == (False, "rejected", 1)
    assert result["reasons"][0].startswith(
        "groundedness: worse than champion v1 by more than 0.05 (difference -0.690"
    )
    # The version is rejected with the reasons, in one audited transaction ...
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.REJECTED
    rejected = champion.bo.audit_entries(NAME)[-1]
    assert (str(rejected.action), rejected.version) == ("evaluation_rejected", 2)
    assert rejected.reason is not None
    assert rejected.reason.startswith("evaluation gate rejected version 2: groundedness: worse")
    assert rejected.details["transitions"] == [{"version": 2, "from": "approved", "to": "rejected"}]
    assert rejected.details["champion"] == 1
    # ... nothing was routed to it: the champion answers alone
    model = champion.bo.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    assert champion.platform.promotion_serving.routing(NAME) == AliasRouting(primary="1")
    # ... the report is stored with the version: both sides, intervals, worst answers
    report = champion.bo.prompt_evaluation(NAME, 2)
    assert report is not None
    assert report.report is not None
    grounded = next(s for s in report.report.evaluators if s.evaluator == "groundedness")
    assert (grounded.candidate.mean, grounded.champion.mean) == (0.310417, 1.0)  # type: ignore[union-attr]
    assert grounded.worst[0].item == "refund-time"
    assert (
        grounded.worst[0].answer == "Answer the customer's question: How long does a refund take?"
    )
    assert grounded.worst[0].evidence[0].note == "not in the context"
    # Both versions answered every item, counted apart from real traffic
    assert champion.evaluation_calls() == {"V1": 16, "V2": 8}
    assert champion.bo.verify(NAME).ok


def test_a_grounded_candidate_passes_its_gate_and_proceeds_to_its_canary(champion: Stage) -> None:
    spec = champion.bo.prompt(NAME, 1).spec
    third = spec.model_copy(
        update={
            "template": GROUNDED_V3,
            "evaluation": spec.evaluation.model_copy(  # type: ignore[union-attr]
                update={"set": str(EXAMPLES / "support-answer.eval.jsonl"), "sha256": None,
                        "size_bytes": None, "items": None}
            ),
        }
    )  # fmt: skip
    version = champion.ana.register_prompt(third, reason="shorter").version.version

    execution = champion.approve_and_promote(version)

    assert (execution.status, execution.visited) == ("SUCCEEDED", RELEASED)
    result = execution.state["evaluation"]["Payload"]
    assert result["outcome"] == "passed"
    assert result["reason"].endswith("checks passed; champion v1")
    assert champion.actions()[-4:] == [
        "approved", "evaluation_passed", "canary_started", "promoted",
    ]  # fmt: skip
    assert champion.bo.get_model(NAME).champion == version


def test_an_evaluator_outage_is_retried_then_audited_and_never_passes(champion: Stage) -> None:
    unavailable = Unavailable()
    champion.platform.prompt_evaluators = lambda thresholds=None: {  # type: ignore[method-assign]
        **fake_evaluators(thresholds), "groundedness": unavailable,
    }  # fmt: skip

    execution = champion.approve_and_promote(2)

    assert execution.status == "FAILED"
    assert execution.visited == [*EVALUATED[:2], "RecordFailure", "PromotionFailed"]
    # The step ran three times (two retries of EvaluationUnavailableError) before failing
    assert [s for s, _ in execution.invocations].count("EvaluateCandidate") == 3
    assert execution.state["error"]["Error"] == "EvaluationUnavailableError"
    failed = champion.bo.audit_entries(NAME)[-1]
    assert (str(failed.action), failed.version) == ("evaluation_failed", 2)
    assert failed.reason is not None
    assert failed.reason.startswith(
        "EvaluateCandidate failed: EvaluationUnavailableError: evaluator groundedness could "
        "not answer: guardrail service throttled"
    )
    assert failed.details["failed_step"] == "EvaluateCandidate"
    # The version stays approved, never canaried; the champion is untouched
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.APPROVED
    assert champion.bo.get_model(NAME).challenger is None
    assert champion.bo.prompt_evaluation(NAME, 2) is None
    assert champion.bo.verify(NAME).ok


def test_a_provider_that_refuses_the_call_fails_the_step_without_retries(champion: Stage) -> None:
    champion.platform.llm_stand_in.inject("ValidationException")

    execution = champion.approve_and_promote(2)

    assert execution.visited[-2:] == ["RecordFailure", "PromotionFailed"]
    assert [s for s, _ in execution.invocations].count("EvaluateCandidate") == 1
    assert execution.state["error"]["Error"] == "ProviderError"
    assert champion.actions()[-1] == "evaluation_failed"
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.APPROVED


def test_a_budget_with_no_room_fails_the_evaluation(champion: Stage) -> None:
    champion.platform.settings = champion.platform.settings.model_copy(
        update={"llm_policy": {"prompts": {NAME: {"budget": {"day": "0.0000001"}}}}}
    )

    execution = champion.approve_and_promote(2)

    assert execution.state["error"]["Error"] == "BudgetExceededError"
    assert champion.actions()[-1] == "evaluation_failed"
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.APPROVED


def test_without_an_evaluation_set_the_gate_is_skipped_and_says_why() -> None:
    world = stage()
    world.ana.register_prompt(prompt_spec(NAME), reason="no set yet")

    execution = world.approve_and_promote(1)

    assert (execution.status, execution.visited) == ("SUCCEEDED", RELEASED)
    skipped = world.bo.prompt_evaluation(NAME, 1)
    assert skipped is not None
    assert (skipped.outcome, skipped.reason) == (
        "skipped", "version 1 has no evaluation set: its evaluation gate was skipped",
    )  # fmt: skip
    assert execution.state["evaluation"]["Payload"]["reason"] == skipped.reason
    # Recorded, not audited: nothing was decided
    assert world.actions()[2:] == ["approved", "canary_started", "promoted"]


def test_a_gate_that_requires_a_set_rejects_a_version_without_one() -> None:
    world = stage(gates={"require_set": True})
    world.ana.register_prompt(prompt_spec(NAME), reason="no set yet")

    execution = world.approve_and_promote(1)

    assert execution.visited == REJECTED
    assert world.bo.get_version(NAME, 1).status is VersionStatus.REJECTED
    entry = world.bo.audit_entries(NAME)[-1]
    assert (str(entry.action), entry.reason) == (
        "evaluation_rejected",
        "version 1 has no evaluation set and the prompt's gate requires one (require_set)",
    )


def test_a_floor_rejects_a_first_version_that_has_no_champion() -> None:
    world = stage(gates={"groundedness_min": 0.9, "max_drop_vs_champion": None})
    world.ana.register_prompt(EXAMPLES / "support-answer.v2.yaml", reason="first")

    execution = world.approve_and_promote(1)

    assert execution.visited == REJECTED
    assert execution.state["evaluation"]["Payload"]["reasons"] == [
        "groundedness: mean 0.310 < groundedness_min 0.9"
    ]


def test_a_gate_naming_an_evaluator_the_stage_lacks_fails_visibly() -> None:
    world = stage(gates={"relevance_min": 0.5})
    world.ana.register_prompt(EXAMPLES / "support-answer.v1.yaml", reason="first")

    execution = world.approve_and_promote(1)

    assert execution.state["error"]["Error"] == "ConfigError"
    failed = world.bo.audit_entries(NAME)[-1]
    assert str(failed.action) == "evaluation_failed"
    assert "names evaluators this stage does not have: relevance" in (failed.reason or "")
    assert world.evaluation_calls() == {}  # refused before any call


def test_missing_evaluators_fail_the_step_and_name_the_package(
    champion: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real composition root
    monkeypatch.setitem(sys.modules, "flywheel.llm.evaluators", None)  # not installed

    execution = champion.approve_and_promote(2)

    assert execution.state["error"]["Error"] == "ConfigError"
    assert "flywheel.llm.evaluators" in champion.bo.audit_entries(NAME)[-1].reason  # type: ignore[operator]
    assert champion.bo.get_version(NAME, 2).status is VersionStatus.APPROVED


def test_a_retried_step_returns_its_recorded_decision_without_asking_again(
    champion: Stage,
) -> None:
    execution = champion.approve_and_promote(2)
    state = PromotionState.model_validate(execution.state)
    calls = champion.evaluation_calls()

    again = champion.platform.evaluation_gate().evaluate_candidate(state)

    assert again.model_dump(mode="json") == execution.state["evaluation"]["Payload"]
    assert champion.evaluation_calls() == calls
    assert champion.actions().count("evaluation_rejected") == 1


def test_a_model_passes_through_the_step_untouched() -> None:
    world = stage()
    state = PromotionState.model_validate(
        {**promotion_input({"model_name": "churn", "version": 3}),
         "run": {"execution_id": "arn:x", "execution_name": "e", "started_at": "t",
                 "state_machine": "m"}}
    )  # fmt: skip

    result = world.platform.evaluation_gate().evaluate_candidate(state)

    assert (result.passed, result.evaluated, result.outcome) == (True, False, "not_a_prompt")


class Down:
    """A provider that is unavailable (after its own retries) on every call."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: Any) -> Any:
        self.calls += 1
        raise ProviderError("the model is not available", details={"retryable": True})


def test_an_unavailable_provider_is_an_evaluation_outage(champion: Stage) -> None:
    down = Down()
    champion.platform.llm_provider = lambda _provider: down  # type: ignore[method-assign,assignment]

    execution = champion.approve_and_promote(2)

    assert execution.state["error"]["Error"] == "EvaluationUnavailableError"
    assert [s for s, _ in execution.invocations].count("EvaluateCandidate") == 3
    assert 3 <= down.calls <= 3 * 8
    failed = champion.bo.audit_entries(NAME)[-1]
    assert str(failed.action) == "evaluation_failed"
    assert "the provider of version 2 could not answer: the model is not available" in (
        failed.reason or ""
    )
    # Every reservation was settled: nothing stays charged for calls that never answered
    assert champion.evaluation_calls()["V2"] == down.calls


def test_with_the_embedded_evaluators_the_ungrounded_candidate_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("flywheel.llm.evaluators")
    monkeypatch.undo()
    world = stage(gates={"groundedness_min": 0.5})
    world.ana.register_prompt(EXAMPLES / "support-answer.v1.yaml", reason="first")
    assert world.approve_and_promote(1).status == "SUCCEEDED"
    world.ana.register_prompt(EXAMPLES / "support-answer.v2.yaml", reason="friendlier")

    execution = world.approve_and_promote(2)

    assert execution.visited == REJECTED
    # v2 answers by repeating the question: no claim the groundedness scorer can check
    # (questions are not claims), and none of the facts the set's items must include.
    reasons = execution.state["evaluation"]["Payload"]["reasons"]
    assert any(r.startswith(("groundedness", "reference")) for r in reasons), reasons
    assert read_evaluation(world.platform.records, NAME, 2) is not None


#: A prompt without context: what its answers claim can only be checked for agreement.
CONFIRM = """\
name: support-answer
description: Confirm a fact to the customer.
owner: support-tools@example.com
provider: bedrock
model_id: {model}
template: |
  Confirm to the customer:

  {{{{ fact }}}}
variables:
  fact: {{type: string}}
parameters: {{max_tokens: 80}}
evaluation: {{set: confirm.eval.jsonl}}
"""
FACTS = (
    "Refunds are issued within 5 days of a cancellation.",
    "The Pro plan costs $49 per month and includes 5 seats.",
    "Password reset links expire after 15 minutes.",
    "Exports of more than 10000 rows are sent by email.",
)


def _confirm_specs(folder: Path) -> None:
    (folder / "confirm.eval.jsonl").write_text(
        "".join(json.dumps({"variables": {"fact": f}}) + "\n" for f in FACTS)
    )
    for version, model in ((1, "anthropic.claude-3-haiku-20240307-v1:0"),
                           (2, "amazon.nova-lite-v1:0")):  # fmt: skip
        (folder / f"confirm.v{version}.yaml").write_text(CONFIRM.format(model=model))


def test_consistency_min_refuses_a_candidate_whose_sampled_answers_disagree(
    tmp_path: Path,
) -> None:
    _confirm_specs(tmp_path)
    world = stage(gates={"consistency_min": 0.8, "consistency_samples": 3})
    world.ana.register_prompt(tmp_path / "confirm.v1.yaml", reason="first")
    assert world.approve_and_promote(1).status == "SUCCEEDED"
    world.ana.register_prompt(tmp_path / "confirm.v2.yaml", reason="cheaper model")
    # The candidate's model contradicts itself whenever it is sampled
    world.platform.llm_stand_in.inject(*["inconsistent@amazon.nova-lite-v1:0"] * 12)

    execution = world.approve_and_promote(2)

    assert execution.visited == REJECTED
    reasons = execution.state["evaluation"]["Payload"]["reasons"]
    assert reasons == [
        "consistency: worse than champion v1 by more than 0.05 (difference -1.000, 90% "
        "interval [-1.000, -1.000] on 4 items)",
        "consistency: mean 0.000 < consistency_min 0.8",
    ]
    assert world.platform.llm_stand_in.pending() == []
    found = world.bo.prompt_evaluation(NAME, 2)
    assert found is not None
    assert found.report is not None
    summary = next(s for s in found.report.evaluators if s.evaluator == "consistency")
    assert summary.worst[0].evidence[0].note == (
        "3 of 3 samples disagree: number 5 is not in the passage"
    )
    # Each answer was sampled 3 more times, counted and costed apart from the answers
    today = world.platform.clock.now().astimezone(UTC).date()
    rows = world.platform.usage_store.usage_rows(Scope.PROMPT, NAME, today, today)
    sampled = {r.sk.split("#")[2]: r.calls for r in rows if r.sk.endswith("#consistency")}
    assert sampled == {"V1": 12 + 12, "V2": 12}
    calls = found.report.candidate_calls
    assert calls.evaluation_cost > 0
    assert calls.cost == calls.cost_per_call * 4 + calls.evaluation_cost  # type: ignore[operator]


def test_an_outage_of_the_sampled_calls_fails_the_step_and_never_passes(tmp_path: Path) -> None:
    _confirm_specs(tmp_path)
    world = stage(gates={"consistency_min": 0.8})
    world.ana.register_prompt(tmp_path / "confirm.v1.yaml", reason="first")
    answers = world.platform.llm_provider(Provider.BEDROCK)
    down = Down()

    class SamplingDown:
        """The answers are given; every sampled call finds the model unavailable."""

        def complete(self, request: Any) -> Any:
            if request.parameters.temperature:
                return down.complete(request)
            return answers.complete(request)

    world.platform.llm_provider = lambda _provider: SamplingDown()  # type: ignore[method-assign,assignment]

    execution = world.approve_and_promote(1)

    assert execution.state["error"]["Error"] == "EvaluationUnavailableError"
    assert [s for s, _ in execution.invocations].count("EvaluateCandidate") == 3
    failed = world.bo.audit_entries(NAME)[-1]
    assert str(failed.action) == "evaluation_failed"
    assert "evaluator consistency could not answer: the model is not available" in (
        failed.reason or ""
    )
    assert world.bo.get_version(NAME, 1).status is VersionStatus.APPROVED
