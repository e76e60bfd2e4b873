"""Provision the CDK app's resources on moto, from the synthesized templates.

Nothing here is a second copy of the infrastructure: tables, buckets, the event
bus, rules and targets, Lambda functions (with their handler strings and resolved
environments), the ``live`` aliases, CloudWatch alarms and the state machines
(their ``DefinitionString`` with every Lambda ARN resolved) all come from the
templates that ``cdk synth`` produces, and so do SSM String parameters.  A small
resolver evaluates the intrinsic functions those templates use (``Ref``,
``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``); resource
types that have no local meaning (IAM policies, log groups, KMS keys, API Gateway,
dashboards) are skipped, and a JSON parameter's values that name one are left empty.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from flywheel.local.bridge import LocalFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

REGION = "us-east-1"
ACCOUNT = "123456789012"
LOCAL_ROLE = "flywheel-local-execution"
#: Variables the CLI needs to move alias ``live`` (rollback), exported with the resources.
SERVING_ENV = frozenset({"FLYWHEEL_INFERENCE_FUNCTIONS", "FLYWHEEL_LIVE_ALIAS"})

_ARN_TEMPLATES = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
    "AWS::Events::EventBus": "arn:aws:events:{region}:{account}:event-bus/{name}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{name}",
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
}
#: What a reference to an API Gateway resource resolves to: nothing local stands for it.
UNPROVISIONED = "<not-provisioned-locally>"
_UNPROVISIONED_PREFIX = "AWS::ApiGateway::"

_NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SNS::Topic": "TopicName",
    # Not provisioned: the training-job bridge finds job definitions by name (ADR 85).
    "AWS::Batch::JobDefinition": "JobDefinitionName",
    "AWS::Batch::JobQueue": "JobQueueName",
    "AWS::Batch::ComputeEnvironment": "ComputeEnvironmentName",
}


@dataclass
class Resource:
    stack: str
    logical_id: str
    type: str
    properties: dict[str, Any]
    name: str = ""


@dataclass
class ScheduledRule:
    name: str
    bus: str
    expression: str


@dataclass
class Provisioned:
    """What :meth:`LocalDeployment.provision` created, by kind."""

    tables: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    functions: list[LocalFunction] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    state_machines: dict[str, str] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    schedules: list[ScheduledRule] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


class TemplateError(Exception):
    """A template uses something the local resolver does not understand."""


class LocalDeployment:
    """The resources of a set of synthesized stacks, resolved for one local account.

    Examples
    --------
    >>> template = {"Resources": {"T": {"Type": "AWS::DynamoDB::Table",
    ...     "Properties": {"TableName": "t"}}}}
    >>> LocalDeployment({"S": template}).resolve({"Fn::GetAtt": ["T", "Arn"]}, "S")
    'arn:aws:dynamodb:us-east-1:123456789012:table/t'
    """

    def __init__(
        self, templates: Mapping[str, Mapping[str, Any]], *, region: str = REGION,
        account: str = ACCOUNT,
    ) -> None:  # fmt: skip
        self.templates = templates
        self.region = region
        self.account = account
        self.resources: dict[tuple[str, str], Resource] = {}
        for stack, template in templates.items():
            for logical_id, raw in (template.get("Resources") or {}).items():
                self.resources[(stack, logical_id)] = Resource(
                    stack, logical_id, raw["Type"], dict(raw.get("Properties") or {})
                )
        for resource in self.resources.values():
            resource.name = self._physical_name(resource)

    # -- intrinsic functions -----
    def _physical_name(self, resource: Resource) -> str:
        prop = _NAME_PROPERTY.get(resource.type)
        if prop and prop in resource.properties:
            value = self.resolve(resource.properties[prop], resource.stack)
            return str(value)
        generated = f"{resource.stack}-{resource.logical_id}"
        if resource.type == "AWS::S3::Bucket":
            return generated.lower()[:63]
        return generated[:64]

    def _pseudo(self, name: str, stack: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
            "AWS::NoValue": None,
        }[name]

    def _get(self, stack: str, logical_id: str) -> Resource:
        try:
            return self.resources[(stack, logical_id)]
        except KeyError:
            raise TemplateError(f"{stack}: unknown resource {logical_id}") from None

    def ref(self, stack: str, logical_id: str) -> Any:
        if logical_id.startswith("AWS::"):
            return self._pseudo(logical_id, stack)
        parameters = self.templates[stack].get("Parameters") or {}
        if logical_id in parameters:
            return parameters[logical_id].get("Default", f"local-{logical_id}")
        resource = self._get(stack, logical_id)
        if resource.type.startswith(_UNPROVISIONED_PREFIX):
            return UNPROVISIONED
        if resource.type in {
            "AWS::StepFunctions::StateMachine", "AWS::Lambda::Alias", "AWS::SNS::Topic",
        }:  # fmt: skip
            return self.get_att(stack, logical_id, "Arn")
        if resource.type == "AWS::Lambda::Version":
            return self.get_att(stack, logical_id, "Arn")
        if resource.type == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{resource.name}"
        return resource.name

    def get_att(self, stack: str, logical_id: str, attribute: str) -> Any:
        resource = self._get(stack, logical_id)
        if resource.type.startswith(_UNPROVISIONED_PREFIX):
            return UNPROVISIONED
        if resource.type == "AWS::Lambda::Version":
            function = self.resolve(resource.properties["FunctionName"], stack)
            if attribute == "Version":
                return "1"
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{function}:1"
        if resource.type == "AWS::Lambda::Alias":
            function = self.resolve(resource.properties["FunctionName"], stack)
            name = self.resolve(resource.properties["Name"], stack)
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{function}:{name}"
        if attribute in {"Arn", "StateMachineArn"} and resource.type in _ARN_TEMPLATES:
            return _ARN_TEMPLATES[resource.type].format(
                region=self.region, account=self.account, name=resource.name
            )
        if attribute in {"Name", "QueueName", "StateMachineName", "TableName"}:
            return resource.name
        if attribute == "QueueUrl":
            return self.ref(stack, logical_id)
        return f"local-{logical_id}-{attribute}"

    def resolve(self, value: Any, stack: str) -> Any:
        """Evaluate the intrinsic functions in ``value`` (recursively)."""
        if isinstance(value, list):
            return [self.resolve(v, stack) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()  # fmt: skip
            if key == "Ref":
                return self.ref(stack, arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(stack, logical, attribute)
            if key == "Fn::Join":
                separator, parts = arg
                return str(separator).join(str(self.resolve(p, stack)) for p in parts)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, stack)[int(self.resolve(index, stack))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text, stack)).split(separator)
            if key == "Fn::Sub":
                return self._sub(arg, stack)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"{stack}: intrinsic {key} is not supported locally")
        return {k: self.resolve(v, stack) for k, v in value.items()}

    def _sub(self, arg: Any, stack: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name], stack))
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(stack, logical, attribute))
            return str(self.ref(stack, name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def of_type(self, type_name: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == type_name]

    # -- what the local runtime needs -----
    def functions(self) -> list[LocalFunction]:
        found = []
        for resource in self.of_type("AWS::Lambda::Function"):
            props = resource.properties
            handler = (
                props.get("Handler") or (props.get("ImageConfig") or {}).get("Command", [""])[0]
            )
            variables = self.resolve(
                (props.get("Environment") or {}).get("Variables", {}), resource.stack
            )
            found.append(
                LocalFunction(
                    name=resource.name,
                    handler=str(handler),
                    environment={k: str(v) for k, v in variables.items()},
                    timeout_seconds=int(props.get("Timeout", 3)),
                    memory_mb=int(props.get("MemorySize", 128)),
                )
            )
        return found

    def resource_environment(self) -> dict[str, str]:
        """The ``FLYWHEEL_*`` names the functions are configured with (for the CLI and SDK)."""
        env: dict[str, str] = {}
        for function in self.functions():
            for key, value in function.environment.items():
                if key in SERVING_ENV or (
                    key.startswith("FLYWHEEL_")
                    and key.endswith(("_TABLE", "_BUCKET", "_BUS", "_KEY", "_WRITER"))
                ):
                    env.setdefault(key, value)
        return env

    def state_machine_arns(self) -> dict[str, str]:
        return {
            r.name: self.get_att(r.stack, r.logical_id, "Arn")
            for r in self.of_type("AWS::StepFunctions::StateMachine")
        }

    def definition(self, state_machine_name: str) -> dict[str, Any]:
        """The resolved ASL of a state machine (Lambda ARNs substituted)."""
        for resource in self.of_type("AWS::StepFunctions::StateMachine"):
            if resource.name == state_machine_name:
                text = self.resolve(resource.properties["DefinitionString"], resource.stack)
                definition: dict[str, Any] = json.loads(text)
                return definition
        raise KeyError(state_machine_name)

    # -- provisioning -----
    def provision(self, clients: Mapping[str, Any]) -> Provisioned:  # noqa: PLR0915
        """Create every supported resource with boto3 ``clients`` (on moto); idempotent."""
        done = Provisioned()
        iam, ddb, s3 = clients["iam"], clients["dynamodb"], clients["s3"]
        lam, sfn, events = clients["lambda"], clients["stepfunctions"], clients["events"]
        role_arn = _ensure_role(iam)
        handled = {
            "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Events::EventBus",
            "AWS::Lambda::Function", "AWS::Lambda::Version", "AWS::Lambda::Alias",
            "AWS::StepFunctions::StateMachine", "AWS::Events::Rule", "AWS::CloudWatch::Alarm",
            "AWS::SQS::Queue", "AWS::KMS::Alias", "AWS::SSM::Parameter",
        }  # fmt: skip
        for resource in self.resources.values():
            if resource.type not in handled:
                done.skipped[resource.type] = done.skipped.get(resource.type, 0) + 1
        for r in self.of_type("AWS::DynamoDB::Table"):
            _ignore_exists(lambda r=r: ddb.create_table(**self._table_spec(r)))
            ttl = r.properties.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(
                    TableName=r.name,
                    TimeToLiveSpecification={
                        "Enabled": True,
                        "AttributeName": ttl["AttributeName"],
                    },
                )
            done.tables.append(r.name)
        for r in self.of_type("AWS::S3::Bucket"):
            locked = bool(r.properties.get("ObjectLockEnabled"))
            _ignore_exists(
                lambda r=r, locked=locked: s3.create_bucket(
                    Bucket=r.name, ObjectLockEnabledForBucket=locked
                )
            )
            status = (r.properties.get("VersioningConfiguration") or {}).get("Status")
            if status == "Enabled":
                s3.put_bucket_versioning(
                    Bucket=r.name, VersioningConfiguration={"Status": "Enabled"}
                )
            lock = r.properties.get("ObjectLockConfiguration")
            if locked and lock:
                s3.put_object_lock_configuration(Bucket=r.name, ObjectLockConfiguration=lock)
            done.buckets.append(r.name)
        for r in self.of_type("AWS::KMS::Alias"):
            props = self.resolve_alias_target(r)
            if props is not None:
                _ensure_key(clients["kms"], self.resolve(r.properties["AliasName"], r.stack), props)
        for r in self.of_type("AWS::SQS::Queue"):
            clients["sqs"].create_queue(QueueName=r.name)
            done.queues.append(r.name)
        for r in self.of_type("AWS::Events::EventBus"):
            _ignore_exists(lambda r=r: events.create_event_bus(Name=r.name))
        code = _stub_zip()
        for function in self.functions():
            _ignore_exists(
                lambda f=function: lam.create_function(
                    FunctionName=f.name,
                    Runtime="python3.12",
                    Role=role_arn,
                    Handler=f.handler,
                    Code={"ZipFile": code},
                    Timeout=min(f.timeout_seconds, 900),
                    MemorySize=f.memory_mb,
                    Environment={"Variables": dict(f.environment)},
                )
            )
            done.functions.append(function)
        for r in self.of_type("AWS::Lambda::Alias"):
            function = self.resolve(r.properties["FunctionName"], r.stack)
            name = self.resolve(r.properties["Name"], r.stack)
            try:
                lam.get_alias(FunctionName=function, Name=name)
            except ClientError:
                version = lam.publish_version(FunctionName=function)["Version"]
                lam.create_alias(FunctionName=function, Name=name, FunctionVersion=version)
            done.aliases.append(f"{function}:{name}")
        for r in self.of_type("AWS::StepFunctions::StateMachine"):
            definition = self.resolve(r.properties["DefinitionString"], r.stack)
            arn = self.get_att(r.stack, r.logical_id, "Arn")
            try:
                sfn.describe_state_machine(stateMachineArn=arn)
            except ClientError:
                sfn.create_state_machine(name=r.name, definition=definition, roleArn=role_arn)
            done.state_machines[r.name] = arn
        for r in self.of_type("AWS::Events::Rule"):
            props = self.resolve(r.properties, r.stack)
            bus = props.get("EventBusName", "default")
            rule_args: dict[str, Any] = {
                "Name": r.name,
                "EventBusName": bus,
                "State": props.get("State", "ENABLED"),
            }
            if "EventPattern" in props:
                rule_args["EventPattern"] = json.dumps(props["EventPattern"])
            if "ScheduleExpression" in props:
                rule_args["ScheduleExpression"] = props["ScheduleExpression"]
                done.schedules.append(ScheduledRule(r.name, bus, props["ScheduleExpression"]))
            events.put_rule(**rule_args)
            targets = [
                {
                    k: v
                    for k, v in t.items()
                    if k
                    in {
                        "Id",
                        "Arn",
                        "Input",
                        "InputPath",
                        "InputTransformer",
                        "RetryPolicy",
                        "DeadLetterConfig",
                    }
                }
                for t in props.get("Targets", [])
            ]
            if targets:
                events.put_targets(Rule=r.name, EventBusName=bus, Targets=targets)
            done.rules.append(r.name)
        for r in self.of_type("AWS::SSM::Parameter"):
            name, value = self.parameter(r)
            clients["ssm"].put_parameter(
                Name=name,
                Value=value,
                Type=r.properties.get("Type", "String"),
                Description=str(r.properties.get("Description", "")),
                Overwrite=True,
            )
            done.parameters.append(name)
        cloudwatch = clients["cloudwatch"]
        for r in self.of_type("AWS::CloudWatch::Alarm"):
            props = self.resolve(r.properties, r.stack)
            args = {k: v for k, v in props.items() if k in _ALARM_ARGS}
            args.setdefault("ActionsEnabled", False)
            try:
                cloudwatch.put_metric_alarm(**args)
                done.alarms.append(r.name)
            except ClientError:
                done.skipped["AWS::CloudWatch::Alarm (unsupported locally)"] = (
                    done.skipped.get("AWS::CloudWatch::Alarm (unsupported locally)", 0) + 1
                )
        return done

    def parameter(self, r: Resource) -> tuple[str, str]:
        """An SSM parameter's name and resolved value.

        A JSON value's strings that name a resource the runtime does not provision (an
        API Gateway URL) become ``""``; any other value keeps the placeholder.
        """
        name = str(self.resolve(r.properties["Name"], r.stack))
        value = str(self.resolve(r.properties["Value"], r.stack))
        if UNPROVISIONED in value:
            with contextlib.suppress(ValueError):  # not JSON: keep the placeholder
                value = json.dumps(_without_unprovisioned(json.loads(value)), separators=(",", ":"))
        return name, value

    def resolve_alias_target(self, alias: Resource) -> dict[str, Any] | None:
        """The properties of the HMAC key an alias names (other keys have no local use)."""
        target = alias.properties.get("TargetKeyId")
        if not (isinstance(target, dict) and "Fn::GetAtt" in target):
            return None
        logical = target["Fn::GetAtt"][0]
        key = self.resources.get((alias.stack, logical))
        if key is None or key.properties.get("KeySpec", "").upper() != "HMAC_256":
            return None
        return dict(key.properties)

    def _table_spec(self, r: Resource) -> dict[str, Any]:
        props = self.resolve(r.properties, r.stack)
        spec: dict[str, Any] = {
            "TableName": r.name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        indexes = [
            {k: v for k, v in gsi.items() if k in {"IndexName", "KeySchema", "Projection"}}
            for gsi in props.get("GlobalSecondaryIndexes", [])
        ]
        if indexes:
            spec["GlobalSecondaryIndexes"] = indexes
        return spec


_ALARM_ARGS = {
    "AlarmName", "AlarmDescription", "ActionsEnabled", "MetricName", "Namespace", "Statistic",
    "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm",
    "Threshold", "ComparisonOperator", "TreatMissingData", "Metrics",
}  # fmt: skip


def _without_unprovisioned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_unprovisioned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_unprovisioned(v) for v in value]
    if isinstance(value, str) and UNPROVISIONED in value:
        return ""
    return value


def _ensure_role(iam: Any) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        return str(iam.get_role(RoleName=LOCAL_ROLE)["Role"]["Arn"])
    except ClientError:
        return str(
            iam.create_role(RoleName=LOCAL_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
                "Role"
            ]["Arn"]
        )


def _ignore_exists(call: Any) -> None:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {
            "ResourceInUseException",
            "ResourceConflictException",
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
            "ResourceAlreadyExistsException",
        }:
            raise


def _stub_zip() -> bytes:
    """moto needs *some* code; the bridge runs the real handler from ``functions/`` instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Flywheel local runtime: handlers run in-process.\n")
    return buffer.getvalue()


def _ensure_key(kms: Any, alias: str, props: Mapping[str, Any]) -> None:
    """An HMAC key behind ``alias`` (moto picks the key id; the alias is the stable name)."""
    try:
        kms.describe_key(KeyId=alias)
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    key_id = kms.create_key(
        KeySpec=props["KeySpec"],
        KeyUsage=props.get("KeyUsage", "GENERATE_VERIFY_MAC"),
        Description=str(props.get("Description", "")),
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
