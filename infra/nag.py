"""cdk-nag 3 wiring: the rule packs, and acknowledgements that always carry a reason.

Acknowledgements are made where the resource is defined (``acknowledge``), one finding
at a time with its full id (``AwsSolutions-IAM5[Resource::*]``), never stack-wide.
``tests/infra/nag_acknowledgements.json`` lists every one of them with its reason; the
infra tests fail when the code acknowledges something that list does not (or the other
way round), so each new exception is visible in review.

IAM wildcard findings (``AwsSolutions-IAM5``) come from CDK grants and from services
without resource-level permissions. :func:`acknowledge_iam_wildcards` computes them the
way cdk-nag does and acknowledges a finding only when its statement matches one of the
justified shapes in ``WILDCARD_JUSTIFICATIONS``; anything else stays a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from constructs import IConstruct


def register_rule_packs(app: App) -> None:
    """Run the AwsSolutions and Serverless packs on every stack of ``app`` at synth."""
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True),
        ServerlessChecks(app, verbose=True),
    )


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding (full id) on ``scope`` and its children, with a reason."""
    if len(reason.strip()) < 20:
        raise ValueError(f"acknowledgement of {rule_id} needs a real reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_all(scope: IConstruct, rule_ids: Iterable[str], reason: str) -> None:
    for rule_id in rule_ids:
        acknowledge(scope, rule_id, reason)


# --- IAM5: wildcard findings ------------------------------------------------------------

#: Actions that have no resource-level permissions (the IAM Service Authorization Reference
#: lists no resource type for them), so ``Resource: *`` is the only possible scope.
RESOURCELESS_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray tracing",
    "xray:PutTelemetryRecords": "X-Ray tracing",
    "xray:GetSamplingRules": "X-Ray tracing",
    "xray:GetSamplingTargets": "X-Ray tracing",
    "cloudwatch:PutMetricData": "CloudWatch metric writes",
    "cloudwatch:GetMetricData": "CloudWatch metric reads",
    "logs:CreateLogDelivery": "Step Functions log delivery",
    "logs:GetLogDelivery": "Step Functions log delivery",
    "logs:UpdateLogDelivery": "Step Functions log delivery",
    "logs:DeleteLogDelivery": "Step Functions log delivery",
    "logs:ListLogDeliveries": "Step Functions log delivery",
    "logs:PutResourcePolicy": "Step Functions log delivery",
    "logs:DescribeResourcePolicies": "Step Functions log delivery",
    "logs:DescribeLogGroups": "Step Functions log delivery",
    "ecr:GetAuthorizationToken": "ECR registry login (the image pull itself is per repository)",
    "batch:DescribeJobs": "Batch job status (what Step Functions' .sync integration polls)",
}

#: Action wildcards that CDK grants use; each expands to a small, fixed family.
GRANT_ACTION_FAMILIES: dict[str, str] = {
    "s3:GetObject*": "object reads (GetObject, GetObjectVersion, GetObjectTagging, ...)",
    "s3:GetBucket*": "bucket metadata reads needed by the SDK (location, versioning)",
    "s3:List*": "listing the objects the same statement scopes",
    "s3:DeleteObject*": "deleting objects (and versions) under the same prefix",
    "s3:Abort*": "aborting its own multipart uploads",
    "kms:ReEncrypt*": "KMS re-encryption with the stage's data key only",
    "kms:GenerateDataKey*": "KMS data keys from the stage's data key only",
}


@dataclass(frozen=True)
class WildcardJustification:
    """A reviewed shape of wildcard finding: which findings it covers, and why."""

    name: str
    matches: Callable[[str, dict[str, Any]], bool]
    reason: Callable[[str, dict[str, Any]], str]
    #: Only for policies whose construct path matches (``None``: any policy).
    where: re.Pattern[str] | None = None


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else list(actions)


def _resourceless(finding: str, statement: dict[str, Any]) -> bool:
    return finding == "Resource::*" and all(a in RESOURCELESS_ACTIONS for a in _actions(statement))


def _resourceless_reason(_finding: str, statement: dict[str, Any]) -> str:
    kinds = sorted({RESOURCELESS_ACTIONS[a] for a in _actions(statement)})
    return (
        f"{'; '.join(kinds)}: these actions support no resource-level permissions "
        "(IAM Service Authorization Reference), so '*' is the narrowest scope."
    )


