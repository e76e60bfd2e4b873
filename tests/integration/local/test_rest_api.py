"""The local runtime's REST API over HTTP: every route of the synthesized API, authenticated
with SigV4 against the keys moto issued, answered by the real handlers (moto in process)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from flywheel.local.api_gateway import make_server
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from tests.conftest import AWS_ENV

CONFIG = """
name: breast-cancer
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
gate: {metric: roc_auc}
retraining: {triggers: [schedule]}
"""


@dataclass
class Api:
    runtime: LocalRuntime
    url: str
    ci: boto3.Session
    approver: boto3.Session
    ci_arn: str
    approver_arn: str


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The runtime's API on a free port; CI (an IAM user) and an approver (a role session)."""
    from moto import mock_aws

    from flywheel.composition import AwsPlatform
    from flywheel.sdk import Flywheel
    from flywheel.settings import Settings

    with pytest.MonkeyPatch.context() as patch:
        for key, value in AWS_ENV.items():
            patch.setenv(key, value)
        with mock_aws(config=MOTO_CONFIG), LocalRuntime() as runtime:
            rest = runtime.rest_api()
            assert rest is not None
            server = make_server(rest, port=0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}/{rest.stage}/"
            runtime.publish_api_url(url)
            iam: Any = boto3.client("iam")
            iam.create_user(UserName="ci")
            key = iam.create_access_key(UserName="ci")["AccessKey"]
            ci = boto3.Session(key["AccessKeyId"], key["SecretAccessKey"], region_name="us-east-1")
            role = iam.create_role(RoleName="flywheel-dev-approver", AssumeRolePolicyDocument="{}")
            assumed = ci.client("sts").assume_role(
                RoleArn=role["Role"]["Arn"], RoleSessionName="ana"
            )["Credentials"]
            approver = boto3.Session(
                assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"],
                region_name="us-east-1",
            )  # fmt: skip
            # breast-cancer is configured; its runs may only start on schedule (none here).
            config = tmp_path_factory.mktemp("config") / "breast-cancer.yaml"
            config.write_text(CONFIG)
            settings = Settings.of_deployment(
                runtime.deployment.resource_environment(), backend="aws"
            )
            operator = Flywheel(AwsPlatform(settings), actor="arn:aws:iam::123456789012:user/ops")
            operator.configure_model("breast-cancer", Path(config), reason="onboard")
            try:
                yield Api(
                    runtime, url, ci, approver,
                    ci_arn="arn:aws:iam::123456789012:user/ci",
                    approver_arn="arn:aws:sts::123456789012:assumed-role/flywheel-dev-approver/ana",
                )  # fmt: skip
            finally:
                server.shutdown()
                server.server_close()


def _call(
    api: Api, path: str, body: dict[str, Any] | None = None, *,
    signer: boto3.Session | None = None, method: str = "POST",
) -> tuple[int, dict[str, str], dict[str, Any]]:  # fmt: skip
    url = api.url.rstrip("/") + path if not path.startswith("http") else path
    data = json.dumps(body or {}).encode()
    headers = {"Content-Type": "application/json"}
    if signer is not None:
        credentials = signer.get_credentials()
        assert credentials is not None
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", "us-east-1").add_auth(
            request
        )
        headers = dict(request.headers.items())
    sent = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, dict(answer.headers.items()), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers.items()), json.loads(refused.read())


def test_every_method_of_the_synthesized_api_is_served(api: Api) -> None:
    rest = api.runtime.rest_api()
    assert rest is not None
    served = {(m.http_method, m.resource) for m in rest.definition.methods}
    in_template = api.runtime.deployment.of_type("AWS::ApiGateway::Method")

    assert len(served) == len(in_template)
    assert served == {
        ("POST", "/v1/approvals/{id}"),
        ("POST", "/v1/feedback"),
        ("POST", "/v1/models/breast-cancer/predict"),
        ("POST", "/v1/models/breast-cancer/config"),
        ("POST", "/v1/models/breast-cancer/promotions"),
        ("POST", "/v1/models/breast-cancer/retrain"),
        ("POST", "/v1/models/diabetes/predict"),
        ("POST", "/v1/models/diabetes/config"),
        ("POST", "/v1/models/diabetes/promotions"),
        ("POST", "/v1/models/diabetes/retrain"),
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/v1/models/{name}/config"),
        ("POST", "/v1/models/{name}/promotions"),
        ("POST", "/v1/models/{name}/retrain"),
        ("POST", "/v1/prompts/{name}/invoke"),  # the LLM gateway
        ("POST", "/v1/prompts/{name}/versions"),  # prompt versions, registered as the caller
    }


def test_the_platform_record_names_the_local_api(api: Api) -> None:
    from flywheel.adapters.api_client import HttpApi
    from flywheel.adapters.ssm import read_platform_record
    from flywheel.errors import ModelNotFoundError

    record = read_platform_record(boto3.client("ssm"), "flywheel-dev")

    assert record["api_url"] == api.url
    client = HttpApi(record["api_url"], session=api.ci, region=record["region"])
    with pytest.raises(ModelNotFoundError, match="never-configured"):
        client.request_retrain("never-configured", reason="try")


