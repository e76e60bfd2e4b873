"""A prompt version's evaluation gate in the synthesized promotion workflow on the local
runtime: its evaluation set is answered by the version and by the champion through the
stage's provider (the local Bedrock stand-in), an ungrounded candidate is rejected and
audited before its canary, and a grounded one proceeds to its canary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli_app
from flywheel.composition import AwsPlatform
from flywheel.composition.platform import Platform
from flywheel.local.lifecycle import InProcessDriver
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from tests.evaluator_support import fake_evaluators
from tests.prompt_support import declare_prompt_canary, declare_prompt_gate, promotion_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prompts"
NAME = "support-answer"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
EVALUATED = ["Initialize", "EvaluateCandidate", "CandidatePassed"]
STEP = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]
RELEASED = [*EVALUATED, "PublishVersion", *STEP, "PromoteAll", "Promoted"]
GROUNDED_V3 = """\
Question: {{ question }}
Using only what the passages below say, answer briefly.

{{ passages }}
"""


@pytest.fixture
def runtime(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRuntime]:
    """The stage with the test evaluators in its composition root, the prompt's canary
    (one step) and its gate declared; version 1 (grounded) rolled out by the workflow."""
    from moto import mock_aws

    monkeypatch.setattr(
        Platform, "prompt_evaluators", lambda _self, thresholds=None: fake_evaluators(thresholds)
    )
    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as started:
        declare_prompt_canary(started, NAME, [(0.2, 5)])
        declare_prompt_gate(started, NAME, {"groundedness_min": 0.6, "toxicity_rate_max": 0})
        person(started, ANA).register_prompt(EXAMPLES / "support-answer.v1.yaml", reason="first")
        person(started, BO).approve_prompt(NAME, 1, reason="passages reviewed")
        first = promotion_of(started, 0)
        assert (first.status, first.states) == ("SUCCEEDED", RELEASED), first
        yield started


def person(runtime: LocalRuntime, actor: str) -> Flywheel:
    return Flywheel(AwsPlatform(InProcessDriver(runtime).settings), actor=actor)


def cli(runtime: LocalRuntime, actor: str, *args: str) -> Any:
    original = cli_app._sdk
    cli_app._sdk = lambda: person(runtime, actor)  # type: ignore[assignment]
    try:
        return CliRunner().invoke(cli_app.app, list(args))
    finally:
        cli_app._sdk = original  # type: ignore[assignment]


def test_an_ungrounded_candidate_is_rejected_and_audited(runtime: LocalRuntime) -> None:
    ana, bo = person(runtime, ANA), person(runtime, BO)
    ana.register_prompt(EXAMPLES / "support-answer.v2.yaml", reason="friendlier")

    bo.approve_prompt(NAME, 2, reason="tone reviewed")
    done = promotion_of(runtime, 1)

    assert (done.status, done.states) == ("FAILED", [*EVALUATED, "CandidateRejected"])
    assert bo.get_version(NAME, 2).status is VersionStatus.REJECTED
    model = bo.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    entry = bo.audit_entries(NAME)[-1]
    assert (str(entry.action), entry.version) == ("evaluation_rejected", 2)
    assert entry.actor.startswith("workflow:")
    assert entry.details["reasons"][:2] == [
        "groundedness: worse than champion v1 by more than 0.05 (difference -0.690, 90% "
        "interval [-0.812, -0.567] on 8 items)",
        "reference: worse than champion v1 by more than 0.05 (difference -0.826, 90% "
        "interval [-1.000, -0.625] on 8 items)",
    ]
    assert "groundedness: mean 0.310 < groundedness_min 0.6" in entry.details["reasons"]
    assert bo.verify(NAME).ok
    # The report is stored with the version and shown with it
    shown = cli(runtime, BO, "prompts", "show", NAME, "--version", "2")
    assert shown.exit_code == 0, shown.output
    assert "evaluation gate: rejected" in shown.output
    assert "groundedness: worse than champion v1 by more than 0.05" in shown.output
    assert "- refund-time: 0.00 fail, champion 1.00" in shown.output


def test_a_grounded_candidate_passes_and_proceeds_to_its_canary(runtime: LocalRuntime) -> None:
    ana, bo = person(runtime, ANA), person(runtime, BO)
    spec = bo.prompt(NAME, 1).spec
    assert spec.evaluation is not None
    third = spec.model_copy(
        update={
            "template": GROUNDED_V3,
            "evaluation": spec.evaluation.model_copy(
                update={"set": str(EXAMPLES / "support-answer.eval.jsonl"), "sha256": None,
                        "size_bytes": None, "items": None}
            ),
        }
    )  # fmt: skip
    version = ana.register_prompt(third, reason="briefer").version.version

    runtime.hold_waits(True)
    try:
        bo.approve_prompt(NAME, version, reason="wording reviewed")
        baking = promotion_of(runtime, 1, until_state="Bake")
        # Its gate passed on the same items as the champion's answers, then its canary began
        assert baking.status == "RUNNING", baking
        assert baking.states[:4] == [*EVALUATED, "PublishVersion"]
        assert bo.get_version(NAME, version).status is VersionStatus.CANARY
        evaluation = bo.prompt_evaluation(NAME, version)
        assert evaluation is not None
        assert evaluation.report is not None
        assert evaluation.outcome == "passed"
        assert evaluation.report.champion == 1
        assert [str(e.action) for e in bo.audit_entries(NAME)][-3:] == [
            "approved", "evaluation_passed", "canary_started",
        ]  # fmt: skip
    finally:
        runtime.hold_waits(False)
    assert runtime.wait(baking.arn).status == "SUCCEEDED"
    assert bo.get_model(NAME).champion == version
