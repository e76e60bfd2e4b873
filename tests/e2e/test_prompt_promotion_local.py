"""Prompt versions through the synthesized promotion workflow on the local runtime:
approving a version (through the approval function, as another person) starts it; the
canary's weight is registry state the gateway reads; an alarm during the bake rolls it
back; hand changes and experiments go through the same records, checks and audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli_app
from flywheel.composition import AwsPlatform
from flywheel.local.lifecycle import InProcessDriver
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from flywheel.workflows.ports import AliasRouting
from flywheel.workflows.records import CANARY, CanaryDoc, model_key, read
from tests.prompt_support import declare_prompt_canary, next_promotion, promotion_of, set_alarm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "prompts"
NAME = "ticket-summary"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
SAM = "arn:aws:iam::123456789012:user/sam.operator"
STEP = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]
EVALUATED = ["Initialize", "EvaluateCandidate", "CandidatePassed"]
RELEASED = [*EVALUATED, "PublishVersion", *STEP * 2, "PromoteAll", "Promoted"]


@pytest.fixture
def runtime(aws_env: dict[str, str]) -> Iterator[LocalRuntime]:
    """The stage, its prompt taking two canary steps (10 %, then 50 %); version 1 approved
    by someone other than its author and released by the workflow; version 2 registered."""
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as started:
        declare_prompt_canary(started, NAME, [(0.1, 10), (0.5, 10)])
        ana, bo = person(started, ANA), person(started, BO)
        ana.register_prompt(EXAMPLES / "ticket-summary.v1.yaml", reason="first cut")
        bo.approve_prompt(NAME, 1, reason="template reviewed")
        first = promotion_of(started, 0)
        assert (first.status, first.states) == ("SUCCEEDED", RELEASED), first
        ana.register_prompt(EXAMPLES / "ticket-summary.v2.yaml", reason="JSON answers")
        yield started


def person(runtime: LocalRuntime, actor: str) -> Flywheel:
    return Flywheel(AwsPlatform(InProcessDriver(runtime).settings), actor=actor)


def cli(runtime: LocalRuntime, actor: str, *args: str) -> Any:
    """``flywheel ARGS`` as ``actor`` on the local runtime (this process's moto)."""
    original = cli_app._sdk
    cli_app._sdk = lambda: person(runtime, actor)  # type: ignore[assignment]
    try:
        return CliRunner().invoke(cli_app.app, list(args))
    finally:
        cli_app._sdk = original  # type: ignore[assignment]


def trail(fw: Flywheel, version: int) -> list[tuple[str, Any]]:
    return [
        (str(e.action), e.details.get("weight"))
        for e in fw.audit_entries(NAME)
        if e.version == version
    ]


def test_an_approved_prompt_version_canaries_step_by_step_then_becomes_champion(
    runtime: LocalRuntime,
) -> None:
    bo, sam = person(runtime, BO), person(runtime, SAM)
    assert bo.get_model(NAME).champion == 1
    assert trail(bo, 1)[-4:] == [
        ("approved", None), ("canary_started", 0.1), ("canary_advanced", 0.5), ("promoted", None),
    ]  # fmt: skip

    # When version 2 is approved, its canary bakes (held open here) ...
    runtime.hold_waits(True)
    try:
        bo.approve_prompt(NAME, 2, reason="schema reviewed")
        arn = next_promotion(runtime, 1)
        baking = runtime.wait(arn, until_state="Bake")
        assert baking.status == "RUNNING", baking
        # ... the registry says what the gateway routes: v1 answers, v2 takes 10 %
        canary = read(bo.platform.records, model_key(NAME, CANARY), CanaryDoc)
        assert canary is not None
        assert canary[0] == CanaryDoc(version=2, step=1, steps=2, weight=0.1)
        model = bo.get_model(NAME)
        assert (model.champion, model.challenger) == (1, 2)
        assert bo.get_version(NAME, 2).status is VersionStatus.CANARY
        assert bo.platform.promotion_serving.routing(NAME) == AliasRouting(
            primary="1", weights={"2": 0.1}
        )
        # ... and nobody changes the champion by hand meanwhile
        for args in (("promote", NAME, "2", "-r", "skip it"), ("rollback", NAME, "-r", "undo")):
            refused = cli(runtime, SAM, "prompts", *args)
            assert refused.exit_code == 1
            assert "is on canary: its promotion workflow promotes it or rolls it back" in (
                refused.output
            )
    finally:
        runtime.hold_waits(False)

    done = runtime.wait(arn)
    # Then both steps were judged healthy and version 2 answers every call
    assert (done.status, done.states) == ("SUCCEEDED", RELEASED)
    model = sam.get_model(NAME)
    assert (model.champion, model.challenger, model.champion_history) == (2, None, (1,))
    assert sam.get_version(NAME, 1).status is VersionStatus.ARCHIVED
    assert trail(sam, 2)[-3:] == [
        ("canary_started", 0.1), ("canary_advanced", 0.5), ("promoted", None),
    ]  # fmt: skip
    assert sam.prompt(NAME).version.version == 2
    report = sam.verify(NAME)
    assert report.ok, report.problems


def test_an_alarm_during_the_bake_rolls_the_prompt_canary_back(runtime: LocalRuntime) -> None:
    bo, sam = person(runtime, BO), person(runtime, SAM)
    runtime.hold_waits(True)
    try:
        bo.approve_prompt(NAME, 2, reason="schema reviewed")
        arn = next_promotion(runtime, 1)
        assert runtime.wait(arn, until_state="Bake").status == "RUNNING"
        # The canary's error rate breaches while it bakes
        set_alarm(f"flywheel-dev-{NAME}-canary-errorrate", "ALARM")
    finally:
        runtime.hold_waits(False)

    done = runtime.wait(arn)

    assert done.status == "FAILED"
    assert done.states[-3:] == ["CanaryHealthy", "Rollback", "RolledBack"]
    assert done.states.count("ShiftAlias") == 1
    model = sam.get_model(NAME)
    assert (model.champion, model.challenger) == (1, None)
    assert sam.get_version(NAME, 2).status is VersionStatus.ROLLED_BACK
    assert sam.platform.promotion_serving.routing(NAME) == AliasRouting(primary="1")
    aborted = sam.audit_entries(NAME)[-1]
    assert (str(aborted.action), aborted.version) == ("canary_aborted", 2)
    assert aborted.actor.startswith("workflow:")
    assert "canary-errorrate (ALARM)" in (aborted.reason or "")
    assert "prediction checks skipped" in (aborted.reason or "")
    report = sam.verify(NAME)
    assert report.ok, report.problems


def test_a_prompt_experiment_is_audited_and_its_winner_rolled_out_by_the_workflow(
    runtime: LocalRuntime,
) -> None:
    started = cli(runtime, SAM, "experiment", "start", NAME, "--shadow", "2", "-r", "try JSON")
    assert started.exit_code == 0, started.output
    assert "shadow of v2 against champion v1, running" in started.output
    status = cli(runtime, SAM, "experiment", "status", NAME)
    assert status.exit_code == 0, status.output
    assert "no captured calls since it started" in status.output
    # A canary would mix its calls into the comparison: approving v2 now starts a promotion
    # that refuses to run while the experiment does (the champion stays)
    person(runtime, BO).approve_prompt(NAME, 2, reason="schema reviewed")
    refused = promotion_of(runtime, 1)
    assert refused.status == "FAILED"
    assert refused.states[-2:] == ["RecordFailure", "PromotionFailed"]
    sam = person(runtime, SAM)
    assert sam.get_version(NAME, 2).status is VersionStatus.APPROVED

    # The shadow version wins: the experiment stops and the workflow rolls it out
    won = cli(runtime, SAM, "experiment", "promote-winner", NAME, "-r", "JSON reads better")
    assert won.exit_code == 0, won.output
    assert "v2 won; the promotion workflow rolls it out" in won.output
    released = promotion_of(runtime, 2)
    assert (released.status, released.states) == ("SUCCEEDED", RELEASED), released

    entries = [e for e in sam.audit_entries(NAME) if str(e.action).startswith("experiment_")]
    assert [(str(e.action), e.actor, e.reason) for e in entries] == [
        ("experiment_started", SAM, "try JSON"),
        ("experiment_stopped", SAM, "JSON reads better"),
    ]
    assert (entries[1].details["winner"], entries[1].details["outcome"]) == (
        2, "promotion requested",
    )  # fmt: skip
    failed = [e for e in sam.audit_entries(NAME) if str(e.action) == "promotion_failed"]
    assert len(failed) == 1
    assert "ExperimentInProgressError" in (failed[0].reason or "")
    assert sam.get_model(NAME).champion == 2
    report = sam.verify(NAME)
    assert report.ok, report.problems
