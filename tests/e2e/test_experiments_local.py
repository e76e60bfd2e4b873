"""`flywheel experiment` on the local runtime: experiments live in the registry, the
inference function picks them up, and a winner goes through the promotion workflow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli_app
from flywheel.local.lifecycle import (
    APPROVER,
    MODEL,
    OPERATOR,
    InProcessDriver,
    Lifecycle,
    _write_temp_config,
    model_config,
)
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime

SCIENTIST = "arn:aws:iam::123456789012:user/dee.scientist"
STEP = ["ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy", "LastStep"]


@pytest.fixture
def life(aws_env: dict[str, str]) -> Iterator[Lifecycle]:
    """Version 1 released through the workflows (champion on alias live); version 2
    trained by a data scientist and waiting for approval."""
    from moto import mock_aws

    # The inference function re-reads the registry every 50 ms instead of 30 s.
    env = {"FLYWHEEL_ROLE_REFRESH_SECONDS": "0.05"}
    with mock_aws(config=MOTO_CONFIG), LocalRuntime(extra_env=env) as runtime:
        life = Lifecycle(InProcessDriver(runtime))
        life.seed()
        arn, _, approval_id = life.train_until_approval(
            lambda: life.put_event("flywheel.operator", "RetrainRequested", {"model_name": MODEL})
        )
        assert life.approve(approval_id, "reviewed")[0] == 200
        life.wait(arn)
        promotion = life.wait_for_new_execution("promotion", 0)
        assert life.wait(promotion["executionArn"])[0] == "SUCCEEDED"
        # Versions trained outside the workflow are decided directly (the model's policy).
        config = model_config(life.settings.resource("features_bucket"))
        config["approval"]["allow_direct_approval"] = True
        life.sdk(OPERATOR).configure_model(MODEL, _write_temp_config(config), reason="direct")
        training = {**config["training"], "model": MODEL, "hyperparameters": {"C": 0.001}}
        assert life.sdk(SCIENTIST).train_from_dict(training).version.version == 2
        yield life


def cli(life: Lifecycle, actor: str, *args: str) -> Any:
    """``flywheel ARGS`` as ``actor`` on the local runtime (this process's moto)."""
    original = cli_app._sdk
    cli_app._sdk = lambda: life.sdk(actor)  # type: ignore[assignment]
    try:
        return CliRunner().invoke(cli_app.app, list(args))
    finally:
        cli_app._sdk = original  # type: ignore[assignment]


def served_rows(life: Lifecycle, requests: int, *, key: str | None = None) -> list[dict[str, Any]]:
    from flywheel.local.lifecycle import dataset_csv

    _, records = dataset_csv()
    answers = []
    for i in range(requests):
        body: dict[str, Any] = {"record": records[i]}
        if key is not None:
            body["assignment_key"] = f"{key}-{i}"
        status, answer = life.invoke_api(
            life.function_name(f"inference-{MODEL}"), "POST", f"/v1/models/{MODEL}/predict",
            body, path_parameters={"name": MODEL}, qualifier="live",
        )  # fmt: skip
        assert status == 200, answer
        answers.append(answer)
    return answers


def status_until(life: Lifecycle, ready: Any, timeout: float = 60) -> dict[str, Any]:
    """``experiment status --json`` once ``ready(report)`` (shadow scoring runs behind)."""
    deadline = time.monotonic() + timeout
    while True:
        result = cli(life, OPERATOR, "experiment", "status", MODEL, "--json")
        assert result.exit_code == 0, result.output
        report: dict[str, Any] = json.loads(result.output)
        if ready(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_a_shadow_winner_is_approved_then_rolled_out_by_the_promotion_workflow(
    life: Lifecycle,
) -> None:
    # An ML engineer starts a shadow experiment of the candidate (no variable is set)
    started = cli(life, OPERATOR, "experiment", "start", MODEL, "--shadow", "2", "-r", "shadow")
    assert started.exit_code == 0, started.output
    assert "shadow of v2 against champion v1, running" in started.output
    # ... refused: a second one, an unknown version
    second = cli(life, OPERATOR, "experiment", "start", MODEL, "--shadow", "2")
    assert second.exit_code == 1
    assert "runs a shadow experiment of version 2" in second.output
    unknown = cli(life, OPERATOR, "experiment", "start", MODEL, "--ab", "9")
    assert unknown.exit_code == 1
    assert "version 9" in unknown.output
    # The function serves traffic; version 2 scores a copy of each request in the background
    answers = served_rows(life, 30)
    assert {(a["version"], a["variant"]) for a in answers} == {(1, "champion")}
    # (the shadow's rows reach the capture store in batches: wait for all of them)
    report = status_until(
        life, lambda r: ((r["comparison"]["shadow"] or {}).get("paired_rows") or 0) >= 30
    )
    assert report["experiment"]["version"] == 2
    assert report["comparison"]["shadow"]["paired_rows"] == 30
    printed = cli(life, OPERATOR, "experiment", "status", MODEL)
    assert "agreement rate" in printed.output
    # The winner is not approved yet: nothing is stopped, nothing promoted
    early = cli(life, OPERATOR, "experiment", "promote-winner", MODEL, "-r", "agrees")
    assert early.exit_code == 1
    assert "won but is pending_approval: it must be approved first" in early.output
    # ... and the one who trained it cannot approve it (four eyes)
    own = cli(life, SCIENTIST, "approve", MODEL, "2", "-r", "mine")
    assert own.exit_code == 1
    assert cli(life, APPROVER, "approve", MODEL, "2", "-r", "shadow agrees").exit_code == 0
    known = len(life.executions("promotion"))

    done = cli(life, OPERATOR, "experiment", "promote-winner", MODEL, "-r", "shadow agrees")

    assert done.exit_code == 0, done.output
    assert "v2 won; the promotion workflow rolls it out" in done.output
    # The promotion workflow walked the model's three canary steps and promoted version 2
    execution = life.wait_for_new_execution("promotion", known)
    status, states = life.wait(execution["executionArn"])
    assert status == "SUCCEEDED", states
    assert states == [
        "Initialize", "EvaluateCandidate", "CandidatePassed", "PublishVersion",
        *STEP * 3, "PromoteAll", "Promoted",
    ]  # fmt: skip
    _, _, described = life.history(execution["executionArn"])
    assert json.loads(described["input"])["approval"]["requested_by"] == OPERATOR
    sdk = life.sdk(OPERATOR)
    assert sdk.get_model(MODEL).champion == 2
    trail = [str(e.action) for e in sdk.audit_entries(MODEL)]
    assert trail[-7:] == [
        "experiment_started", "approved", "experiment_stopped", "canary_started",
        "canary_advanced", "canary_advanced", "promoted",
    ]  # fmt: skip
    stopped = next(e for e in sdk.audit_entries(MODEL) if str(e.action) == "experiment_stopped")
    assert (stopped.actor, stopped.details["winner"]) == (OPERATOR, 2)
    assert life.verify().ok


def test_an_ab_experiment_splits_traffic_and_blocks_other_changes_until_stopped(
    life: Lifecycle,
) -> None:
    assert cli(life, APPROVER, "approve", MODEL, "2", "-r", "ok for an A/B test").exit_code == 0
    started = cli(life, OPERATOR, "experiment", "start", MODEL, "--ab", "2", "--weight", "0.3")
    assert started.exit_code == 0, started.output
    assert "A/B: v2 takes 30% of keys" in started.output
    # Sticky arms, chosen inside the function from the registry's experiment
    answers = served_rows(life, 40, key="user")
    assert {(a["variant"], a["version"]) for a in answers} == {("a", 1), ("b", 2)}
    again = served_rows(life, 40, key="user")
    assert [(a["variant"], a["version"]) for a in again] == [
        (a["variant"], a["version"]) for a in answers
    ]
    # While it runs: no hand promotion, no second experiment
    promote = cli(life, OPERATOR, "promote", MODEL, "2", "-r", "skip the test")
    assert promote.exit_code == 1
    assert "stop it (flywheel experiment stop) or promote its winner" in promote.output
    # Without labels the A/B test has no winner; the champion may be named the winner
    undecided = cli(life, OPERATOR, "experiment", "promote-winner", MODEL, "-r", "decide")
    assert undecided.exit_code == 1
    assert "no labelled rows in both arms yet; name the winner with --version" in undecided.output
    kept = cli(life, OPERATOR, "experiment", "promote-winner", MODEL, "-r", "a wins",
               "--version", "1")  # fmt: skip
    assert kept.exit_code == 0, kept.output
    assert "champion v1 won; nothing to promote" in kept.output
    assert life.sdk(OPERATOR).get_model(MODEL).champion == 1
    # The function drops the experiment at its next refresh; stopping again is an error
    time.sleep(0.2)
    served_rows(life, 2, key="user")  # starts the refresh
    time.sleep(0.2)
    assert {a["variant"] for a in served_rows(life, 20, key="user")} == {"champion"}
    again_stop = cli(life, OPERATOR, "experiment", "stop", MODEL, "-r", "twice")
    assert again_stop.exit_code == 1
    assert "no experiment is running" in again_stop.output
    alias = boto3.client("lambda").get_alias(
        FunctionName=life.function_name(f"inference-{MODEL}"), Name="live"
    )
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    assert life.verify().ok
