"""The local runtime's bridges over moto, on a small template: Lambda, events, schedules, waits."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from flywheel.local.bridge import THROTTLE
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime

HANDLERS = """
import os

INVOCATIONS = []

def double(event, context):
    if event.get("explode"):
        raise ValueError("boom: " + str(event["explode"]))
    INVOCATIONS.append(event["x"])
    return {"doubled": event["x"] * 2, "stage": os.environ["STAGE"], "fn": context.function_name,
            "warm": len(INVOCATIONS)}

def record(event, context):
    calls = os.environ.get("CALLS_FILE")
    with open(calls, "a") as f:
        f.write(repr(event) + "\\n")
    return {"ok": True}
"""


def _template(calls_file: str) -> dict[str, Any]:
    retry = [
        {
            "ErrorEquals": ["Lambda.TooManyRequestsException"],
            "IntervalSeconds": 30,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        }
    ]
    definition = {
        "StartAt": "Double",
        "States": {
            "Double": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "FN_ARN", "Payload.$": "$"},
                "ResultSelector": {"Payload.$": "$.Payload"},
                "ResultPath": "$.result",
                "Retry": retry,
                "Catch": [
                    {"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Caught"}
                ],
                "Next": "Bake",
            },
            "Bake": {"Type": "Wait", "Seconds": 3600, "Next": "Done"},
            "Done": {"Type": "Succeed"},
            "Caught": {"Type": "Fail", "Error": "Caught", "Cause": "handler raised"},
        },
    }
    text = json.dumps(definition).split('"FN_ARN"')
    return {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "t-double",
                    "Handler": "demo_handlers.double",
                    "Environment": {"Variables": {"STAGE": "test"}},
                },
            },
            "Recorder": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "t-record",
                    "Handler": "demo_handlers.record",
                    "Environment": {"Variables": {"CALLS_FILE": calls_file}},
                },
            },
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "t-machine",
                    "DefinitionString": {
                        "Fn::Join": [
                            "",
                            [text[0], '"', {"Fn::GetAtt": ["Fn", "Arn"]}, '"', text[1]],
                        ]
                    },
                },
            },
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "t-bus"}},
            "OnThing": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": "t-on-thing",
                    "EventBusName": {"Ref": "Bus"},
                    "EventPattern": {"source": ["t.src"], "detail-type": ["Thing"]},
                    "Targets": [
                        {
                            "Id": "sm",
                            "Arn": {"Ref": "Machine"},
                            "InputTransformer": {
                                "InputPathsMap": {"x": "$.detail.x"},
                                "InputTemplate": '{"x": <x>, "via": "events"}',
                            },
                        }
                    ],
                },
            },
            "Hourly": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": "t-hourly",
                    "ScheduleExpression": "rate(1 hour)",
                    "Targets": [{"Id": "fn", "Arn": {"Fn::GetAtt": ["Recorder", "Arn"]}}],
                },
            },
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "t-api"}},
            "Record": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "/t/record",
                    "Type": "String",
                    "Value": {
                        "Fn::Join": [
                            "",
                            [
                                '{"bus":"',
                                {"Ref": "Bus"},
                                '","region":"',
                                {"Ref": "AWS::Region"},
                                '","api_url":"https://',
                                {"Ref": "Api"},
                                '.execute-api.example/t/"}',
                            ],
                        ]
                    },
                },
            },
        }
    }


@pytest.fixture
def runtime(aws_env: dict[str, str], tmp_path: Path) -> Iterator[LocalRuntime]:
    from moto import mock_aws

    functions = tmp_path / "functions"
    functions.mkdir()
    (functions / "demo_handlers.py").write_text(textwrap.dedent(HANDLERS))
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    with mock_aws(config=MOTO_CONFIG):
        rt = LocalRuntime(template_set={"T": _template(str(calls))}, functions_dir=functions)
        rt.calls_file = calls  # type: ignore[attr-defined]
        with rt:
            yield rt


def test_lambda_tasks_run_the_real_handler_and_waits_use_the_simulated_clock(
    runtime: LocalRuntime,
) -> None:
    started = runtime.clock.now()
    arn = runtime.start_execution("machine", {"x": 21})
    report = runtime.wait(arn, timeout=30)
    assert report.status == "SUCCEEDED", report
    assert report.states == ["Double", "Bake", "Done"]
    assert report.output["result"]["Payload"] == {
        "doubled": 42, "stage": "test", "fn": "t-double", "warm": 1,
    }  # fmt: skip
    assert (runtime.clock.now() - started).total_seconds() >= 3600


def test_a_recycled_function_starts_in_a_new_execution_environment(runtime: LocalRuntime) -> None:
    client = boto3.client("lambda", region_name="us-east-1")

    def warm() -> int:
        answer = client.invoke(FunctionName="t-double", Payload=json.dumps({"x": 1}).encode())
        return int(json.loads(answer["Payload"].read())["warm"])

    assert [warm(), warm()] == [1, 2]  # the module's state lives between invocations
    assert runtime.bridge.recycle("t-double") is True
    assert warm() == 1  # ... until Lambda recycles the environment
    assert runtime.bridge.recycle("t-unknown") is False


def test_held_waits_keep_a_bake_open_until_released(runtime: LocalRuntime) -> None:
    runtime.hold_waits(True)
    try:
        arn = runtime.start_execution("machine", {"x": 3})
        runtime.wait(arn, until_state="Bake", timeout=30)
        time.sleep(0.3)  # a wait that was not held would have finished by now
        held = runtime.report(arn)
        assert held.status == "RUNNING", held
        assert held.states == ["Double", "Bake"]
    finally:
        runtime.hold_waits(False)
    report = runtime.wait(arn, timeout=30)
    assert report.status == "SUCCEEDED", report
    assert report.states == ["Double", "Bake", "Done"]


def test_handler_errors_are_lambda_errors_that_catch_matches_by_type(runtime: LocalRuntime) -> None:
    report = runtime.wait(runtime.start_execution("machine", {"x": 1, "explode": "x"}), timeout=30)
    assert report.status == "FAILED"
    assert report.states == ["Double", "Caught"]
    assert report.error == "Caught"


def test_injected_throttling_is_retried_and_visible_in_the_history(runtime: LocalRuntime) -> None:
    runtime.bridge.inject("t-double", THROTTLE, THROTTLE)
    report = runtime.wait(runtime.start_execution("machine", {"x": 2}), timeout=30)
    assert report.status == "SUCCEEDED", report
    assert report.retries == {"Double": 2}
    throttled = [i for i in runtime.bridge.invocations if i.error == THROTTLE]
    assert len(throttled) == 2


def test_throttling_beyond_max_attempts_fails_the_execution(runtime: LocalRuntime) -> None:
    runtime.bridge.inject("t-double", *[THROTTLE] * 4)
    report = runtime.wait(runtime.start_execution("machine", {"x": 2}), timeout=30)
    assert report.status == "FAILED"
    assert report.error == "Lambda.TooManyRequestsException"


def test_events_reach_state_machine_targets_through_the_input_transformer(
    runtime: LocalRuntime,
) -> None:
    boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": "t-bus",
                "Source": "t.src",
                "DetailType": "Thing",
                "Detail": '{"x": 5}',
            },
            {
                "EventBusName": "t-bus",
                "Source": "other",
                "DetailType": "Thing",
                "Detail": '{"x": 6}',
            },
        ]
    )
    executions = runtime.executions("machine")
    assert len(executions) == 1  # only the matching event started one
    report = runtime.wait(executions[0]["executionArn"], timeout=30)
    assert report.output["result"]["Payload"]["doubled"] == 10
    assert report.output["via"] == "events"


def test_schedules_fire_from_the_simulated_clock(runtime: LocalRuntime) -> None:
    assert runtime.advance(59 * 60) == []
    fired = runtime.advance(2 * 3600)
    assert fired == ["t-hourly", "t-hourly"]
    lines = runtime.calls_file.read_text().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 2
    assert "Scheduled Event" in lines[0]


def test_parameters_hold_their_resolved_value_and_no_unprovisioned_api(
    runtime: LocalRuntime,
) -> None:
    value = boto3.client("ssm").get_parameter(Name="/t/record")["Parameter"]["Value"]

    # The local runtime serves no REST API: a value naming one is left empty.
    assert json.loads(value) == {"bus": "t-bus", "region": "us-east-1", "api_url": ""}
    assert runtime.provisioned is not None
    assert runtime.provisioned.parameters == ["/t/record"]


def test_bedrock_converse_is_answered_by_the_local_stand_in(runtime: LocalRuntime) -> None:
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "bedrock-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    request: dict[str, Any] = {
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [{"role": "user", "content": [{"text": "one two three four"}]}],
        "inferenceConfig": {"maxTokens": 3},
    }

    answer = client.converse(**request)
    runtime.llm.inject("ThrottlingException")
    with pytest.raises(ClientError) as caught:
        client.converse(**request)

    assert answer["output"]["message"]["content"] == [{"text": "one two three"}]
    assert answer["stopReason"] == "max_tokens"
    assert answer["usage"] == {"inputTokens": 4, "outputTokens": 3, "totalTokens": 7}
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_the_control_api_injects_stand_in_faults() -> None:
    import threading
    import types
    import urllib.error
    import urllib.request

    from flywheel.adapters.local_llm import ConverseError, LocalConverse
    from flywheel.local.server import _control_server

    engine = LocalConverse()
    control = _control_server(0, types.SimpleNamespace(llm=engine))
    threading.Thread(target=control.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{control.server_address[1]}/llm-faults"

    def post(faults: list[str]) -> int:
        request = urllib.request.Request(
            url, data=json.dumps({"faults": faults}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    try:
        assert post(["ThrottlingException"]) == 200
        assert post(["NoSuchFault"]) == 400
        with pytest.raises(ConverseError, match="ThrottlingException"):
            engine.converse(
                {"modelId": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]}
            )
    finally:
        control.shutdown()
        control.server_close()
