"""``flywheel cost report`` on the local runtime (the synthesized app on moto): the
gateway's usage counters in the usage table, the inference functions' versions from
Lambda and their metrics from CloudWatch, where the local runtime reports none until
some are put there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.cli import app as cli
from flywheel.composition import AwsPlatform
from flywheel.llm.budgets import BudgetCall
from flywheel.llm.policy import LlmPolicy
from flywheel.llm.providers import Usage
from flywheel.local.lifecycle import InProcessDriver
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.sdk import Flywheel

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"
PROMPT = "ticket-summary"
ANA = "arn:aws:iam::123456789012:user/ana.author"


@pytest.fixture
def runtime(aws_env: dict[str, str]) -> Iterator[LocalRuntime]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as started:
        yield started


def _report(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["cost", "report", *args])
    return result.exit_code, result.stdout, result.stderr


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_llm_usage_and_model_serving_on_the_local_runtime(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = AwsPlatform(InProcessDriver(runtime).settings)
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(platform, actor=ANA))
    Flywheel(platform, actor=ANA).register_prompt(EXAMPLES / "ticket-summary.v1.yaml")
    models = sorted(platform.settings.inference_functions)
    assert models  # the default project serves classic models

    # Given three calls of the prompt, counted by the gateway's budgets in the usage table
    policy = LlmPolicy.model_validate(
        {"prompts": {PROMPT: {"teams": ["support"], "budget": {"day": "1"}}}}
    )
    budgets = platform.budgets(policy)
    for tokens_out in (100, 200, 300):
        reserved = budgets.reserve(
            BudgetCall(prompt=PROMPT, teams=("support",), provider="local",
                       model_id="local.stand-in", input_tokens=500, max_tokens=400)
        )  # fmt: skip
        budgets.settle(reserved, Usage(input_tokens=500, output_tokens=tokens_out), version=1,
                       variant="champion")  # fmt: skip

    # When the report is asked for this month
    code, out, err = _report()

    # Then the calls are there, per prompt and per team, and no model has metrics
    assert (code, err) == (0, "")
    assert [PROMPT, "all", "3", "1,500", "600", "0.002700", "0.900000"] in _rows(out)
    assert ["v1", "champion", "3", "1,500", "600", "0.002700", "0.900000"] in _rows(out)
    assert ["support", "all", "3", "1,500", "600", "0.002700", "0.900000"] in _rows(out)
    for model in models:
        assert f"no serving metrics for {model} in this period" in out

    # Given a published version of the first model's function pinned to model version 1,
    # and what Lambda would have reported for it through alias live
    model = models[0]
    function = platform.settings.inference_functions[model]
    lam, cw = boto3.client("lambda"), boto3.client("cloudwatch")
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=function,
        Environment={"Variables": {**variables, "FLYWHEEL_MODEL_VERSION": "1"}},
    )
    published = lam.publish_version(FunctionName=function)
    memory_gb = published["MemorySize"] / 1024
    dimensions = [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:live"},
        {"Name": "ExecutedVersion", "Value": published["Version"]},
    ]
    now = datetime.now(UTC)
    cw.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": 2000,
             "Timestamp": now},
            {"MetricName": "Duration", "Dimensions": dimensions, "Value": 90_000,
             "Timestamp": now, "Unit": "Milliseconds"},
        ],
    )  # fmt: skip

    # When the report is asked for again (JSON)
    code, out, _ = _report("--json", "--since", (now - timedelta(days=1)).date().isoformat())

    # Then that model's version 1 shows the requests and GB-seconds; the others still none
    served = {m["model"]: m for m in json.loads(out)["models"]["models"]}
    assert code == 0
    (version,) = served[model]["versions"]
    assert (version["model_version"], version["lambda_versions"]) == (1, [published["Version"]])
    assert version["requests"] == 2000
    assert float(version["gb_seconds"]) == pytest.approx(90 * memory_gb)
    for other in models[1:]:
        assert served[other]["note"] == f"no serving metrics for {other} in this period"


def test_a_budget_alert_reaches_people_once_on_the_local_runtime(runtime: LocalRuntime) -> None:
    from flywheel.local.runtime import readable

    settings = InProcessDriver(runtime).settings.model_copy(
        update={"llm_policy": {"prompts": {PROMPT: {"budget": {"day": "0.01"}}}}}
    )
    platform = AwsPlatform(settings)
    budgets, meter = platform.budgets(), platform.budget_meter()
    # Given calls that spent 90 % of the prompt's day budget (0.0009 each, 10 of them)
    for _ in range(10):
        reserved = budgets.reserve(
            BudgetCall(prompt=PROMPT, provider="local", model_id="local.stand-in",
                       input_tokens=100, max_tokens=400)
        )  # fmt: skip
        budgets.settle(reserved, Usage(input_tokens=100, output_tokens=400), version=1,
                       variant="champion")  # fmt: skip

    # When the meter runs twice
    first, second = meter.run(), meter.run()

    # Then the bus's notification rule told people once, in words
    assert [(r.budget, r.percent, r.alerted) for r in first] == [
        (f"prompt:{PROMPT}:day", 90.0, True)
    ]
    assert [r.alerted for r in second] == [False]
    told = [n for n in runtime.notifications() if n["detail_type"] == "BudgetThresholdReached"]
    assert len(told) == 1
    text = readable(told[0]["message"]).splitlines()
    assert text[0].startswith(f"Flywheel: LLM budget prompt:{PROMPT} has spent 90.0% of its day")
    assert text[1] == "Spent 0.009 of 0.01 USD; the alert is set at 80.0%."