def _grant_family(finding: str, _statement: dict[str, Any]) -> bool:
    return (
        finding.startswith("Action::") and finding.removeprefix("Action::") in GRANT_ACTION_FAMILIES
    )


def _grant_family_reason(finding: str, _statement: dict[str, Any]) -> str:
    action = finding.removeprefix("Action::")
    return (
        f"{action} comes from a CDK grant and means {GRANT_ACTION_FAMILIES[action]}; "
        "the statement's resources are specific buckets, prefixes or the stage key."
    )


#: cdk-nag flattens {"Ref": "AWS::Partition"} to <AWS::Partition>; literal with a known region.
_PARTITION = r"(?:<AWS::Partition>|aws[a-z-]*)"
_OBJECT_ARN = re.compile(rf"^Resource::arn:{_PARTITION}:s3:::(?P<bucket>[^/]+)/(?P<prefix>.*)\*$")
_INDEX_ARN = re.compile(
    rf"^Resource::arn:{_PARTITION}:dynamodb:.*:table/(?P<table>[^/]+)/index/\*$"
)
_LAMBDA_QUALIFIED = re.compile(rf"^Resource::arn:{_PARTITION}:lambda:.*:function:(?P<fn>[^:]+):\*$")
_KMS_ANY_KEY = re.compile(rf"^Resource::arn:{_PARTITION}:kms:.+:key/\*$")
_LOG_GROUP = re.compile(rf"^Resource::arn:{_PARTITION}:logs:.*:log-group:(?P<group>[^*]+):\*$")
#: One route of a REST API: ``<api>/<stage>/<METHOD>/<path>``, ``*`` only for a path parameter.
_API_ROUTE = re.compile(
    rf"^Resource::arn:{_PARTITION}:execute-api:(<AWS::Region>|[a-z0-9-]+):"
    r"(<AWS::AccountId>|\d{12}):[^/*]+/[a-z0-9]+/"
    r"(?P<route>(GET|POST|PUT|DELETE|PATCH)(/[a-z0-9-]+|/\*)+)$"
)
_EXECUTIONS = re.compile(
    rf"^Resource::arn:{_PARTITION}:states:.*:execution:(?P<machine>[^:*]+):\*$"
)
_CDK_ROLES = re.compile(
    rf"^Resource::arn:{_PARTITION}:iam::<AWS::AccountId>:role/cdk-\*-<AWS::AccountId>-<AWS::Region>$"
)


def _object_arn_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _OBJECT_ARN.match(finding)
    assert match is not None
    where = f"prefix '{match['prefix']}'" if match["prefix"] else "the whole bucket"
    return (
        f"S3 object ARNs need a wildcard for the key: scoped to {where} of "
        f"{match['bucket'].split('-<')[0]}, the only objects this function works on."
    )


def _index_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _INDEX_ARN.match(finding)
    assert match is not None
    return (
        f"Queries on the global secondary indexes of table {match['table']} only "
        "(CDK table grants include table/<name>/index/*)."
    )


def _lambda_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _LAMBDA_QUALIFIED.match(finding)
    assert match is not None
    return (
        f"Versions and aliases of {match['fn']} only: the promotion workflow publishes "
        "numbered versions at run time, so their ARNs cannot be listed in advance."
    )


