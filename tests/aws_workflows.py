"""The workflow handlers on moto: resources, settings, fault injection and a driver.

Provisions what the CDK app deploys for one model (tables, buckets, the project bus with
a rule that copies ``VersionApproved`` to a queue, the inference function with alias
``live`` on its bootstrap version, the canary alarms), sets the ``FLYWHEEL_*``
variables the handlers read, and points each handler's composition root at a boto3
session whose calls the test can fail (``faults``) or observe (``spy``).
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from flywheel.adapters.aws_workflows import LambdaServingControl
from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
from flywheel.clock import FixedClock
from flywheel.composition import AwsPlatform
from flywheel.registry.service import RegistryService
from flywheel.settings import Settings
from flywheel.workflows.ports import AliasRouting
from functions.approval_api import handler as approval_handler
from functions.promotion_steps import handler as promotion_handler
from functions.training_steps import handler as training_handler
from infra.catalog import PROMOTION_STEPS, TRAINING_STEPS
from tests import asl_walker
from tests.workflow_support import (
    CANARY_WEIGHT,
    MODEL,
    PROMOTION_MACHINE,
    TRAINING_MACHINE,
    event,
    promotion_input,
    promotion_machine,
    training_input,
    training_machine,
)

BUS = "flywheel-test-bus"
FUNCTION = f"flywheel-test-inference-{MODEL}"
ALARMS = [f"flywheel-test-{MODEL}-canary-{k}" for k in ("errorrate", "latencyp99", "drift")]
START = datetime(2026, 1, 1, 12, tzinfo=UTC)


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


@dataclass
class Faults:
    """Make the next calls of an AWS operation fail as the service would (HTTP error)."""

    session: boto3.Session
    pending: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    #: operation -> {call number (1-based, counted from now): (code, status)}
    scheduled: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session.events.register("before-parameter-build.*.*", self._record)
        self.session.events.register("before-call.*.*", self._before_call)

    def fail(
        self,
        service: str,
        operation: str,
        code: str = "ServiceException",
        status: int = 500,
        times: int = 1,
    ) -> None:
        self.pending.setdefault(f"{service}.{operation}", []).extend([(code, status)] * times)

    def fail_call(
        self,
        service: str,
        operation: str,
        number: int,
        code: str = "ServiceException",
        status: int = 500,
    ) -> None:
        """Fail only the ``number``-th call of the operation from now on (HTTP 500)."""
        key = f"{service}.{operation}"
        self.scheduled.setdefault(key, {})[self.counts.get(key, 0) + number] = (code, status)

    @staticmethod
    def _key(model: Any) -> str:
        return f"{model.service_model.service_id.hyphenize()}.{model.name}"

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((self._key(model), dict(params)))

    def _before_call(self, model: Any, **_: Any) -> Any:
        key = self._key(model)
        self.counts[key] = self.counts.get(key, 0) + 1
        queue = self.pending.get(key)
        scheduled = self.scheduled.get(key, {}).pop(self.counts[key], None)
        if scheduled is not None:
            code, status = scheduled
        elif queue:
            code, status = queue.pop(0)
        else:
            return None
        return _Response(status), {
            "Error": {"Code": code, "Message": f"{code} (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    def called(self, key: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == key]


@dataclass
class AwsWorkflows:
    names: dict[str, str]
    session: boto3.Session
    clock: FixedClock
    faults: Faults
    queue_url: str
    registry: RegistryService

    # -- observing -----------------------------------------------------------------------------
    def actions(self, model: str = MODEL) -> list[str]:
        return [str(e.action) for e in self.registry.audit.entries(model)]

    def last_entry(self, model: str = MODEL) -> Any:
        return list(self.registry.audit.entries(model))[-1]

    def alias(self) -> AliasRouting:
        return LambdaServingControl({MODEL: FUNCTION}, client=boto3.client("lambda")).routing(MODEL)

    def pinned_model_version(self, lambda_version: str) -> int | None:
        config = boto3.client("lambda").get_function_configuration(
            FunctionName=FUNCTION, Qualifier=lambda_version
        )
        pinned = config.get("Environment", {}).get("Variables", {}).get("FLYWHEEL_MODEL_VERSION")
        return int(pinned) if pinned else None

    def version_approved_events(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]

    def sent_task_results(self) -> list[tuple[str, dict[str, Any]]]:
        """``SendTaskSuccess``/``SendTaskFailure`` calls, in order."""
        return [
            (key.rsplit(".", 1)[1], body)
            for key, body in self.faults.calls
            if key in ("sfn.SendTaskSuccess", "sfn.SendTaskFailure")
        ]

    # -- driving the definitions with the real handlers ----------------------------------------
    def start_training(self, reason: str = "schedule", **kwargs: Any) -> asl_walker.Execution:
        handlers: dict[str, Any] = {
            step: getattr(training_handler, step) for step in TRAINING_STEPS
        }
        handlers["record_failure"] = promotion_handler.record_failure
        return asl_walker.start(
            training_machine(),
            handlers,
            training_input(reason, **kwargs),
            state_machine=TRAINING_MACHINE,
        )

    def promote(self, detail: dict[str, Any]) -> asl_walker.Execution:
        handlers = {step: getattr(promotion_handler, step) for step in PROMOTION_STEPS}
        return asl_walker.start(
            promotion_machine(),
            handlers,
            promotion_input(detail),
            state_machine=PROMOTION_MACHINE,
        )

    def decide(
        self, approval_id: str, body: dict[str, Any] | str, **identity: Any
    ) -> tuple[int, dict[str, Any]]:
        """``POST /v1/approvals/{id}`` through API Gateway's proxy event, as the reviewer."""
        request = event("approval_api_decide.json")
        request["path"] = f"/v1/approvals/{approval_id}"
        request["pathParameters"] = {"id": approval_id}
        request["body"] = body if isinstance(body, str) else json.dumps(body)
        if identity:
            request["requestContext"]["identity"].update(identity.get("identity", {}))
            if "claims" in identity:
                request["requestContext"]["authorizer"] = {"claims": identity["claims"]}
        response = approval_handler.handler(request, asl_walker.FakeContext("approval-api"))
        return response["statusCode"], json.loads(response["body"])


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inference/handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def provision(
    names: dict[str, str], monkeypatch: pytest.MonkeyPatch, *, serving: bool = True
) -> AwsWorkflows:
    """Resources, settings and composition roots for one test (inside ``mock_aws``).

    ``serving=False`` skips the inference function and the alarms (approval-only tests).
    """
    region = "us-east-1"
    events = boto3.client("events", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="version-approved")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="promotion-on-VersionApproved",
        EventBusName=BUS,
        EventPattern=json.dumps(
            {"source": ["flywheel.approvals"], "detail-type": ["VersionApproved"]}
        ),
    )
    events.put_targets(
        Rule="promotion-on-VersionApproved",
        EventBusName=BUS,
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )

    if serving:
        _provision_serving(region)
    environment = {
        **names,
        "FLYWHEEL_BACKEND": "aws",
        "FLYWHEEL_REGION": region,
        "FLYWHEEL_EVENT_BUS": BUS,
        "FLYWHEEL_EVENT_SOURCE": "flywheel.approvals",
        "FLYWHEEL_INFERENCE_FUNCTIONS": json.dumps({MODEL: FUNCTION}),
        "FLYWHEEL_LIVE_ALIAS": "live",
        "FLYWHEEL_CANARY_WEIGHT": str(CANARY_WEIGHT),
        "FLYWHEEL_CANARY_ALARMS": json.dumps({MODEL: ALARMS}),
        "FLYWHEEL_RUN_LOCK_TTL_SECONDS": str(6 * 3600),
        "FLYWHEEL_APPROVAL_TIMEOUT_SECONDS": str(24 * 3600),
        "FLYWHEEL_APPROVAL_REJECTED_ERROR": "ApprovalRejected",
        "FLYWHEEL_TRAINING_STATE_MACHINE_ARN": (
            f"arn:aws:states:{region}:123456789012:stateMachine:{TRAINING_MACHINE}"
        ),
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    session = boto3.Session(region_name=region)
    clock = FixedClock(START)
    faults = Faults(session)

    def root(service: str) -> Callable[[], Any]:
        @functools.cache
        def build() -> Any:
            platform = AwsPlatform(Settings(), session=session, clock=clock)
            return getattr(platform, service)()

        return build

    for module in (training_handler, promotion_handler, approval_handler):
        # Imported at collection, before the test's environment: name the namespace here.
        monkeypatch.setattr(module.metrics, "namespace", "FlywheelTests")
    monkeypatch.setattr(training_handler, "_steps", root("training_steps"))
    monkeypatch.setattr(promotion_handler, "_steps", root("promotion_steps"))
    monkeypatch.setattr(promotion_handler, "_failures", root("workflow_failures"))
    monkeypatch.setattr(promotion_handler, "_gate", root("evaluation_gate"))
    monkeypatch.setattr(approval_handler, "_service", root("approval_service"))

    dynamodb = boto3.client("dynamodb", region_name=region)
    audit = DynamoDbAuditLog(names["FLYWHEEL_AUDIT_TABLE"], client=dynamodb)
    store = DynamoDbModelRegistry(names["FLYWHEEL_REGISTRY_TABLE"], audit, client=dynamodb)
    return AwsWorkflows(
        names=names,
        session=session,
        clock=clock,
        faults=faults,
        queue_url=queue_url,
        registry=RegistryService(store, audit),
    )


def _provision_serving(region: str) -> None:
    """The inference function with alias ``live`` on its bootstrap version, and the alarms."""
    role = boto3.client("iam", region_name=region).create_role(
        RoleName="inference", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    lambda_ = boto3.client("lambda", region_name=region)
    lambda_.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="inference.handler.handler",
        Code={"ZipFile": _zip()},
        Environment={"Variables": {"FLYWHEEL_MODEL_NAME": MODEL}},
    )
    bootstrap = lambda_.publish_version(FunctionName=FUNCTION)["Version"]
    lambda_.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=bootstrap)
    cloudwatch = boto3.client("cloudwatch", region_name=region)
    for name in ALARMS:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="Flywheel/test",
            MetricName=name,
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="baseline")
