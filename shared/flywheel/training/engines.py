"""Where a model's Train step runs: the Lambda container, AWS Batch on Fargate, or a
SageMaker training job (ADR 85).

A model's ``training:`` section in the project file (``flywheel.yaml``) names the engine
and its settings; the CDK app builds the engine's resources and the training workflow's
``.sync`` state from them. Every engine runs the same image and the same training step,
so lineage, parity, audit and approval do not depend on the engine.

Examples
--------
>>> TrainingEngineSettings().engine
'lambda'
>>> batch = TrainingEngineSettings.model_validate({
...     "engine": "batch",
...     "batch": {"vcpu": 4, "memory_mb": 16384, "spot": True,
...               "subnets": ["subnet-0abc1234"], "security_groups": ["sg-0abc1234"]},
... })
>>> batch.batch.vcpu, batch.batch.spot
(4.0, True)
>>> TrainingEngineSettings.model_validate(
...     {"engine": "sagemaker", "sagemaker": {"instance_type": "ml.c5.2xlarge"}}
... ).sagemaker.volume_gb
30
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from flywheel.models import Frozen

Engine = Literal["lambda", "batch", "sagemaker"]
SubnetId = Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]
SecurityGroupId = Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]

#: Fargate's vCPU values and, for each, the memory it allows (MiB): (lowest, highest, step).
FARGATE_MEMORY: dict[float, tuple[int, int, int]] = {
    0.25: (512, 2048, 512),
    0.5: (1024, 4096, 1024),
    1.0: (2048, 8192, 1024),
    2.0: (4096, 16384, 1024),
    4.0: (8192, 30720, 1024),
    8.0: (16384, 61440, 4096),
    16.0: (32768, 122880, 8192),
}
#: SageMaker instance families with GPUs or accelerators: the training image is CPU-only
#: (scikit-learn, LightGBM and XGBoost CPU wheels), so they would cost more for nothing.
ACCELERATED_FAMILIES = ("p", "g", "trn", "inf", "dl")


def fargate_memory_options(vcpu: float) -> list[int]:
    """The memory sizes (MiB) Fargate allows with ``vcpu`` vCPUs.

    Examples
    --------
    >>> fargate_memory_options(0.25)
    [512, 1024, 1536, 2048]
    >>> fargate_memory_options(3)
    []
    """
    found = FARGATE_MEMORY.get(float(vcpu))
    if found is None:
        return []
    low, high, step = found
    return list(range(low, high + 1, step))


class BatchEngineSettings(Frozen):
    """One AWS Batch job on Fargate (or Fargate Spot) per training run.

    Fargate needs a network: the job runs in ``subnets`` with ``security_groups``, and
    must reach S3, DynamoDB, Lambda (the records writer), ECR and CloudWatch Logs (a NAT
    gateway, VPC endpoints, or ``assign_public_ip`` in a public subnet).
    """

    #: vCPUs of the job (Fargate: 0.25, 0.5, 1, 2, 4, 8 or 16).
    vcpu: float = 2.0
    #: Memory (MiB); must be one Fargate allows for ``vcpu``.
    memory_mb: int = 8192
    #: Run on Fargate Spot (up to 70% cheaper; an interrupted job is retried from the
    #: start, ``spot_attempts`` times in all).
    spot: bool = False
    spot_attempts: int = Field(default=3, ge=1, le=10)
    #: Fargate has no GPUs; any other value is refused (use ``sagemaker``).
    gpus: int = Field(default=0, ge=0)
    #: Ephemeral storage of the task (GiB); Fargate gives 20 GiB without asking.
    ephemeral_storage_gb: int = Field(default=21, ge=21, le=200)
    #: The job is stopped after this long (Batch's attempt duration).
    timeout_minutes: int = Field(default=120, ge=1, le=24 * 60)
    subnets: tuple[SubnetId, ...] = Field(min_length=1, max_length=16)
    security_groups: tuple[SecurityGroupId, ...] = Field(min_length=1, max_length=5)
    #: Give the task a public IP (a public subnet without NAT or endpoints needs it).
    assign_public_ip: bool = False

    @model_validator(mode="after")
    def _fargate(self) -> BatchEngineSettings:
        if self.gpus:
            raise ValueError(
                "gpus: Fargate has no GPUs (and the training image is CPU-only); leave it 0"
            )
        options = fargate_memory_options(self.vcpu)
        if not options:
            allowed = ", ".join(f"{v:g}" for v in FARGATE_MEMORY)
            raise ValueError(f"vcpu: Fargate offers {allowed} vCPUs, not {self.vcpu:g}")
        if self.memory_mb not in options:
            low, high, step = FARGATE_MEMORY[float(self.vcpu)]
            raise ValueError(
                f"memory_mb: with {self.vcpu:g} vCPU Fargate allows {low} to {high} MiB in "
                f"steps of {step}, not {self.memory_mb}"
            )
        return self


class SageMakerEngineSettings(Frozen):
    """One SageMaker training job per run, on one CPU instance."""

    #: A CPU instance type (``ml.m5.xlarge``, ``ml.c5.4xlarge``, ``ml.r5.2xlarge``, ...).
    instance_type: Annotated[str, Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")] = "ml.m5.xlarge"
    #: The training step runs in one process on one instance; more would train N copies.
    instance_count: int = Field(default=1, ge=1, le=1)
    #: The instance's ML storage volume (GiB).
    volume_gb: int = Field(default=30, ge=1, le=16384)
    max_runtime_minutes: int = Field(default=120, ge=1, le=24 * 60)
    #: Managed spot training: up to 90% cheaper; the job waits for capacity up to
    #: ``max_wait_minutes`` in all (queueing plus running; default the runtime plus an hour).
    spot: bool = False
    max_wait_minutes: int | None = Field(default=None, ge=1, le=48 * 60)
    #: Run in these subnets (an ENI per instance); unset: SageMaker's own network.
    subnets: tuple[SubnetId, ...] = Field(default=(), max_length=16)
    security_groups: tuple[SecurityGroupId, ...] = Field(default=(), max_length=5)

    @model_validator(mode="after")
    def _consistent(self) -> SageMakerEngineSettings:
        family = self.instance_type.split(".")[1]
        if family.startswith(ACCELERATED_FAMILIES):
            raise ValueError(
                f"instance_type: {self.instance_type} is a GPU or accelerator instance; the "
                "training image is CPU-only (choose ml.m5, ml.c5, ml.r5 or similar)"
            )
        if self.max_wait_minutes is not None and not self.spot:
            raise ValueError("max_wait_minutes: only managed spot training waits (spot: true)")
        waits = self.max_wait_minutes
        if self.spot and waits is not None and waits < self.max_runtime_minutes:
            raise ValueError(
                f"max_wait_minutes: must be at least max_runtime_minutes "
                f"({self.max_runtime_minutes}): it counts the run as well as the wait"
            )
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("subnets: a VPC needs both subnets and security_groups")
        return self

    @property
    def max_wait_seconds(self) -> int:
        """Spot only: the whole wait (queue and run), in seconds."""
        minutes = self.max_wait_minutes or min(self.max_runtime_minutes + 60, 48 * 60)
        return minutes * 60


class TrainingEngineSettings(Frozen):
    """A model's ``training:`` section of the project file: where its Train step runs."""

    engine: Engine = "lambda"
    batch: BatchEngineSettings | None = None
    sagemaker: SageMakerEngineSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _sagemaker_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("engine") == "sagemaker":
            return {**data, "sagemaker": data.get("sagemaker") or {}}
        return data

    @model_validator(mode="after")
    def _one_engine(self) -> TrainingEngineSettings:
        if self.engine == "batch" and self.batch is None:
            raise ValueError("batch: engine batch needs its settings (subnets, security_groups)")
        for other in ("batch", "sagemaker"):
            if other != self.engine and getattr(self, other) is not None:
                raise ValueError(
                    f"{other}: settings for engine {other}, but engine is {self.engine}"
                )
        return self

    @property
    def timeout_seconds(self) -> int | None:
        """The longest the engine's job may run (``None`` for Lambda: its function's)."""
        if self.batch is not None:
            return self.batch.timeout_minutes * 60
        if self.sagemaker is not None:
            seconds = self.sagemaker.max_runtime_minutes * 60
            return self.sagemaker.max_wait_seconds if self.sagemaker.spot else seconds
        return None
