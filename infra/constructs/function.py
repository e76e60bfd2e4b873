"""A Flywheel Lambda function: its own role, its own log group, Flywheel's defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from aws_cdk import Annotations, Duration, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.catalog import LAYERS, FunctionSpec
from infra.nag import acknowledge

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from infra.context import StageContext

PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_12


def powertools_dimensions(spec: FunctionSpec, **dimensions: str) -> dict[str, str]:
    """The dimensions of a metric a function emits through Powertools ``Metrics``: the
    ones it adds, plus ``service`` (its ``POWERTOOLS_SERVICE_NAME``, the function key)."""
    return {**dimensions, "service": spec.key}


class _CommonProps(TypedDict):
    """The keyword arguments zip and image functions share (checked against both)."""

    function_name: str
    description: str
    role: iam.IRole
    memory_size: int
    timeout: Duration
    architecture: lambda_.Architecture
    tracing: lambda_.Tracing
    log_group: logs.ILogGroup
    logging_format: lambda_.LoggingFormat
    application_log_level_v2: lambda_.ApplicationLogLevel
    system_log_level_v2: lambda_.SystemLogLevel
    environment: Mapping[str, str]
    reserved_concurrent_executions: int | None
    dead_letter_queue: sqs.IQueue | None


class SharedLayers(Construct):
    """The layers of one stack, all from the same assets (uploaded once per app)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        keys: Sequence[str],
        stack_key: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.layers: dict[str, lambda_.ILayerVersion] = {
            key: lambda_.LayerVersion(
                self,
                key.title().replace("-", ""),
                layer_version_name=ctx.naming.layer(f"{stack_key}-{key}"),
                description=LAYERS[key].description,
                code=ctx.assets.layer_code(stack, key),
                compatible_runtimes=[PYTHON_RUNTIME],
                compatible_architectures=[lambda_.Architecture.X86_64],
            )
            for key in keys
        }


class FlywheelFunction(Construct):
    """One function of the catalogue (``infra.catalog.FUNCTIONS``).

    - one IAM role per function, with no managed policies: it may write its own log
      group and send X-Ray traces; everything else is granted by the owning construct;
    - an explicit log group with the stage's retention (no log-retention custom resource);
    - X-Ray active tracing, JSON logs, explicit memory and timeout;
    - zip functions share the ``functions/`` asset and take their layers from the stack's
      :class:`SharedLayers`; image functions run the training image with their handler
      as ``CMD``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        spec: FunctionSpec,
        layers: Mapping[str, lambda_.ILayerVersion] | None = None,
        environment: Mapping[str, str] | None = None,
        model: str | None = None,
        memory_mb: int | None = None,
        timeout_seconds: int | None = None,
        reserved_concurrency: int | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        sync_only_reason: str | None = None,
        snap_start: bool | None = None,
        fixed_role_name: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.spec = spec
        self.function_name = ctx.naming.function(spec.key, model)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=ctx.naming.log_group("lambda", self.function_name),
            retention=ctx.log_retention,
            removal_policy=ctx.removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {self.function_name} (this function only)",
            # A fixed name lets policies elsewhere (a key policy) name the role up front.
            role_name=self.function_name if fixed_role_name else None,
        )
        self.log_group.grant_write(self.role)

        env = {
            "POWERTOOLS_SERVICE_NAME": spec.key,
            **ctx.resource_environment(),
            **(environment or {}),
        }
        #: The variables the function is created with (later ``add_environment`` calls aside).
        self.environment: dict[str, str] = env
        common: _CommonProps = {
            "function_name": self.function_name,
            "description": spec.description,
            "role": self.role,
            "memory_size": memory_mb or spec.memory_mb,
            "timeout": Duration.seconds(timeout_seconds or spec.timeout_seconds),
            "architecture": lambda_.Architecture.X86_64,
            "tracing": lambda_.Tracing.ACTIVE,
            "log_group": self.log_group,
            "logging_format": lambda_.LoggingFormat.JSON,
            "application_log_level_v2": lambda_.ApplicationLogLevel.INFO,
            "system_log_level_v2": lambda_.SystemLogLevel.WARN,
            "environment": env,
            "reserved_concurrent_executions": reserved_concurrency,
            "dead_letter_queue": dead_letter_queue,
        }
        snapshots = spec.snap_start if snap_start is None else snap_start
        if spec.packaging == "zip":
            assert layers is not None, f"{spec.key} needs its layers"
            self.function: lambda_.Function = lambda_.Function(
                self,
                "Function",
                runtime=PYTHON_RUNTIME,
                handler=spec.handler,
                code=ctx.assets.function_code(stack),
                layers=[layers[key] for key in spec.layers],
                snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snapshots else None,
                **common,
            )
            if snapshots:
                # The construct cannot see versions published outside CDK: the owner
                # creates a bootstrap version and the promotion workflow publishes the rest.
                Annotations.of(self.function).acknowledge_warning(
                    "@aws-cdk/aws-lambda:snapStartRequirePublish",
                    "Only published versions are invoked (alias live); each one is "
                    "snapshotted on publish.",
                )
            reason = (
                "Python 3.12 on purpose: the layers are built for the CPython 3.12 ABI "
                "(layers/build.py --python-version 3.12); moving to a newer runtime means "
                "rebuilding and re-measuring them, done as one change."
            )
            acknowledge(self.function, "AwsSolutions-L1", reason)
            acknowledge(self.function, "Serverless-LambdaLatestVersion", reason)
        else:
            assert spec.image is not None
            self.function = lambda_.DockerImageFunction(
                self,
                "Function",
                code=ctx.assets.image_code(stack, spec.image, spec.handler),
                ephemeral_storage_size=Size.mebibytes(ctx.config.training_ephemeral_storage_mb)
                if (memory_mb or spec.memory_mb) > 1024
                else None,
                **common,
            )
        if dead_letter_queue is None:
            acknowledge(
                self.function,
                "Serverless-LambdaDLQ",
                sync_only_reason
                or "Invoked synchronously only (API Gateway or Step Functions), so Lambda "
                "never queues its events: an async dead-letter queue would stay empty. "
                "Failures surface to the caller, which retries and catches them.",
            )
