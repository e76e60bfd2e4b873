"""Training on AWS Batch and SageMaker (ADR 85): the synthesized jobs, roles and states.

The variant is the example dev stage with breast-cancer on AWS Batch (Fargate Spot) and
diabetes on SageMaker (managed spot, in a VPC): ``infra.nag_report.engines_config``, the
same one the reviewed cdk-nag list covers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.local.deployment import LocalDeployment
from infra.nag_report import EXAMPLE_SECURITY_GROUPS, EXAMPLE_SUBNETS, engines_config
from tests.infra.synth import Synth, function_by_name, synthesize

ACKNOWLEDGEMENTS = Path(__file__).with_name("nag_acknowledgements.json")
WORKFLOWS = "FlywheelWorkflows"
BATCH_MODEL, SAGEMAKER_MODEL = "breast-cancer", "diabetes"


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-engines"), engines_config())


def _resolved(synth: Synth) -> LocalDeployment:
    return LocalDeployment({WORKFLOWS: synth.templates[WORKFLOWS]})


def _definition(synth: Synth) -> dict[str, Any]:
    return _resolved(synth).definition(f"{synth.prefix}-training")


def _one(synth: Synth, resource_type: str) -> dict[str, Any]:
    (found,) = synth.resources(resource_type, WORKFLOWS).values()
    return found


def _statements(synth: Synth, role_path: str) -> list[dict[str, Any]]:
    """The statements of the inline policies of the role whose logical id starts so."""
    policies = synth.resources("AWS::IAM::Policy", WORKFLOWS)
    found = [
        s
        for key, p in policies.items()
        if key.split("/")[1].startswith(role_path)
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert found, role_path
    return found


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


def _train_image(synth: Synth) -> str:
    _, train = function_by_name(synth, f"{synth.prefix}-training-train")
    return str(_resolved(synth).resolve(train["Properties"]["Code"]["ImageUri"], WORKFLOWS))


def test_the_engines_pass_cdk_nag_and_cfn_lint(engines: Synth, dev: Synth) -> None:
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks
    from cfnlint.api import lint

    from infra.nag import collect_acknowledgements

    assert engines.error is None, engines.error
    report = engines.validation_report()
    assert [v for p in report["pluginReports"] for v in p["violations"]] == []
    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        assert pack.validate_scope(engines.app).violations == [], pack.name
    # What the engines acknowledge beyond the dev stage is the reviewed list, exactly.
    reviewed = json.loads(ACKNOWLEDGEMENTS.read_text())
    key = lambda a: (a["path"], a["id"], a["reason"])  # noqa: E731
    known = set(map(key, reviewed["stages"]["dev"]))
    added = set(map(key, collect_acknowledgements(engines.app, prefix=engines.prefix))) - known
    assert added == set(map(key, reviewed["engines"]))
    matches = lint(json.dumps(engines.templates[WORKFLOWS]), regions=["us-east-1", "eu-west-1"])
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_the_batch_job_runs_the_training_image_on_fargate_spot(engines: Synth) -> None:
    deployment = _resolved(engines)
    definition = deployment.resolve(
        _one(engines, "AWS::Batch::JobDefinition")["Properties"], WORKFLOWS
    )
    container = definition["ContainerProperties"]
    # The same image as the training functions, its `train` command, on Fargate
    assert container["Image"] == _train_image(engines)
    assert container["Command"] == ["train"]
    assert definition["PlatformCapabilities"] == ["FARGATE"]
    assert {r["Type"]: r["Value"] for r in container["ResourceRequirements"]} == {
        "VCPU": "2",
        "MEMORY": "8192",
    }
    # With the Train function's environment (resource names, the records writer's alias)
    _, train = function_by_name(engines, f"{engines.prefix}-training-train")
    function_env = deployment.resolve(train["Properties"]["Environment"]["Variables"], WORKFLOWS)
    job_env = {e["Name"]: e["Value"] for e in container["Environment"]}
    shared = {k: v for k, v in function_env.items() if k != "POWERTOOLS_SERVICE_NAME"}
    assert {k: job_env[k] for k in shared} == shared
    assert job_env["FLYWHEEL_RECORDS_CAPABILITY"] == "training-runs"
    # Spot interruptions are retried, nothing else; the attempt is bounded
    strategy = definition["RetryStrategy"]
    assert strategy["Attempts"] == 3
    assert strategy["EvaluateOnExit"][0] == {
        "Action": "RETRY",
        "OnStatusReason": "Your Spot Task was interrupted*",
    }
    assert definition["Timeout"] == {"AttemptDurationSeconds": 7200}
    compute = _one(engines, "AWS::Batch::ComputeEnvironment")["Properties"]["ComputeResources"]
    assert compute["Type"] == "FARGATE_SPOT"
    assert (compute["Subnets"], compute["SecurityGroupIds"]) == (
        EXAMPLE_SUBNETS,
        EXAMPLE_SECURITY_GROUPS,
    )


def test_the_batch_roles_hold_the_train_steps_access_and_no_more(engines: Synth) -> None:
    job = _statements(engines, "TrainingEnginesBatchBreastCancerJobRole")
    assert not {a for a in _actions(job) if a.startswith("dynamodb:") and "Get" not in a
                and "Query" not in a and "Scan" not in a and "Describe" not in a
                and "Condition" not in a}  # fmt: skip
    assert "s3:DeleteObject*" not in _actions(job)
    writes = {
        json.dumps(r)
        for s in job
        if "s3:PutObject" in s["Action"]
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert len(writes) == 2
    assert any("/models/*" in w for w in writes)
    assert any("/training-jobs/*" in w for w in writes)
    (invoke,) = [s for s in job if s["Action"] == "lambda:InvokeFunction"]
    assert json.dumps(invoke["Resource"]).endswith('records-writer:training-runs"]]}')
    execution = _actions(_statements(engines, "TrainingEnginesBatchBreastCancerExecutionRole"))
    assert {"ecr:BatchGetImage", "ecr:GetAuthorizationToken", "logs:PutLogEvents"} <= execution
    assert not {a for a in execution if a.startswith(("s3:", "dynamodb:", "lambda:"))}


def test_the_sagemaker_state_names_the_same_image_its_instance_and_spot(engines: Synth) -> None:
    state = _definition(engines)["States"][f"TrainJob-{SAGEMAKER_MODEL}"]
    assert state["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    parameters = state["Parameters"]
    assert parameters["AlgorithmSpecification"]["TrainingImage"] == _train_image(engines)
    assert parameters["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert parameters["ResourceConfig"]["InstanceCount"] == 1
    assert parameters["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }
    assert parameters["EnableManagedSpotTraining"] is True
    assert parameters["CheckpointConfig"]["S3Uri.$"].startswith("States.Format('s3://")
    assert parameters["OutputDataConfig"]["KmsKeyId"].endswith(f":alias/{engines.prefix}-data")
    assert parameters["EnableNetworkIsolation"] is False
    assert parameters["VpcConfig"] == {
        "Subnets": EXAMPLE_SUBNETS,
        "SecurityGroupIds": EXAMPLE_SECURITY_GROUPS,
    }
    assert parameters["Environment"]["FLYWHEEL_RECORDS_CAPABILITY"] == "training-runs"
    assert "FLYWHEEL_TRAINING_JOB_INPUT.$" in parameters["Environment"]
    assert parameters["RoleArn"] == _roles(engines)["TrainingEnginesSageMakerDiabetesRole"]
    # The role may have the stage key grant the volume's encryption to SageMaker only
    (grant,) = [
        s
        for s in _statements(engines, "TrainingEnginesSageMakerDiabetesRole")
        if s.get("Sid") == "TrainingVolumeKeyGrant"
    ]
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert grant["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": f"alias/{engines.prefix}-data"
    }


def _roles(synth: Synth) -> dict[str, str]:
    """Role ARNs by logical-id prefix (as the resolver renders them)."""
    deployment = _resolved(synth)
    return {
        key.split("/")[1][:-8]: str(deployment.get_att(WORKFLOWS, key.split("/")[1], "Arn"))
        for key in synth.resources("AWS::IAM::Role", WORKFLOWS)
    }


def test_the_state_machine_may_run_exactly_these_jobs(engines: Synth) -> None:
    statements = {s.get("Sid"): s for s in _statements(engines, "TrainingWorkflowStateMachineRole")}
    submit = statements["SubmitTrainingJobs"]
    assert submit["Action"] == "batch:SubmitJob"
    assert len(submit["Resource"]) == 3  # the queue, the definition and its revisions
    sagemaker = statements["RunSageMakerTrainingJobs"]
    assert json.dumps(sagemaker["Resource"]).count(f"training-job/{SAGEMAKER_MODEL}-*") == 1
    passed = statements["PassSageMakerTrainingRoles"]
    assert passed["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    rules = json.dumps(statements["SyncIntegrationRules"]["Resource"])
    assert "rule/StepFunctionsGetEventsForBatchJobsRule" in rules
    assert "rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule" in rules
    assert set(statements["SyncIntegrationRules"]["Action"]) == {
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }
    # The routing: engine models through their jobs, the others to the Train function
    states = _definition(engines)["States"]
    assert states["BuildTrainingSet"]["Next"] == "TrainingEngine"
    assert states["TrainingEngine"]["Default"] == "Train"
    assert {c["StringEquals"] for c in states["TrainingEngine"]["Choices"][0]["Or"]} == {
        BATCH_MODEL,
        SAGEMAKER_MODEL,
    }
    assert states[f"TrainJob-{BATCH_MODEL}"]["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    assert states["CollectTrainingJob"]["ResultPath"] == "$.training"
    assert states["CollectTrainingJob"]["Next"] == "Evaluate"


def test_the_engines_definition_loads_on_moto_and_its_job_steps_have_own_roles(
    engines: Synth,
) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    program, _ = AmazonStateLanguageParser.parse(json.dumps(_definition(engines)))
    assert program is not None
    roles = set()
    for step in ("prepare-training-job", "collect-training-job", "train"):
        _, function = function_by_name(engines, f"{engines.prefix}-training-{step}")
        assert function["Properties"]["ImageConfig"]["Command"] == [
            f"training_steps.handler.{step.replace('-', '_')}"
        ]
        roles.add(function["Properties"]["Role"]["Fn::GetAtt"][0])
    assert len(roles) == 3


def test_a_lambda_only_stage_is_unchanged_by_the_engines(
    dev: Synth, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from infra.config import StageConfig, load_stage_config

    # Given every model saying `training: {engine: lambda}` out loud
    base = load_stage_config("dev").model_dump()
    models = [{**m, "training": {"engine": "lambda"}} for m in base["models"]]
    explicit = synthesize(
        "dev",
        tmp_path_factory.mktemp("cdk-lambda"),
        StageConfig.model_validate({**base, "models": models}),
    )
    # Then the templates are the default's, byte for byte: no job resources, no new states
    assert explicit.templates == dev.templates
    assert dev.resources("AWS::Batch::JobDefinition") == {}
    states = _definition(dev)["States"]
    assert states["BuildTrainingSet"]["Next"] == "Train"
    assert not {"TrainingEngine", "PrepareTrainingJob", "CollectTrainingJob"} & set(states)


def test_the_image_runs_the_job_for_train_and_hands_lambda_its_handler(tmp_path: Path) -> None:
    import re
    import subprocess

    # The entrypoint the Dockerfile writes, with the two programs it starts recorded
    dockerfile = Path(__file__).parents[2] / "infra" / "layers" / "training" / "Dockerfile"
    match = re.search(r"RUN printf '(.+?)'", dockerfile.read_text())
    assert match is not None
    script = match.group(1).replace("\\n", "\n")
    record = tmp_path / "started"
    for program in ("python3", "lambda-entrypoint.sh"):
        stub = tmp_path / program
        stub.write_text(f'#!/bin/sh\necho "{program} $* in $PWD" > {record}\n')
        stub.chmod(0o755)
    script = script.replace("/var/lang/bin/python3", str(tmp_path / "python3"))
    script = script.replace("/lambda-entrypoint.sh", str(tmp_path / "lambda-entrypoint.sh"))
    entrypoint = tmp_path / "flywheel-entrypoint"
    entrypoint.write_text(script)
    entrypoint.chmod(0o755)
    (tmp_path / "task").mkdir()
    env = {"PATH": "/usr/bin:/bin", "LAMBDA_TASK_ROOT": str(tmp_path / "task")}

    # Batch and SageMaker: `train` runs the job module from the task root
    subprocess.run([str(entrypoint), "train"], env=env, check=True)
    assert record.read_text().strip() == f"python3 -m training_steps.job in {tmp_path / 'task'}"
    # Lambda: the handler goes to the base image's entrypoint, untouched
    subprocess.run([str(entrypoint), "training_steps.handler.train"], env=env, check=True)
    assert record.read_text().startswith("lambda-entrypoint.sh training_steps.handler.train")
