"""``FlywheelCiAccess``: GitHub Actions' deploy role for one stage (an admin deploys it once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import CfnOutput, Stack

from infra.constructs.github_oidc import GitHubDeployAccess
from infra.nag import acknowledge

if TYPE_CHECKING:
    from constructs import Construct

    from infra.config import CiConfig

#: Construct id of the stack (``-c ci=true`` adds it to the app).
CI_ACCESS_STACK_ID = "FlywheelCiAccess"


class CiAccessStack(Stack):
    """The OIDC provider (unless imported) and the ``<prefix>-github-deploy`` role."""

    def __init__(
        self, scope: Construct, construct_id: str, *, ci: CiConfig, prefix: str, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        access = GitHubDeployAccess(self, "GitHub", ci=ci, prefix=prefix)
        policy = access.role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/"
            "cdk-hnb659fds-*-<AWS::AccountId>-<AWS::Region>]",
            "The CDK bootstrap roles (deploy, file and image publishing, lookup) share this name "
            "pattern; the statement also requires their aws-cdk:bootstrap-role tag.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
            "<AWS::AccountId>:*/*/POST/v1/models/*/retrain]",
            "The API lives in another stack and its id is not known here; the ARN allows only "
            "POST on the retrain route, for any model name (CI retrains the models that changed).",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:"
            "<AWS::AccountId>:*/*/POST/v1/models/*/config]",
            "The API lives in another stack and its id is not known here; the ARN allows only "
            "POST on the config route, for any model name (CI stores the project's configs).",
        )
        CfnOutput(self, "DeployRoleArn", value=access.role.role_arn)
