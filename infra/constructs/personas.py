"""Who uses a stage: data scientist, ML engineer and approver (people), and the
applications that call its prompts (roles and policies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

if TYPE_CHECKING:
    from aws_cdk import aws_apigateway as apigw
    from aws_cdk import aws_ssm as ssm

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

DATA_SCIENTIST = "data-scientist"
ML_ENGINEER = "ml-engineer"
APPROVER = "approver"
APPLICATION = "application"
#: Persona key (role and policy name ``<prefix>-<key>``) -> what the persona does.
PERSONAS: dict[str, str] = {
    DATA_SCIENTIST: "trains models and asks for their approval; reads runs, reports, registry",
    ML_ENGINEER: "runs the platform: configures, promotes, rolls back, deploys; reads runs",
    APPROVER: "decides approvals (POST /v1/approvals/{id}); reads registry, audit, reports",
}
#: ``POST`` on this path of the stage's API is the LLM gateway (any prompt name).
PROMPTS_ROUTE = "/v1/prompts/*/invoke"
#: ``POST`` on this path registers a prompt version as the caller (any prompt name).
PROMPT_VERSIONS_ROUTE = "/v1/prompts/*/versions"
#: Tags of the CDK bootstrap roles a deployment assumes (the bootstrap template sets them).
CDK_BOOTSTRAP_ROLES = ("deploy", "lookup", "file-publishing", "image-publishing")


def approver_principals(ctx: StageContext) -> list[str]:
    """The ARNs the API lets call ``POST /v1/approvals/*`` (``approver_principals`` or
    the approver persona role)."""
    configured = ctx.config.approver_principals
    if configured is None:
        return [ctx.naming.role_arn(APPROVER)]
    account = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:"
    return [p if p.startswith("arn:") else account + p for p in configured]


class _PolicyGrantee(iam.AccountRootPrincipal):
    """People of this account, as a grantee whose grants land in one managed policy."""

    def __init__(self, policy: iam.ManagedPolicy) -> None:
        super().__init__()
        self._policy = policy

    def add_to_principal_policy(
        self, statement: iam.PolicyStatement
    ) -> iam.AddToPrincipalPolicyResult:
        self._policy.add_statements(statement)
        return iam.AddToPrincipalPolicyResult(statement_added=True, policy_dependable=self._policy)


class Personas(Construct):
    """One role and one customer-managed policy per persona (both ``<prefix>-<persona>``).

    - the roles trust this account's principals that signed in with MFA; people who come
      through IAM Identity Center get the same policy in a permission set instead (by
      name: it exists in the account);
    - data scientists and ML engineers start runs through ``POST /v1/models/*/retrain``,
      and change the registry only through their records-writer alias (``training``,
      ``operations``); only approvers reach ``POST /v1/approvals/*``;
    - data scientists and ML engineers read what ``flywheel cost report`` needs: the LLM
      usage table, the inference functions' versions and CloudWatch metrics;
    - data scientists and ML engineers may call prompts (``POST /v1/prompts/*/invoke``)
      and register prompt versions (``POST /v1/prompts/*/versions``: the route stores the
      spec and announces its approval, which their roles may not); approvers may not;
    - nobody here may put events on the bus or touch a function, a table or a bucket
      directly; ML engineers deploy by assuming the CDK bootstrap roles.

    Applications get a role and a policy of their own (``<prefix>-application``) that
    allow one thing: calling prompts through the gateway. The role trusts this account's
    principals (an application has no MFA); the policy can also be attached to an
    application's own role.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        api: apigw.RestApi,
        platform: ssm.IStringParameter,
    ) -> None:
        super().__init__(scope, construct_id)
        naming = ctx.naming
        stage = ctx.config.stage
        self.policies: dict[str, iam.ManagedPolicy] = {}
        self.roles: dict[str, iam.Role] = {}
        grantees: dict[str, iam.IGrantable] = {}
        for key, duty in PERSONAS.items():
            title = "".join(part.title() for part in key.split("-"))
            name = naming.managed_policy(key)
            policy = iam.ManagedPolicy(
                self,
                f"{title}Policy",
                managed_policy_name=name,
                description=f"{ctx.config.prefix} {key}: {duty}",
            )
            self.policies[key] = policy
            self.roles[key] = iam.Role(
                self,
                f"{title}Role",
                role_name=name,
                description=f"{ctx.config.prefix} {key} (people of this account, with MFA)",
                assumed_by=iam.AccountRootPrincipal().with_conditions(
                    {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
                ),
                managed_policies=[policy],
                max_session_duration=Duration.hours(1),
            )
            grantees[key] = _PolicyGrantee(policy)

        for grantee in grantees.values():
            data.grant_verify(grantee)
            data.artifacts.grant_read(grantee, "reports/*")
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resource_arns=[platform.parameter_arn],
            )
        for key in (DATA_SCIENTIST, ML_ENGINEER):
            grantee = grantees[key]
            data.artifacts.grant_read(grantee, "models/*")
            data.artifacts.grant_read(grantee, "training-sets/*")
            self._read_runs(grantee, ctx, "training", history=key == ML_ENGINEER)
            self._invoke(grantee, api, stage, "/v1/models/*/retrain")
            self._invoke(grantee, api, stage, PROMPTS_ROUTE)
            self._invoke(grantee, api, stage, PROMPT_VERSIONS_ROUTE)
        data.grant_writer_capability(grantees[DATA_SCIENTIST], "training")

        engineer = grantees[ML_ENGINEER]
        data.grant_writer_capability(engineer, "operations")
        # An experiment's winner (an approved version) goes to the promotion workflow.
        self._invoke(engineer, api, stage, "/v1/models/*/promotions")
        # A project's model configs (``flywheel project apply``), as CI stores them.
        self._invoke(engineer, api, stage, "/v1/models/*/config")
        self._read_runs(engineer, ctx, "promotion", history=True)
        iam.Grant.add_to_principal(
            grantee=engineer,
            actions=["sts:AssumeRole"],
            resource_arns=[
                f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-*-{Aws.ACCOUNT_ID}-{Aws.REGION}"
            ],
            conditions={
                "StringEquals": {
                    "iam:ResourceTag/aws-cdk:bootstrap-role": list(CDK_BOOTSTRAP_ROLES)
                }
            },
        )

        # Promoting a version into another stage: assume its promotion role (ADR 65);
        # that role's trust decides which source stages may.
        from infra.constructs.stage_promotion import promotion_role_pattern

        iam.Grant.add_to_principal(
            grantee=engineer,
            actions=["sts:AssumeRole"],
            resource_arns=[promotion_role_pattern(ctx.config.project)],
        )

        self._invoke(grantees[APPROVER], api, stage, "/v1/approvals/*")
        for key in (DATA_SCIENTIST, ML_ENGINEER):
            self._read_costs(grantees[key], ctx, data)
        self._application(ctx, api)

    def _application(self, ctx: StageContext, api: apigw.RestApi) -> None:
        """``<prefix>-application``: calls prompts, nothing else."""
        name = ctx.naming.managed_policy(APPLICATION)
        policy = iam.ManagedPolicy(
            self,
            "ApplicationPolicy",
            managed_policy_name=name,
            description=f"{ctx.config.prefix} {APPLICATION}: calls prompts "
            "(POST /v1/prompts/{name}/invoke), nothing else",
        )
        self.policies[APPLICATION] = policy
        self.roles[APPLICATION] = iam.Role(
            self,
            "ApplicationRole",
            role_name=name,
            description=f"{ctx.config.prefix} {APPLICATION} (services of this account)",
            assumed_by=iam.AccountRootPrincipal(),
            managed_policies=[policy],
            max_session_duration=Duration.hours(1),
        )
        self._invoke(_PolicyGrantee(policy), api, ctx.config.stage, PROMPTS_ROUTE)

    @staticmethod
    def _invoke(grantee: iam.IGrantable, api: apigw.RestApi, stage: str, path: str) -> None:
        """``execute-api:Invoke`` on ``POST <path>`` of this stage's API."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[api.arn_for_execute_api("POST", path, stage)],
        )

    @staticmethod
    def _read_costs(grantee: iam.IGrantable, ctx: StageContext, data: DataRefs) -> None:
        """What ``flywheel cost report`` reads: the usage table (counters and spend), the
        inference functions' versions (memory, pinned model version) and their metrics."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:Query", "dynamodb:Scan"],
            resource_arns=[data.llm_usage.table_arn],
        )
        data.key.grant_decrypt(grantee)
        functions = [
            ctx.naming.function_arn(f"inference-{model.name}") for model in ctx.config.models
        ]
        if functions:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["lambda:ListVersionsByFunction"],
                resource_arns=functions,
            )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["cloudwatch:GetMetricData"], resource_arns=["*"]
        )

    @staticmethod
    def _read_runs(grantee: iam.IGrantable, ctx: StageContext, key: str, *, history: bool) -> None:
        """List and describe the executions of state machine ``key`` (and their history)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:ListExecutions"],
            resource_arns=[ctx.naming.state_machine_arn(key)],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "states:DescribeExecution",
                *(["states:GetExecutionHistory"] if history else []),
            ],
            resource_arns=[ctx.naming.execution_arn(key)],
        )
