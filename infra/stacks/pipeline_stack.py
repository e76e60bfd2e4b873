"""``FlywheelPipeline``: a self-mutating CDK Pipeline (CodePipeline) that deploys every stage.

Source (a CodeConnections connection, or CodeCommit) on the project's branch -> synth
(install, the project file and CI checks, the team's tests with cdk-nag and cfn-lint,
``python -m infra.build_assets``, ``cdk synth``, cfn-lint on every template) -> the
pipeline updates itself -> the first stage -> its smoke tests (``pytest -m deployed``) ->
for every later stage, a manual approval, then the stage. Each stage is the same stacks
``cdk deploy -c stage=<name>`` deploys, in the stage's own account, through its CDK
bootstrap roles (which must trust the pipeline's account).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from flywheel.cicd import team
from infra.nag import (
    WildcardJustification,
    acknowledge,
    acknowledge_iam_wildcards,
    flatten_reference,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from constructs import Construct

    from flywheel.project import CodePipelineCi
    from infra.config import StageConfig
    from infra.stage import FlywheelStage

#: Construct id of the stack (``-c pipeline=true`` builds the app around it).
PIPELINE_STACK_ID = "FlywheelPipeline"
#: Where the synth step writes the cloud assembly.
CLOUD_ASSEMBLY = "cdk.out"


def synth_commands(stages: list[StageConfig]) -> list[str]:
    """The synth step: checks, the team's tests, the assets, the synth, cfn-lint."""
    return [
        team.CHECK_PROJECT,
        team.UNIT_TESTS,
        team.BUILD_ASSETS,
        team.cdk("synth", extra="-c pipeline=true"),
        team.lint_templates(CLOUD_ASSEMBLY, regions=[s.region or "" for s in stages]),
    ]


