"""Workflows stack: the ASL in the template (JSONPath, Retry/Catch/timeouts) and its IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.catalog import (
    FUNCTIONS,
    PROMOTION_STEPS,
    TRAINING_JOB_STEPS,
    TRAINING_STEPS,
    training_function_key,
)
from infra.config import load_stage_config
from infra.workflows.template import state_machine_definition, state_machines
from tests.infra.synth import Synth, actions_of, allowed, function_by_name, resources_text

WORKFLOWS = "FlywheelWorkflows"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
WAIT_FOR_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"


def definition(synth: Synth, key: str) -> dict[str, Any]:
    """The definition as the local runtime will see it (function ARN = its name here)."""
    return state_machine_definition(
        synth.templates[WORKFLOWS], f"{synth.prefix}-{key}", lambda name: f"fn:{name}"
    )


def targets(state: dict[str, Any]) -> list[str]:
    found = [state.get("Next"), state.get("Default")]
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    return [t for t in found if t]


@pytest.mark.parametrize("key", ["training", "promotion"])
def test_state_machines_log_everything_and_trace(synth: Synth, key: str) -> None:
    machine = state_machines(synth.templates[WORKFLOWS])[f"{synth.prefix}-{key}"]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    # Task inputs carry approval task tokens: execution data stays out of the logs.
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False


@pytest.mark.parametrize("key", ["training", "promotion"])
def test_definitions_are_plain_jsonpath_asl(synth: Synth, key: str) -> None:
    text = json.dumps(definition(synth, key))
    for forbidden in ("JSONata", "QueryLanguage", '"Assign"', '"Arguments"', "startExecution"):
        assert forbidden not in text, forbidden
    # Only Lambda ARNs are intrinsics: the template's DefinitionString is a Join of them.
    machine = state_machines(synth.templates[WORKFLOWS])[f"{synth.prefix}-{key}"]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    assert all(isinstance(p, str) or set(p) == {"Fn::GetAtt"} for p in parts)


@pytest.mark.parametrize("key", ["training", "promotion"])
def test_every_task_retries_with_jitter_catches_and_times_out(synth: Synth, key: str) -> None:
    tasks = {n: s for n, s in definition(synth, key)["States"].items() if s["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        assert task["Resource"] in (LAMBDA_INVOKE, WAIT_FOR_TOKEN), name
        assert task["Parameters"]["FunctionName"].startswith(f"fn:{synth.prefix}-"), name
        if task["Resource"] == LAMBDA_INVOKE:
            assert task["Parameters"]["Payload.$"] == "$", name
            assert task["ResultSelector"] == {"Payload.$": "$.Payload"}, name
        assert task["TimeoutSeconds"] > 0, name
        transient = task["Retry"][0]
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= set(
            transient["ErrorEquals"]
        ), name
        for retrier in task["Retry"]:
            assert retrier["JitterStrategy"] == "FULL", name
            assert 1 <= retrier["MaxAttempts"] <= 10, name
            assert retrier["BackoffRate"] > 1, name
            assert retrier["MaxDelaySeconds"] <= 60, name
        assert any(c["ErrorEquals"] == ["States.ALL"] for c in task["Catch"]), name


@pytest.mark.parametrize("key", ["training", "promotion"])
def test_every_state_is_reachable_and_every_target_exists(synth: Synth, key: str) -> None:
    asl = definition(synth, key)
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert name in states, f"dangling target {name}"
        todo.extend(targets(states[name]))
    assert seen == set(states)
    assert any(s["Type"] == "Fail" for s in states.values())


def test_training_machine_flow_and_timeouts(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    asl = definition(synth, "training")
    states = asl["States"]
    assert asl["TimeoutSeconds"] == config.training_workflow_timeout_seconds
    path = ["Initialize", "AcquireRunLock", "IsSuppressed", "ValidateData", "BuildTrainingSet",
            "Train", "Evaluate", "Gate", "GatePassed", "Register", "RequestApproval",
            "ReleaseRunLock", "Done"]  # fmt: skip
    name = asl["StartAt"]
    walked = [name]
    while "Next" in states[name] or states[name]["Type"] == "Choice":
        state = states[name]
        name = (
            state["Choices"][0]["Next"]
            if name == "GatePassed"
            else state.get("Next", state.get("Default"))
        )
        walked.append(name)
    assert walked == path
    assert states["IsSuppressed"]["Choices"][0] == {
        "Variable": "$.lock.Payload.suppressed", "BooleanEquals": True, "Next": "Suppressed"
    }  # fmt: skip
    assert states["Suppressed"]["Type"] == "Succeed"
    # Failures release the lock, get recorded, then fail the execution.
    assert states["Train"]["Catch"][0]["Next"] == "ReleaseRunLockAfterFailure"
    assert states["ReleaseRunLockAfterFailure"]["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Next"] == "TrainingFailed"
    assert states["TrainingFailed"]["Type"] == "Fail"
    assert states["RecordFailure"]["Parameters"]["FunctionName"] == (
        f"fn:{synth.prefix}-promotion-record-failure"
    )


def test_approval_waits_for_a_task_token_with_timeout_and_heartbeat(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    approval = definition(synth, "training")["States"]["RequestApproval"]
    assert approval["Resource"] == WAIT_FOR_TOKEN
    assert approval["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert approval["TimeoutSeconds"] == config.approval_timeout_seconds
    assert 0 < approval["HeartbeatSeconds"] < approval["TimeoutSeconds"]
    assert approval["Catch"][0] == {
        "ErrorEquals": ["ApprovalRejected"], "ResultPath": "$.error",
        "Next": "ReleaseRunLockAfterRejection",
    }  # fmt: skip


def test_promotion_machine_flow(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    asl = definition(synth, "promotion")
    states = asl["States"]
    assert states["Initialize"]["Parameters"]["canary_weight"] == config.canary_weight
    assert states["Initialize"]["Parameters"]["bake_seconds"] == config.bake_seconds
    assert [states[n]["Next"] for n in ("PublishVersion", "ShiftAlias", "Bake", "CheckCanary")] == [
        "ShiftAlias", "Bake", "CheckCanary", "CanaryHealthy",
    ]  # fmt: skip
    # Each step bakes as long as shift_alias says (the model's step, from the project file).
    assert states["Bake"] == {
        "Type": "Wait", "Comment": states["Bake"]["Comment"],
        "SecondsPath": "$.canary.Payload.bake_seconds", "Next": "CheckCanary",
    }  # fmt: skip
    choice = states["CanaryHealthy"]
    assert choice["Choices"][0]["Variable"] == "$.canary_check.Payload.healthy"
    assert (choice["Choices"][0]["Next"], choice["Default"]) == ("LastStep", "Rollback")
    # The loop: a healthy step that is not the last goes back to ShiftAlias for the next one.
    last = states["LastStep"]
    assert last["Choices"] == [
        {"Variable": "$.canary.Payload.last", "BooleanEquals": True, "Next": "PromoteAll"}
    ]
    assert last["Default"] == "ShiftAlias"
    for name, state in states.items():
        if state["Type"] == "Task" and name != "RecordFailure":
            assert state["Catch"][0]["Next"] == "RecordFailure", name
    assert states["RecordFailure"]["Next"] == "PromotionFailed"
    assert asl["TimeoutSeconds"] == config.promotion_workflow_timeout_seconds
    assert not any("Assign" in state or "QueryLanguage" in state for state in states.values())


def test_the_promotion_steps_get_each_models_canary_steps(synth: Synth) -> None:
    config = load_stage_config(synth.stage)
    expected = {
        m.name: [{"weight": s.weight, "bake_minutes": s.bake_minutes} for s in m.canary.steps]
        for m in config.models
        if m.canary is not None
    }
    assert expected  # the example project's breast-cancer canary takes three steps
    for step in ("shift-alias", "check-canary"):
        _, function = function_by_name(synth, f"{synth.prefix}-promotion-{step}")
        variables = function["Properties"]["Environment"]["Variables"]
        # the models' steps (and the prompts', by prompt name: tests/infra/test_infra_llm.py)
        assert json.loads(variables["FLYWHEEL_CANARY_STEPS"]).items() >= expected.items()
    # The machine outlives the slowest canary: all its bakes, plus an hour for the tasks.
    plans = [*config.canary_plans.values(), *config.prompt_canary_plans.values()]
    slowest = max(sum(s.bake_seconds for s in plan) for plan in plans)
    assert definition(synth, "promotion")["TimeoutSeconds"] == slowest + 3600


@pytest.mark.parametrize("key", ["training", "promotion"])
def test_moto_can_load_the_synthesized_definition(synth: Synth, key: str) -> None:
    # The local runtime runs these very definitions on moto's ASL interpreter.
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    program, _ = AmazonStateLanguageParser.parse(json.dumps(definition(synth, key)))
    assert program is not None


def test_each_step_is_its_own_function_and_role(synth: Synth) -> None:
    roles = {}
    # The training-job steps exist only with a model on Batch or SageMaker (ADR 85;
    # tests/infra/test_infra_training_engines.py).
    job_steps = {training_function_key(step) for step in TRAINING_JOB_STEPS}
    for spec in FUNCTIONS.values():
        if spec.per_model or spec.key in job_steps:
            continue
        _, function = function_by_name(synth, f"{synth.prefix}-{spec.key}")
        roles[spec.key] = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert len(set(roles.values())) == len(roles)


def test_training_steps_run_from_one_image_with_their_own_handler(synth: Synth) -> None:
    images = set()
    for step in TRAINING_STEPS:
        _, function = function_by_name(synth, f"{synth.prefix}-training-{step.replace('_', '-')}")
        props = function["Properties"]
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == [f"training_steps.handler.{step}"]
        images.add(json.dumps(props["Code"]["ImageUri"], sort_keys=True))
    assert len(images) == 1


def test_state_machine_roles_invoke_only_their_functions(synth: Synth) -> None:
    expected = {"training": len(TRAINING_STEPS) + 1, "promotion": len(PROMOTION_STEPS)}
    for policy in synth.resources("AWS::IAM::Policy", WORKFLOWS).values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") != "InvokeTaskFunctions":
                continue
            assert actions_of(statement) == ["lambda:InvokeFunction"]
            resources = statement["Resource"]
            key = (
                "training" if "Training" in policy["Properties"]["Roles"][0]["Ref"] else "promotion"
            )
            assert len(resources) == expected.pop(key)
            assert all(set(r) == {"Fn::GetAtt"} for r in resources)  # unqualified ARNs
    assert expected == {}


def test_promotion_steps_have_only_the_lambda_rights_they_need(synth: Synth) -> None:
    model = load_stage_config(synth.stage).models[0].name
    inference = f"function:{synth.prefix}-inference-{model}"
    step = lambda s: f"{synth.prefix}-promotion-{s}"  # noqa: E731
    assert allowed(synth, step("publish-version"), "lambda:UpdateFunctionConfiguration", inference)
    assert allowed(synth, step("publish-version"), "lambda:PublishVersion", inference)
    assert not allowed(synth, step("publish-version"), "lambda:UpdateAlias")
    assert not allowed(synth, step("publish-version"), "lambda:UpdateFunctionCode")
    assert not allowed(synth, step("publish-version"), "lambda:GetFunction")  # code location
    for name in ("shift-alias", "promote-all", "rollback", "record-failure"):
        assert allowed(synth, step(name), "lambda:UpdateAlias", f"{inference}:live"), name
        assert not allowed(synth, step(name), "lambda:UpdateFunctionConfiguration"), name
        assert not allowed(synth, step(name), "lambda:PublishVersion"), name
    assert allowed(
        synth, step("check-canary"), "cloudwatch:DescribeAlarms",
        f"alarm:{synth.prefix}-{model}-canary-errorrate",
    )  # fmt: skip
    assert not allowed(synth, step("check-canary"), "lambda:UpdateAlias")


def test_training_steps_write_only_their_own_prefixes(synth: Synth) -> None:
    step = lambda s: f"{synth.prefix}-training-{s}"  # noqa: E731
    assert allowed(
        synth,
        step("train"),
        "s3:PutObject",
        "artifactsbucket-<AWS::AccountId>-<AWS::Region>/models/*",
    )
    assert not allowed(synth, step("train"), "dynamodb:PutItem", "RegistryTable")
    # ... and records its run (and nothing its capability does not allow) through the writer
    assert allowed(
        synth,
        step("train"),
        "lambda:InvokeFunction",
        f"{synth.prefix}-records-writer:training-runs",
    )
    # ValidateData writes its data report under reports/, and nothing else
    bucket = "artifactsbucket-<AWS::AccountId>-<AWS::Region>"
    assert allowed(synth, step("validate-data"), "s3:PutObject", f"{bucket}/reports/*")
    for prefix in ("models/*", "training-sets/*", "policies/*"):
        assert not allowed(synth, step("validate-data"), "s3:PutObject", f"{bucket}/{prefix}")
    # Registry changes go through the records writer's workflows alias, not the table
    assert not allowed(synth, step("register"), "dynamodb:PutItem", "RegistryTable")
    assert allowed(
        synth,
        step("register"),
        "lambda:InvokeFunction",
        f"{synth.prefix}-records-writer:training-runs",
    )
    # The audit trail is append-only for everyone: no updates, no deletes.
    for policy in synth.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "AuditTable" in resources_text(statement) and "index" not in resources_text(
                statement
            ):
                assert not {
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem",
                } & set(actions_of(statement)), resources_text(statement)


def test_training_steps_that_build_training_sets_read_the_offline_feature_store(
    synth: Synth,
) -> None:
    step = lambda s: f"{synth.prefix}-training-{s}"  # noqa: E731
    offline = "featuresbucket-<AWS::AccountId>-<AWS::Region>/offline/*"
    for name in ("validate-data", "build-training-set"):
        # Parquet files under offline/ (and the listing that finds them), the view catalog
        assert allowed(synth, step(name), "s3:GetObject", offline), name
        assert allowed(synth, step(name), "s3:ListBucket", "featuresbucket"), name
        assert allowed(synth, step(name), "dynamodb:GetItem", "RegistryTable"), name
        assert not allowed(synth, step(name), "s3:PutObject", "featuresbucket"), name
    assert not allowed(synth, step("train"), "s3:GetObject", offline)