def test_the_handler_is_told_who_signed_the_request(api: Api) -> None:
    for signer, arn in ((api.ci, api.ci_arn), (api.approver, api.approver_arn)):
        status, _, receipt = _call(
            api, "/v1/models/breast-cancer/retrain", {"reason": "new labels"}, signer=signer
        )
        assert status == 202
        assert receipt["requested_by"] == arn


def test_an_unsigned_request_gets_api_gateways_403_in_the_apis_error_shape(api: Api) -> None:
    status, headers, body = _call(api, "/v1/models/breast-cancer/retrain", {"reason": "x"})

    assert status == 403
    assert body["error"] == {
        "code": "request_error",
        "message": "Missing Authentication Token",
        "request_id": headers["x-amzn-RequestId"],
    }
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/breast-cancer/retrain"),
        ("POST", "/v1/nowhere"),
        ("POST", "/v1/models/breast-cancer/retrain/extra"),
    ],
)
def test_a_route_the_api_lacks_is_a_403_even_when_signed(api: Api, method: str, path: str) -> None:
    status, _, body = _call(api, path, {"reason": "x"}, signer=api.ci, method=method)

    assert status == 403
    assert body["error"]["message"] == "Missing Authentication Token"


def test_another_stage_is_not_served(api: Api) -> None:
    url = api.url.replace("/dev/", "/prod/") + "v1/models/breast-cancer/retrain"
    status, _, body = _call(api, url, {"reason": "x"}, signer=api.ci)
    assert (status, body["error"]["message"]) == (403, "Missing Authentication Token")


def test_keys_the_runtime_never_issued_are_refused(api: Api) -> None:
    stranger = boto3.Session("AKIASTRANGER00000001", "secret", region_name="us-east-1")
    status, headers, body = _call(
        api, "/v1/models/breast-cancer/retrain", {"reason": "x"}, signer=stranger
    )

    assert status == 403
    assert body["error"]["message"] == "The security token included in the request is invalid."
    assert headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


def test_only_the_approver_role_reaches_the_approvals_function(api: Api) -> None:
    status, _, body = _call(
        api, "/v1/approvals/a1", {"decision": "approve", "reason": "ok"}, signer=api.ci
    )
    assert status == 403
    assert body["error"]["message"].startswith(f"User: {api.ci_arn} is not authorized")
    assert "explicit deny" in body["error"]["message"]

    status, _, body = _call(
        api, "/v1/approvals/a1", {"decision": "approve", "reason": "ok"}, signer=api.approver
    )
    assert status == 404  # the function answered: no such approval
    assert body["error"]["code"] == "approval_not_found"


def test_a_name_that_is_not_served_is_answered_by_the_mock_integration(api: Api) -> None:
    status, headers, body = _call(
        api, "/v1/models/no-such-model/predict", {"records": [{"x": 1}]}, signer=api.ci
    )

    assert status == 404
    assert body == {
        "error": {
            "code": "model_not_found",
            "message": "no model is served under this name",
            "request_id": headers["x-amzn-RequestId"],
        }
    }


def test_a_function_that_crashes_is_a_502_that_says_nothing_of_why(api: Api) -> None:
    api.runtime.bridge.inject("flywheel-dev-retrain-api", "database password is hunter2")

    status, _, body = _call(api, "/v1/models/breast-cancer/retrain", {"reason": "x"}, signer=api.ci)

    assert status == 502
    assert body["error"]["code"] == "internal_error"
    assert "hunter2" not in json.dumps(body)


def test_ci_stores_a_model_config_through_the_config_route_as_itself(api: Api) -> None:
    from flywheel.adapters.api_client import HttpApi
    from flywheel.audit.models import AuditAction
    from flywheel.composition import AwsPlatform
    from flywheel.errors import ConfigError
    from flywheel.settings import Settings
    from flywheel.workflows.config import parse_model_config

    client = HttpApi(api.url, session=api.ci, region="us-east-1")
    config = {
        "name": "wines",
        "training": {"task": "classification", "dataset": {"source": "sklearn:wine"},
                     "estimator": "logistic_regression"},
        "gate": {"metric": "accuracy"},
    }  # fmt: skip

    first = client.store_config("wines", config, reason="deployed abc123")
    again = client.store_config("wines", config, reason="deployed abc124")
    with pytest.raises(ConfigError, match="gate"):
        client.store_config("wines", {**config, "gate": {"metric": "no-such"}}, reason="typo")
    with pytest.raises(ConfigError, match="name"):
        client.store_config("other", config, reason="wrong route")

    assert (first["revision"], first["changed"], first["configured_by"]) == (1, True, api.ci_arn)
    assert (again["revision"], again["changed"]) == (1, False)
    assert first["sha256"] == parse_model_config(config).sha256
    settings = Settings.of_deployment(api.runtime.deployment.resource_environment(), backend="aws")
    platform = AwsPlatform(settings)
    assert platform.configs.get("wines").revision == 1
    [entry] = [
        e for e in platform.audit.entries("wines") if e.action is AuditAction.MODEL_CONFIGURED
    ]
    assert (entry.actor, entry.reason) == (api.ci_arn, "deployed abc123")
