"""GitHub Actions' way into a stage: the account's OIDC provider and one deploy role.

The role trusts tokens of one repository and one branch (or one GitHub environment), for
audience ``sts.amazonaws.com``, with ``StringEquals`` only. It may assume the CDK bootstrap
roles of its account and region, call the API's retrain route and read the stage's
platform record (what ``flywheel retrain`` and the smoke tests look up); nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.cicd.github import deploy_role_name

if TYPE_CHECKING:
    from infra.config import CiConfig

GITHUB_ISSUER = "token.actions.githubusercontent.com"
#: The roles ``cdk bootstrap`` creates (default qualifier), by their ``aws-cdk:bootstrap-role`` tag.
BOOTSTRAP_ROLE_TAGS = ("deploy", "file-publishing", "image-publishing", "lookup")


def github_subject(ci: CiConfig) -> str:
    """The token's ``sub`` the role trusts: the branch, or the environment when one is set.

    Examples
    --------
    >>> from infra.config import CiConfig
    >>> github_subject(CiConfig(github_repository="acme/ml"))
    'repo:acme/ml:ref:refs/heads/main'
    >>> github_subject(CiConfig(github_repository="acme/ml", environment="prod"))
    'repo:acme/ml:environment:prod'
    """
    if ci.environment is not None:
        return f"repo:{ci.github_repository}:environment:{ci.environment}"
    return f"repo:{ci.github_repository}:ref:refs/heads/{ci.branch}"


class GitHubDeployAccess(Construct):
    """The OIDC provider (created, or imported by ARN) and the stage's deploy role."""

    def __init__(self, scope: Construct, construct_id: str, *, ci: CiConfig, prefix: str) -> None:
        super().__init__(scope, construct_id)
        if ci.oidc_provider_arn is not None:
            provider_arn = ci.oidc_provider_arn
        else:
            provider = iam.OidcProviderNative(
                self, "Provider", url=f"https://{GITHUB_ISSUER}", client_ids=["sts.amazonaws.com"]
            )
            provider_arn = provider.oidc_provider_arn
        self.role = iam.Role(
            self,
            "DeployRole",
            role_name=deploy_role_name(prefix),
            description=f"GitHub Actions ({github_subject(ci)}) deploys {prefix} and asks for runs",
            max_session_duration=Duration.hours(1),
            assumed_by=iam.WebIdentityPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
                        f"{GITHUB_ISSUER}:sub": github_subject(ci),
                    }
                },
            ),
        )
        account, region, partition = Aws.ACCOUNT_ID, Aws.REGION, Aws.PARTITION
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[
                    f"arn:{partition}:iam::{account}:role/cdk-hnb659fds-*-{account}-{region}"
                ],
                conditions={
                    "StringEquals": {
                        "iam:ResourceTag/aws-cdk:bootstrap-role": list(BOOTSTRAP_ROLE_TAGS)
                    }
                },
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="StoreConfigsAndAskForTrainingRuns",
                actions=["execute-api:Invoke"],
                resources=[
                    f"arn:{partition}:execute-api:{region}:{account}:*/*/POST/v1/models/*/{route}"
                    for route in ("config", "retrain")
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThePlatformRecord",
                actions=["ssm:GetParameter"],
                resources=[
                    f"arn:{partition}:ssm:{region}:{account}:parameter/flywheel/{prefix}/platform"
                ],
            )
        )