def _kms_by_alias(finding: str, statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("ForAnyValue:StringEquals", {})
    return bool(_KMS_ANY_KEY.match(finding)) and "kms:ResourceAliases" in condition


def _kms_by_alias_reason(_finding: str, statement: dict[str, Any]) -> str:
    alias = statement["Condition"]["ForAnyValue:StringEquals"]["kms:ResourceAliases"]
    return (
        f"Only the key whose alias is {alias}: stacks address the stage's keys by alias "
        "(condition kms:ResourceAliases), so they share no CloudFormation exports."
    )


def _log_group_reason(_finding: str, _statement: dict[str, Any]) -> str:
    return "Log streams of one named log group (log-group:<name>:* is how streams are scoped)."


def _api_route_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _API_ROUTE.match(finding)
    assert match is not None
    return (
        f"One route of this stage's API ({match['route']}): execute-api ARNs stand for "
        "a path parameter ({id}, {name}) with a wildcard."
    )


def _executions_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _EXECUTIONS.match(finding)
    assert match is not None
    return (
        f"Executions of {match['machine']} only: execution ARNs end in a name chosen at run "
        "time, so they cannot be listed in advance."
    )


_JOB_DEFINITION_REVISIONS = re.compile(
    rf"^Resource::arn:{_PARTITION}:batch:.*:job-definition/(?P<name>[^:*]+):\*$"
)
_BATCH_JOBS = re.compile(rf"^Resource::arn:{_PARTITION}:batch:.*:job/\*$")
_TRAINING_JOBS = re.compile(
    rf"^Resource::arn:{_PARTITION}:sagemaker:.*:training-job/(?P<model>[a-z0-9-]+)-\*$"
)
#: The Step Functions role and the engines' roles of the training workflow (ADR 85).
_TRAINING_ENGINES = re.compile(r"(^|/)Training/(Engines|Workflow/StateMachine)/")


def _training_job(finding: str, statement: dict[str, Any]) -> bool:
    if finding == "Resource::*":
        return statement.get("Sid") == "TrainingJobNetworkInterfaces"
    return any(p.match(finding) for p in (_JOB_DEFINITION_REVISIONS, _BATCH_JOBS, _TRAINING_JOBS))


def _training_job_reason(finding: str, _statement: dict[str, Any]) -> str:
    if finding == "Resource::*":
        return (
            "SageMaker creates, describes and deletes the training instance's network "
            "interfaces in the model's subnets; their ids exist only once the job runs."
        )
    if match := _JOB_DEFINITION_REVISIONS.match(finding):
        return (
            f"Revisions of job definition {match['name']} only: each deploy that changes it "
            "adds a revision, and the workflow submits the latest."
        )
    if match := _TRAINING_JOBS.match(finding):
        return (
            f"Training jobs of model {match['model']} only: each run's job is named "
            "<model>-<digest of the execution> at run time."
        )
    return (
        "TerminateJob on this account's Batch jobs: job ARNs hold ids Batch assigns at "
        "submit; Step Functions stops the run's own job when the state times out or stops."
    )


def _cdk_roles(finding: str, statement: dict[str, Any]) -> bool:
    tag = statement.get("Condition", {}).get("StringEquals", {})
    return (
        bool(_CDK_ROLES.match(finding))
        and _actions(statement) == ["sts:AssumeRole"]
        and "iam:ResourceTag/aws-cdk:bootstrap-role" in tag
    )


def _cdk_roles_reason(_finding: str, _statement: dict[str, Any]) -> str:
    return (
        "The CDK bootstrap roles of this account and region (their names carry the "
        "bootstrap qualifier), and only those the bootstrap template tags "
        "aws-cdk:bootstrap-role: assuming them is how a deployment is made."
    )


#: Objects of a bucket defined in the same stack (its ARN is a reference): ``<Bucket.Arn>/*``.
_REFERENCED_OBJECTS = re.compile(r"^Resource::<(?P<bucket>[A-Za-z0-9]+?)[0-9A-F]{8}\.Arn>/\*$")


def _referenced_objects(finding: str, statement: dict[str, Any]) -> bool:
    return bool(_REFERENCED_OBJECTS.match(finding)) and all(
        a.startswith("s3:") for a in _actions(statement)
    )


def _referenced_objects_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _REFERENCED_OBJECTS.match(finding)
    assert match is not None
    return (
        f"Objects of bucket {match['bucket']} only (defined in this stack): S3 object ARNs "
        "need a wildcard for the key."
    )


#: A CodeBuild project's own test report groups (CDK grants ``report-group/<project>-*``).
_REPORT_GROUPS = re.compile(
    rf"^Resource::arn:{_PARTITION}:codebuild:[^:]+:[^:]+:report-group/<(?P<project>[A-Za-z0-9]+?)"
    r"[0-9A-F]{8}>-\*$"
)


def _report_groups_reason(finding: str, _statement: dict[str, Any]) -> str:
    match = _REPORT_GROUPS.match(finding)
    assert match is not None
    return (
        f"Test report groups of CodeBuild project {match['project']} only: CDK grants a "
        "project report-group/<project>-*, the names its reports get at run time."
    )


#: ``sts:AssumeRole`` on any role of one account, narrowed by the bootstrap-role tag.
_TAGGED_ACCOUNT_ROLES = re.compile(rf"^Resource::arn:(\*|{_PARTITION}):iam::\d{{12}}:role/\*$")


def _bootstrap_roles_by_tag(finding: str, statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {})
    tags = {
        key
        for operator in ("StringEquals", "ForAnyValue:StringEquals")
        for key in condition.get(operator, {})
    }
    return (
        bool(_TAGGED_ACCOUNT_ROLES.match(finding))
        and _actions(statement) == ["sts:AssumeRole"]
        and "iam:ResourceTag/aws-cdk:bootstrap-role" in tags
    )


def _bootstrap_roles_by_tag_reason(_finding: str, statement: dict[str, Any]) -> str:
    condition = statement["Condition"]
    operator = next(o for o in ("StringEquals", "ForAnyValue:StringEquals") if o in condition)
    roles = ", ".join(sorted(condition[operator]["iam:ResourceTag/aws-cdk:bootstrap-role"]))
    return (
        f"Only the CDK bootstrap roles ({roles}) of this account: the condition requires "
        "their aws-cdk:bootstrap-role tag, and assuming them is how cdk deploy works."
    )


_PROMOTION_ROLES = re.compile(
    rf"^Resource::arn:{_PARTITION}:iam::\*:role/[a-z][a-z0-9]*-\*-stage-promotion$"
)


def _promotion_roles(finding: str, statement: dict[str, Any]) -> bool:
    return bool(_PROMOTION_ROLES.match(finding)) and _actions(statement) == ["sts:AssumeRole"]


def _promotion_roles_reason(_finding: str, _statement: dict[str, Any]) -> str:
    return (
        "The stage-promotion roles of this project's other stages, in whichever accounts "
        "they are deployed (a source stage does not know its targets); each role's trust "
        "names the source account and its ML engineer role, so that decides (ADR 65)."
    )


_GUARDRAILS = re.compile(
    rf"^Resource::arn:{_PARTITION}:bedrock:(<AWS::Region>|[a-z0-9-]+):"
    r"(<AWS::AccountId>|\d{12}):guardrail/\*$"
)


def _guardrails(finding: str, statement: dict[str, Any]) -> bool:
    return bool(_GUARDRAILS.match(finding)) and _actions(statement) == ["bedrock:ApplyGuardrail"]


def _guardrails_reason(_finding: str, _statement: dict[str, Any]) -> str:
    return (
        "bedrock:ApplyGuardrail only, on the guardrails of this account and region: a "
        "prompt version names its guardrail in its spec when it is registered, after "
        "deployment, so the guardrail ids cannot be listed in advance."
    )


def _matching(pattern: re.Pattern[str]) -> Callable[[str, dict[str, Any]], bool]:
    def matches(finding: str, _statement: dict[str, Any]) -> bool:
        return bool(pattern.match(finding))

    return matches


WILDCARD_JUSTIFICATIONS: tuple[WildcardJustification, ...] = (
    WildcardJustification("resourceless-actions", _resourceless, _resourceless_reason),
    WildcardJustification("cdk-grant-action-family", _grant_family, _grant_family_reason),
    WildcardJustification("s3-object-arns", _matching(_OBJECT_ARN), _object_arn_reason),
    WildcardJustification("dynamodb-index-arns", _matching(_INDEX_ARN), _index_reason),
    WildcardJustification("lambda-version-arns", _matching(_LAMBDA_QUALIFIED), _lambda_reason),
    WildcardJustification("kms-key-by-alias", _kms_by_alias, _kms_by_alias_reason),
    WildcardJustification("log-stream-arns", _matching(_LOG_GROUP), _log_group_reason),
    WildcardJustification("api-route-arns", _matching(_API_ROUTE), _api_route_reason),
    WildcardJustification("execution-arns", _matching(_EXECUTIONS), _executions_reason),
    WildcardJustification("cdk-bootstrap-roles", _cdk_roles, _cdk_roles_reason),
    WildcardJustification("stage-promotion-roles", _promotion_roles, _promotion_roles_reason),
    WildcardJustification(
        "referenced-bucket-objects", _referenced_objects, _referenced_objects_reason
    ),
    WildcardJustification(
        "codebuild-report-groups", _matching(_REPORT_GROUPS), _report_groups_reason
    ),
    WildcardJustification(
        "bootstrap-roles-by-tag", _bootstrap_roles_by_tag, _bootstrap_roles_by_tag_reason
    ),
    WildcardJustification("bedrock-guardrails", _guardrails, _guardrails_reason),
    WildcardJustification(
        "training-engine-jobs", _training_job, _training_job_reason, _TRAINING_ENGINES
    ),
)


def flatten_reference(node: Any) -> str:
    """cdk-nag's ``flattenCfnReference``: intrinsics to a flat string (``<Ref>``, ``<Id.Attr>``)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(i) for i in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    import json

    return json.dumps(node, separators=(",", ":"))


def statement_findings(statement: dict[str, Any]) -> list[str]:
    """cdk-nag's ``IAMNoWildcardPermissions`` findings of one statement."""
    if statement.get("Effect") != "Allow":
        return []
    findings = [f"Action::{a}" for a in _actions(statement) if "*" in a]
    resources = statement.get("Resource", [])
    resources = resources if isinstance(resources, list) else [resources]
    for resource in resources:
        flat = flatten_reference(resource)
        if "*" in flat:
            findings.append(f"Resource::{flat}")
    return findings


def acknowledge_iam_wildcards(
    stack: Stack, justifications: Sequence[WildcardJustification] = ()
) -> list[tuple[str, str]]:
    """Acknowledge every justified IAM5 finding of every policy (inline or managed) in ``stack``.

    A finding is acknowledged only if *every* statement that produces it matches a
    justification (``justifications`` first, then :data:`WILDCARD_JUSTIFICATIONS`; two
    statements can yield the same finding). Call once all grants are made. Returns the
    ``(path, finding)`` pairs left unjustified: they stay findings and fail the nag check.
    """
    unjustified: list[tuple[str, str]] = []
    for node in stack.node.find_all():
        if not isinstance(node, iam.CfnPolicy | iam.CfnManagedPolicy):
            continue
        document = stack.resolve(node.policy_document)
        path = node.node.path
        candidates = [
            j
            for j in (*justifications, *WILDCARD_JUSTIFICATIONS)
            if j.where is None or j.where.search(path)
        ]
        reasons: dict[str, list[str | None]] = {}
        for statement in document.get("Statement", []):
            for finding in statement_findings(statement):
                justification = next((j for j in candidates if j.matches(finding, statement)), None)
                reasons.setdefault(finding, []).append(
                    justification.reason(finding, statement) if justification else None
                )
        for finding, found in reasons.items():
            if any(r is None for r in found):
                unjustified.append((node.node.path, finding))
                continue
            reason = " ".join(dict.fromkeys(r for r in found if r))
            acknowledge(node, f"AwsSolutions-IAM5[{finding}]", reason)
    return unjustified


# --- the reviewed list ------------------------------------------------------------------


#: A reference to a resource in a flattened ARN (``<ApiCD79AAA0>``): its logical id's hash.
_HASHED_REFERENCE = re.compile(r"<([A-Za-z0-9]+?)[0-9A-F]{8}((?:\.[A-Za-z]+)?)>")


def collect_acknowledgements(app: App, *, prefix: str) -> list[dict[str, str]]:
    """Every acknowledgement in ``app``: construct path, full rule id, reason.

    ``prefix`` (the stage's resource prefix) is replaced by ``{prefix}`` so one reviewed
    text serves every stage; references to resources lose their logical ids' hashes
    (``<Api>``), which say nothing to a reviewer.
    """
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found: list[dict[str, str]] = []
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key or not entry.data:
                continue
            for rule_id, reason in dict(entry.data).items():
                found.append(
                    {
                        "path": construct.node.path,
                        "id": _HASHED_REFERENCE.sub(
                            r"<\1\2>",
                            re.sub(r"^annotation::", "", rule_id, flags=re.IGNORECASE),
                        ).replace(prefix, "{prefix}"),
                        "reason": str(reason).replace(prefix, "{prefix}"),
                    }
                )
    return sorted(found, key=lambda a: (a["path"], a["id"]))
