"""The stage the deployed suite runs against: a deployed one, or the local runtime.

With ``FLYWHEEL_BACKEND=aws`` and ``FLYWHEEL_STAGE`` set, the tests use that stage and the
ambient AWS credentials (CI's), plus the roles named by ``FLYWHEEL_TEST_APPROVER_ROLE_ARN``
and ``FLYWHEEL_TEST_OPERATOR_ROLE_ARN`` (docs/guide.md, CI/CD). Otherwise one local
runtime is started for the session, serving ``project/`` (one model,
``smoke-lifecycle``), and the tests reach it exactly as a deployed stage: the same
variables, the stage's platform record in SSM, SigV4 with keys its IAM and STS issued
(a CI user, the approver and ML engineer roles); ``AWS_ENDPOINT_URL`` points every AWS
client at it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from flywheel.local import server
from flywheel.settings import LOCAL_CREDENTIALS
from tests.local_support import free_port_pair

PROJECT_FILE = Path(__file__).parent / "project" / "flywheel.yaml"
#: The local stage's people: CI (an IAM user: the ambient credentials), and the persona
#: roles the API's resource policy and the workflows know by name.
CI_USER = "smoke-ci"
APPROVER_ROLE = "flywheel-dev-approver"
OPERATOR_ROLE = "flywheel-dev-ml-engineer"


def deployed() -> bool:
    """Whether the environment names a deployed stage (then nothing is started here)."""
    return os.environ.get("FLYWHEEL_BACKEND") == "aws" and bool(os.environ.get("FLYWHEEL_STAGE"))


@dataclass(frozen=True)
class StageUnderTest:
    """What the tests know of the stage: its name, whether it is deployed, and the
    variables that reach it (empty when the environment already does)."""

    name: str
    deployed: bool
    environment: dict[str, str]


@pytest.fixture(scope="session")
def _stage_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StageUnderTest]:
    if deployed():
        yield StageUnderTest(os.environ["FLYWHEEL_STAGE"], deployed=True, environment={})
        return
    port = free_port_pair()
    home = tmp_path_factory.mktemp("flywheel-local-stage")
    with pytest.MonkeyPatch.context() as patch:
        # The runtime process: the suite's project, and nothing of this process's AWS or
        # Flywheel settings.
        for key in list(os.environ):
            if key.startswith(("AWS_", "FLYWHEEL_")):
                patch.delenv(key)
        patch.setenv("FLYWHEEL_PROJECT", str(PROJECT_FILE))
        patch.setenv("FLYWHEEL_LOCAL_STAGE", "dev")
        patch.setenv("OMP_NUM_THREADS", "1")
        endpoint = server.ensure_running(port, home)
    try:
        yield StageUnderTest("dev", deployed=False, environment=_people(endpoint))
    finally:
        server.stop(home)


def _people(endpoint: str) -> dict[str, str]:
    """CI's access key and the persona roles, made in the runtime's IAM; the variables a
    CI job would have (its credentials, the stage, the roles it may assume)."""
    iam: Any = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    iam.create_user(UserName=CI_USER)
    key = iam.create_access_key(UserName=CI_USER)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    roles = {
        name: iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
        for name in (APPROVER_ROLE, OPERATOR_ROLE)
    }
    return {
        "FLYWHEEL_BACKEND": "aws",
        "FLYWHEEL_STAGE": "dev",
        "FLYWHEEL_PROJECT": "flywheel",
        "FLYWHEEL_REGION": "us-east-1",
        "FLYWHEEL_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "FLYWHEEL_TEST_APPROVER_ROLE_ARN": roles[APPROVER_ROLE],
        "FLYWHEEL_TEST_OPERATOR_ROLE_ARN": roles[OPERATOR_ROLE],
        # Each asynchronous step takes seconds here (the bake runs on the simulated clock).
        "FLYWHEEL_TEST_WAIT_SECONDS": "120",
    }


@pytest.fixture
def stage(_stage_environment: StageUnderTest, monkeypatch: pytest.MonkeyPatch) -> StageUnderTest:
    """The stage under test, with this process's environment reaching it."""
    if not _stage_environment.deployed:
        for key in list(os.environ):  # as in a CI job: only what the job sets
            if key.startswith(("AWS_", "FLYWHEEL_")):
                monkeypatch.delenv(key)
        for key, value in _stage_environment.environment.items():
            monkeypatch.setenv(key, value)
    return _stage_environment


@pytest.fixture
def record(stage: StageUnderTest) -> dict[str, Any]:
    """The stage's platform record (SSM ``/flywheel/<project>-<stage>/platform``)."""
    from flywheel.adapters.ssm import read_platform_record

    prefix = f"{os.environ.get('FLYWHEEL_PROJECT', 'flywheel')}-{stage.name}"
    client = boto3.client("ssm", region_name=os.environ.get("FLYWHEEL_REGION") or None)
    found: dict[str, Any] = read_platform_record(client, prefix)
    return found
