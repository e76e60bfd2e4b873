"""A prompt's canary on the local runtime: its alarms, steps and the wait for its workflow.

What the project file's ``llm.prompts.<name>`` section deploys for a prompt (its canary
alarms in CloudWatch, listed under its name in the promotion functions'
``FLYWHEEL_CANARY_ALARMS``, and its steps in ``FLYWHEEL_CANARY_STEPS``), declared on an
already provisioned local runtime so that tests need not depend on the example project.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

import boto3

from infra.config import load_stage_config
from infra.naming import Naming

if TYPE_CHECKING:
    from flywheel.local.runtime import ExecutionReport, LocalRuntime

#: The prompt canary's alarms, as the contract names them (``ctx.naming.alarm``).
ALARM_KEYS = ("errorrate", "latencyp99")


def alarm_name(prompt: str, key: str, stage: str = "dev") -> str:
    """The name of one canary alarm of ``prompt`` in ``stage``."""
    return Naming(load_stage_config(stage).prefix).alarm(prompt, key)


def declare_prompt_canary(
    runtime: LocalRuntime, prompt: str, steps: list[tuple[float, int]]
) -> list[str]:
    """Give ``prompt`` canary ``steps`` (``(weight, bake_minutes)``) and its alarms, in OK.

    Returns the alarm names.
    """
    alarms = [alarm_name(prompt, key) for key in ALARM_KEYS]
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    for name in alarms:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="Flywheel/dev",
            MetricName=name,
            Dimensions=[
                {"Name": "Prompt", "Value": prompt},
                {"Name": "Variant", "Value": "canary"},
            ],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
            ActionsEnabled=False,
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="baseline")
    plan = [{"weight": weight, "bake_minutes": minutes} for weight, minutes in steps]
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    for name, function in list(runtime.bridge.functions.items()):
        environment = dict(function.environment)
        if "FLYWHEEL_CANARY_ALARMS" not in environment:
            continue
        declared = json.loads(environment["FLYWHEEL_CANARY_ALARMS"])
        environment["FLYWHEEL_CANARY_ALARMS"] = json.dumps({**declared, prompt: alarms})
        planned = json.loads(environment.get("FLYWHEEL_CANARY_STEPS") or "{}")
        environment["FLYWHEEL_CANARY_STEPS"] = json.dumps({**planned, prompt: plan})
        # The bridge runs the handler with its own environment and the function's configuration.
        runtime.bridge.functions[name] = dataclasses.replace(function, environment=environment)
        configured = lambda_.get_function_configuration(FunctionName=name)
        variables = dict(configured.get("Environment", {}).get("Variables", {}))
        for key in ("FLYWHEEL_CANARY_ALARMS", "FLYWHEEL_CANARY_STEPS"):
            variables[key] = environment[key]
        lambda_.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )
    return alarms


def declare_prompt_gate(runtime: LocalRuntime, prompt: str, gate: dict[str, Any]) -> None:
    """Give ``prompt`` an evaluation ``gate`` (the project file's ``llm.prompts.<name>.gate``)
    in the evaluation step's ``FLYWHEEL_PROMPT_GATES``."""
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    for name, function in list(runtime.bridge.functions.items()):
        environment = dict(function.environment)
        if "FLYWHEEL_PROMPT_GATES" not in environment:
            continue
        declared = json.loads(environment["FLYWHEEL_PROMPT_GATES"])
        environment["FLYWHEEL_PROMPT_GATES"] = json.dumps({**declared, prompt: gate})
        runtime.bridge.functions[name] = dataclasses.replace(function, environment=environment)
        configured = lambda_.get_function_configuration(FunctionName=name)
        variables = dict(configured.get("Environment", {}).get("Variables", {}))
        variables["FLYWHEEL_PROMPT_GATES"] = environment["FLYWHEEL_PROMPT_GATES"]
        lambda_.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )


def set_alarm(name: str, state: str) -> None:
    boto3.client("cloudwatch", region_name="us-east-1").set_alarm_state(
        AlarmName=name, StateValue=state, StateReason="set by the test"
    )


def next_promotion(runtime: LocalRuntime, known: int, timeout: float = 120) -> str:
    """The ARN of the promotion execution started after the ``known`` first ones."""
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(runtime.executions("promotion"), key=lambda e: e["startDate"])
        if len(found) > known:
            arn: str = found[known]["executionArn"]
            return arn
        if time.monotonic() > deadline:
            raise TimeoutError(f"no promotion execution after the first {known}")
        time.sleep(0.02)


def promotion_of(runtime: LocalRuntime, known: int, **wait: Any) -> ExecutionReport:
    """Wait for the next promotion execution (until it ends, or ``until_state``)."""
    return runtime.wait(next_promotion(runtime, known), **wait)
