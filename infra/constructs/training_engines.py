"""Where a model's Train step runs when it is not the Lambda function (ADR 85).

For each model with ``training.engine: batch``: a Fargate (or Fargate Spot) compute
environment in the model's subnets, a job queue and a job definition running the training
image's ``train`` command, with an execution role (pull the image, write the job's log
group) and a job role (the Train step's data access, nothing more). For each model with
``training.engine: sagemaker``: a training job role with the same data access (plus the
image pull and SageMaker's log group), and the state's parameters. The state machine's
role gets exactly what the ``.sync`` integrations call, including the Step Functions
managed EventBridge rule each one uses to learn that a job finished.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.workflows.training_engines import TRAIN_COMMAND, BatchJob, EngineJob, SageMakerJob

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aws_cdk import aws_ecr_assets as ecr_assets
    from aws_cdk import aws_stepfunctions as sfn

    from flywheel.training.engines import BatchEngineSettings, SageMakerEngineSettings
    from infra.config import ModelConfig
    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: The Train step's data: it reads the snapshot and its stored state, writes the model's
#: artifacts and its result (``training-jobs/``); records go through the records writer.
JOB_READS = ("training-sets/", "training-jobs/")
JOB_WRITES = ("models/", "training-jobs/")
#: The rules Step Functions creates to hear that a job finished (``.sync``).
BATCH_SYNC_RULE = "StepFunctionsGetEventsForBatchJobsRule"
SAGEMAKER_SYNC_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
#: SageMaker training jobs log here (the service picks the group; one per account).
SAGEMAKER_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
#: A Fargate Spot task that AWS reclaims stops with this reason; only it is retried.
SPOT_INTERRUPTED = "Your Spot Task was interrupted*"


def _title(name: str) -> str:
    return "".join(part.title() for part in name.split("-"))


class TrainingEngines(Construct):
    """The job resources of every model that does not train in the Lambda function.

    ``environment`` is what the Train function runs with (the stage's resource names and
    the records writer's); the jobs run with the same, so the same composition root builds
    the same step.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        models: Sequence[ModelConfig],
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._ctx = ctx
        self._data = data
        self.environment = {
            **environment,
            "POWERTOOLS_SERVICE_NAME": "training-job",
            "AWS_DEFAULT_REGION": Aws.REGION,
        }
        self.image: ecr_assets.DockerImageAsset = ctx.assets.image_asset(self, "Image", "training")
        self.jobs: dict[str, EngineJob] = {}
        self.roles: dict[str, iam.Role] = {}
        for model in models:
            settings = model.training
            if settings.batch is not None:
                self.jobs[model.name] = self._batch(model.name, settings.batch)
            elif settings.sagemaker is not None:
                self.jobs[model.name] = self._sagemaker(model.name, settings.sagemaker)

    # -- shared -----
    def _grant_train_data(self, role: iam.Role) -> None:
        """What the Train step touches, as its function's role has it (and the job's I/O)."""
        data = self._data
        data.grant_registry_read(role)
        data.grant_writer_capability(role, "training-runs")
        for prefix in JOB_READS:
            data.artifacts.grant_read(role, f"{prefix}*")
        for prefix in JOB_WRITES:
            data.artifacts.grant_put(role, f"{prefix}*")

    # -- AWS Batch on Fargate -----
    def _batch(self, model: str, settings: BatchEngineSettings) -> BatchJob:
        ctx = self._ctx
        name = f"{ctx.config.prefix}-{model}-training"
        scope = Construct(self, f"Batch{_title(model)}")
        log_group = logs.LogGroup(
            scope,
            "Logs",
            log_group_name=ctx.naming.log_group("batch", f"{model}-training"),
            retention=ctx.log_retention,
            removal_policy=ctx.removal_policy,
        )
        execution_role = iam.Role(
            scope,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"{name}: pull the training image and write the job's log group",
        )
        self.image.repository.grant_pull(execution_role)
        log_group.grant_write(execution_role)
        job_role = iam.Role(
            scope,
            "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"{name}: the Train step's data access (as its function's role)",
        )
        self._grant_train_data(job_role)
        self.roles[model] = job_role
        compute = batch.CfnComputeEnvironment(
            scope,
            "Compute",
            type="MANAGED",
            state="ENABLED",
            compute_environment_name=name,
            compute_resources=batch.CfnComputeEnvironment.ComputeResourcesProperty(
                type="FARGATE_SPOT" if settings.spot else "FARGATE",
                # The run lock lets one run of a model train at a time.
                maxv_cpus=max(1, math.ceil(settings.vcpu)),
                subnets=list(settings.subnets),
                security_group_ids=list(settings.security_groups),
            ),
        )
        queue = batch.CfnJobQueue(
            scope,
            "Queue",
            job_queue_name=name,
            priority=1,
            state="ENABLED",
            compute_environment_order=[
                batch.CfnJobQueue.ComputeEnvironmentOrderProperty(
                    compute_environment=compute.attr_compute_environment_arn, order=1
                )
            ],
        )
        evaluate = [batch.CfnJobDefinition.EvaluateOnExitProperty(action="EXIT", on_reason="*")]
        if settings.spot:
            evaluate.insert(
                0,
                batch.CfnJobDefinition.EvaluateOnExitProperty(
                    action="RETRY", on_status_reason=SPOT_INTERRUPTED
                ),
            )
        definition = batch.CfnJobDefinition(
            scope,
            "Definition",
            type="container",
            job_definition_name=name,
            platform_capabilities=["FARGATE"],
            container_properties=batch.CfnJobDefinition.ContainerPropertiesProperty(
                image=self.image.image_uri,
                command=[TRAIN_COMMAND],
                job_role_arn=job_role.role_arn,
                execution_role_arn=execution_role.role_arn,
                resource_requirements=[
                    batch.CfnJobDefinition.ResourceRequirementProperty(
                        type="VCPU", value=f"{settings.vcpu:g}"
                    ),
                    batch.CfnJobDefinition.ResourceRequirementProperty(
                        type="MEMORY", value=str(settings.memory_mb)
                    ),
                ],
                environment=[
                    batch.CfnJobDefinition.EnvironmentProperty(name=key, value=value)
                    for key, value in sorted(self.environment.items())
                ],
                log_configuration=batch.CfnJobDefinition.LogConfigurationProperty(
                    log_driver="awslogs",
                    options={
                        "awslogs-group": log_group.log_group_name,
                        "awslogs-stream-prefix": model,
                    },
                ),
                network_configuration=batch.CfnJobDefinition.NetworkConfigurationProperty(
                    assign_public_ip="ENABLED" if settings.assign_public_ip else "DISABLED"
                ),
                fargate_platform_configuration=batch.CfnJobDefinition.FargatePlatformConfigurationProperty(
                    platform_version="LATEST"
                ),
                ephemeral_storage=batch.CfnJobDefinition.EphemeralStorageProperty(
                    size_in_gib=settings.ephemeral_storage_gb
                ),
                runtime_platform=batch.CfnJobDefinition.RuntimePlatformProperty(
                    cpu_architecture="X86_64", operating_system_family="LINUX"
                ),
            ),
            timeout=batch.CfnJobDefinition.TimeoutProperty(
                attempt_duration_seconds=settings.timeout_minutes * 60
            ),
            retry_strategy=batch.CfnJobDefinition.RetryStrategyProperty(
                attempts=settings.spot_attempts if settings.spot else 1,
                evaluate_on_exit=evaluate,
            ),
        )
        return BatchJob(job_queue=queue.ref, job_definition=definition.ref, settings=settings)

    # -- SageMaker training jobs -----
    def _sagemaker(self, model: str, settings: SageMakerEngineSettings) -> SageMakerJob:
        ctx = self._ctx
        stack = Stack.of(self)
        role = iam.Role(
            self,
            f"SageMaker{_title(model)}Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=(
                f"{ctx.config.prefix}-{model}-training: the Train step's data access, the "
                "training image and SageMaker's log group"
            ),
        )
        self._grant_train_data(role)
        self.image.repository.grant_pull(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TrainingJobLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{SAGEMAKER_LOG_GROUP}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        # Output, checkpoints and the ML storage volume are encrypted with the stage key;
        # the volume's encryption is a grant SageMaker creates with this role.
        self._data.key.grant_encrypt_decrypt(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TrainingVolumeKeyGrant",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[stack.format_arn(service="kms", resource="key", resource_name="*")],
                conditions={
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": ctx.naming.data_key_alias},
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            )
        )
        if settings.spot:
            self._data.artifacts.grant_read_write(role, f"checkpoints/{model}/*")
        self._data.artifacts.grant_put(role, f"training-jobs/{model}/output/*")
        if settings.subnets:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="TrainingJobNetworkInterfaces",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],
                )
            )
        self.roles[model] = role
        return SageMakerJob(
            model=model,
            role_arn=role.role_arn,
            image_uri=self.image.image_uri,
            bucket=self._data.artifacts.bucket_name,
            kms_key_id=self._data.key.key_arn,
            settings=settings,
            environment=dict(sorted(self.environment.items())),
        )

    # -- the state machine's role -----
    def grant_start(self, machine: sfn.StateMachine) -> None:
        """What the ``.sync`` integrations call, on these jobs only."""
        stack = Stack.of(self)
        batch_jobs = {m: j for m, j in self.jobs.items() if isinstance(j, BatchJob)}
        sagemaker_jobs = {m: j for m, j in self.jobs.items() if isinstance(j, SageMakerJob)}
        rules = []
        if batch_jobs:
            names = [f"{self._ctx.config.prefix}-{m}-training" for m in sorted(batch_jobs)]
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    sid="SubmitTrainingJobs",
                    actions=["batch:SubmitJob"],
                    resources=[
                        *(j.job_queue for _, j in sorted(batch_jobs.items())),
                        *(_arn(stack, "batch", "job-definition", f"{n}:*") for n in names),
                        *(_arn(stack, "batch", "job-definition", n) for n in names),
                    ],
                )
            )
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    sid="FollowTrainingJobs",
                    actions=["batch:DescribeJobs"],  # no resource-level permissions
                    resources=["*"],
                )
            )
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    sid="StopTrainingJobs",
                    actions=["batch:TerminateJob"],
                    resources=[_arn(stack, "batch", "job", "*")],
                )
            )
            rules.append(BATCH_SYNC_RULE)
        if sagemaker_jobs:
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    sid="RunSageMakerTrainingJobs",
                    actions=[
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                    ],
                    resources=[
                        _arn(stack, "sagemaker", "training-job", f"{m}-*")
                        for m in sorted(sagemaker_jobs)
                    ],
                )
            )
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    sid="PassSageMakerTrainingRoles",
                    actions=["iam:PassRole"],
                    resources=[self.roles[m].role_arn for m in sorted(sagemaker_jobs)],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                )
            )
            rules.append(SAGEMAKER_SYNC_RULE)
        machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="SyncIntegrationRules",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[_arn(stack, "events", "rule", rule) for rule in rules],
            )
        )


def _arn(stack: Stack, service: str, resource: str, name: str) -> str:
    return stack.format_arn(service=service, resource=resource, resource_name=name)