class PipelineStack(Stack):
    """The pipeline, its encrypted artifact bucket (with access logs) and its CodeBuild
    projects, in the first stage's account and region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        project: str,
        ci: CodePipelineCi,
        stages: list[StageConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.project = project
        self.first = stages[0]
        self.repository: codecommit.IRepository | None = None
        artifacts = self._artifact_bucket()
        self.source = self._source(ci)
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{project}-flywheel",
            artifact_bucket=artifacts,
            self_mutation=True,
            cli_version=team.CDK_CLI_VERSION,
            publish_assets_in_parallel=False,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                    compute_type=codebuild.ComputeType.SMALL,
                ),
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {
                        "phases": {
                            "install": {
                                "runtime-versions": {
                                    "python": team.PYTHON_VERSION,
                                    "nodejs": team.NODE_VERSION,
                                }
                            }
                        }
                    }
                ),
                timeout=Duration.minutes(60),
            ),
            # The tests, the synth of every stage and the training image want more memory.
            synth_code_build_defaults=_medium(),
            asset_publishing_code_build_defaults=_medium(),
            synth=pipelines.ShellStep(
                "Synth",
                input=self.source,
                install_commands=[team.INSTALL, team.INSTALL_CDK],
                commands=synth_commands(stages),
                primary_output_directory=CLOUD_ASSEMBLY,
            ),
        )

    def _artifact_bucket(self) -> s3.Bucket:
        """KMS-encrypted (rotated key), TLS-only, private, versioned, with access logs."""
        logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(90), noncurrent_version_expiration=Duration.days(1)
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            logs,
            "AwsSolutions-S1",
            "This bucket is the server-access-log target of the pipeline's artifact bucket; "
            "logging it into itself would create a feedback loop. It holds logs only.",
        )
        key = kms.Key(
            self,
            "ArtifactsKey",
            description=f"{self.project}: pipeline artifacts (cross-account deployments)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        return s3.Bucket(
            self,
            "ArtifactsBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(90),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _source(self, ci: CodePipelineCi) -> pipelines.CodePipelineSource:
        if ci.connection_arn is not None:
            return pipelines.CodePipelineSource.connection(
                ci.repository, ci.branch, connection_arn=ci.connection_arn, trigger_on_push=True
            )
        self.repository = codecommit.Repository.from_repository_name(
            self, "Repository", ci.repository
        )
        return pipelines.CodePipelineSource.code_commit(self.repository, ci.branch)

    def add_stages(self, stages: list[FlywheelStage]) -> None:
        """Deploy ``stages`` in order: smoke tests after the first, an approval before each
        later one; then build the pipeline and acknowledge its reviewed findings."""
        for index, stage in enumerate(stages):
            if index == 0:
                self.pipeline.add_stage(stage, post=[self._smoke_tests(stage.config)])
            else:
                approval = pipelines.ManualApprovalStep(
                    f"Promote-{stage.config.stage}",
                    comment=(
                        f"Deploy {self.project} to {stage.config.stage} "
                        f"({stage.config.account}, {stage.config.region})? "
                        f"{self.first.stage} is deployed and its smoke tests passed."
                    ),
                )
                self.pipeline.add_stage(stage, pre=[approval])
        self.pipeline.build_pipeline()
        self._acknowledge()
        if self.repository is not None:
            for rule in self.repository.node.find_all():
                if isinstance(rule, events.CfnRule):
                    acknowledge(
                        rule,
                        "Serverless-EventBusDLQ",
                        "The target starts the pipeline on a push; EventBridge retries it for "
                        "24 hours and a lost start is repaired by the next push (or a manual "
                        "release), so a queue of undelivered pushes would hold nothing to replay.",
                    )

    def _smoke_tests(self, config: StageConfig) -> pipelines.CodeBuildStep:
        """The project's model configs stored in the first stage (which lives in this
        account), then ``pytest -m deployed`` against it."""
        arn = f"arn:{Aws.PARTITION}"
        where = f"{config.region}:{config.account}"
        return pipelines.CodeBuildStep(
            f"SmokeTests-{config.stage}",
            input=self.source,
            install_commands=[team.INSTALL],
            commands=[
                team.apply_configs_and_retrain(
                    config.stage, commit="$CODEBUILD_RESOLVED_SOURCE_VERSION"
                ),
                team.SMOKE_TESTS,
            ],
            env={
                "FLYWHEEL_BACKEND": "aws",
                "FLYWHEEL_PROJECT": self.project,
                "FLYWHEEL_STAGE": config.stage,
                "FLYWHEEL_REGION": config.region or "",
            },
            role_policy_statements=[
                iam.PolicyStatement(
                    sid="ReadThePlatformRecord",
                    actions=["ssm:GetParameter"],
                    resources=[f"{arn}:ssm:{where}:parameter/flywheel/{config.prefix}/platform"],
                ),
                iam.PolicyStatement(
                    sid="StoreTheProjectsModelConfigsAndRetrainTheChanged",
                    actions=["execute-api:Invoke"],
                    resources=[
                        f"{arn}:execute-api:{where}:*/{config.stage}/POST/v1/models/*/{route}"
                        for route in ("config", "retrain")
                    ],
                ),
                iam.PolicyStatement(
                    sid="CallTheRetrainRouteForNoModel",
                    actions=["execute-api:Invoke"],
                    resources=[
                        f"{arn}:execute-api:{where}:*/{config.stage}/POST/v1/models/"
                        f"{team.SMOKE_MODEL}/retrain"
                    ],
                ),
            ],
        )

    def _acknowledge(self) -> None:
        """IAM wildcards: CDK Pipelines' own (:data:`PIPELINE_WILDCARDS`), then the
        reviewed shapes of infra/nag.py; anything else stays a finding and fails synth."""
        acknowledge_iam_wildcards(self, PIPELINE_WILDCARDS)


def _medium() -> pipelines.CodeBuildOptions:
    return pipelines.CodeBuildOptions(
        build_environment=codebuild.BuildEnvironment(compute_type=codebuild.ComputeType.MEDIUM)
    )


_ARN = r"^Resource::arn:(<AWS::Partition>|aws[a-z-]*)"


def _finding(pattern: str) -> Callable[[str, dict[str, Any]], bool]:
    compiled = re.compile(pattern)

    def matches(finding: str, _statement: dict[str, Any]) -> bool:
        return bool(compiled.fullmatch(finding))

    return matches


def _star_for(*actions: str) -> Callable[[str, dict[str, Any]], bool]:
    """``Resource::*`` on a statement that allows only ``actions`` (CDK may add no others)."""

    def matches(finding: str, statement: dict[str, Any]) -> bool:
        allowed = statement.get("Action", [])
        allowed = [allowed] if isinstance(allowed, str) else allowed
        return finding == "Resource::*" and set(allowed) <= set(actions)

    return matches


def _because(reason: str) -> Callable[[str, dict[str, Any]], str]:
    return lambda _finding, _statement: reason


def _artifacts_key(finding: str, statement: dict[str, Any]) -> bool:
    resources = statement.get("Resource", [])
    resources = resources if isinstance(resources, list) else [resources]
    return finding in {"Action::kms:ReEncrypt*", "Action::kms:GenerateDataKey*"} and all(
        flatten_reference(r).startswith("<ArtifactsKey") for r in resources
    )


def _artifacts_key_reason(finding: str, _statement: dict[str, Any]) -> str:
    action = finding.removeprefix("Action::")
    return (
        f"{action} with the pipeline's artifacts key only: CDK Pipelines' grant for reading "
        "and writing the encrypted pipeline artifacts."
    )


_ASSETS = re.compile(r"/Assets/(File|Docker)Role/")
#: Wildcards of CDK Pipelines' own roles, by role (construct path) and finding, with why.
PIPELINE_WILDCARDS: tuple[WildcardJustification, ...] = (
    WildcardJustification("pipeline-artifacts-key", _artifacts_key, _artifacts_key_reason),
    WildcardJustification(
        "self-mutation-reads",
        _star_for("cloudformation:DescribeStacks", "s3:ListBucket"),
        _because(
            "cloudformation:DescribeStacks and s3:ListBucket only: the self-mutation step's "
            "cdk deploy reads stack state and the bootstrap bucket's listing (CDK Pipelines)."
        ),
        where=re.compile(r"/UpdatePipeline/SelfMutation/Role/"),
    ),
    WildcardJustification(
        "asset-publishing-builds",
        _star_for("codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"),
        _because(
            "codebuild:StartBuild, StopBuild and BatchGetBuilds: CDK Pipelines makes one role "
            "for every asset-publishing action before their CodeBuild projects exist."
        ),
        where=_ASSETS,
    ),
    WildcardJustification(
        "asset-publishing-logs",
        _finding(_ARN + r":logs:[^:]+:\d{12}:log-group:/aws/codebuild/\*"),
        _because(
            "Logs of the asset-publishing CodeBuild projects, which share this role (CDK "
            "Pipelines creates it before the projects, so it cannot name their log groups)."
        ),
        where=_ASSETS,
    ),
    WildcardJustification(
        "asset-publishing-reports",
        _finding(_ARN + r":codebuild:[^:]+:\d{12}:report-group/\*"),
        _because(
            "Test reports of the asset-publishing CodeBuild projects, which share this role "
            "(CDK Pipelines creates it before the projects, so it cannot name report groups)."
        ),
        where=_ASSETS,
    ),
    WildcardJustification(
        "config-route",
        _finding(
            _ARN + r":execute-api:[^:]+:\d{12}:\*/[a-z0-9]+/POST/v1/models/\*/(config|retrain)"
        ),
        _because(
            "The API lives in the stage's serving stack and its id is not known here; the "
            "ARN allows only POST on the config and retrain routes (the project's model "
            "configs stored after the deploy as this role, and a training run of each model "
            "whose config changed), for any model the project names."
        ),
        where=re.compile(r"/SmokeTests-[a-z0-9]+/"),
    ),
    WildcardJustification(
        "smoke-test-route",
        _finding(
            _ARN
            + r":execute-api:[^:]+:\d{12}:\*/[a-z0-9]+/POST/v1/models/"
            + re.escape(team.SMOKE_MODEL)
            + "/retrain"
        ),
        _because(
            "The API lives in the stage's serving stack and its id is not known here; the "
            "ARN allows only POST on the retrain route of a model that does not exist."
        ),
        where=re.compile(r"/SmokeTests-[a-z0-9]+/"),
    ),
)
