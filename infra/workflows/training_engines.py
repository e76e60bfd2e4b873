"""The Train step on AWS Batch or SageMaker, as Amazon States Language (ADR 85).

For a model whose ``training.engine`` is not ``lambda`` the training workflow goes::

    BuildTrainingSet -> TrainingEngine? --lambda--> Train -> Evaluate
                         \\--batch|sagemaker--> PrepareTrainingJob -> TrainingJob?
                              -> TrainJob-<model> (.sync) -> CollectTrainingJob -> Evaluate

``PrepareTrainingJob`` stores the state and names the job; ``TrainJob-<model>`` runs the
training image's ``train`` command through the service's ``.sync`` integration (Step
Functions waits for the job, through a managed EventBridge rule); ``CollectTrainingJob``
puts the job's result where ``Train``'s would be (``$.training.Payload``), so every later
state is the same for every engine. Pure data, like :mod:`infra.workflows.asl`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from infra.workflows.asl import State, catch_all

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flywheel.training.engines import BatchEngineSettings, SageMakerEngineSettings

BATCH_SUBMIT_JOB_SYNC = "arn:aws:states:::batch:submitJob.sync"
SAGEMAKER_TRAINING_JOB_SYNC = "arn:aws:states:::sagemaker:createTrainingJob.sync"
#: The container's argument (SageMaker passes it without asking; Batch's command says it).
TRAIN_COMMAND = "train"
INPUT_VARIABLE = "FLYWHEEL_TRAINING_JOB_INPUT"
INPUT_VALUE = "States.JsonToString($.training_job.Payload.input)"
JOB_NAME_PATH = "$.training_job.Payload.job_name"
#: Where ``.sync`` leaves the job's description (name, id, status: not its result).
STATUS_RESULT_PATH = "$.training_job_status"
#: Seconds a job may wait for capacity on top of its own timeout (Fargate and SageMaker
#: provisioning take minutes).
QUEUE_ALLOWANCE_SECONDS = 1800
#: Batch's own service errors (throttling, internal): resubmitting is safe, a job name is
#: not unique. SageMaker's are not retried: a training job name is used once, for good.
TRANSIENT_BATCH_ERRORS = ("Batch.AWSBatchException", "Batch.TooManyRequestsException")


def job_state_name(model: str) -> str:
    """``TrainJob-<model>``: the ``.sync`` state of one model.

    Examples
    --------
    >>> job_state_name("churn")
    'TrainJob-churn'
    """
    return f"TrainJob-{model}"


@dataclass(frozen=True)
class BatchJob:
    """What a model's Batch ``submitJob.sync`` state names (ARNs or CDK tokens)."""

    job_queue: str
    job_definition: str
    settings: BatchEngineSettings

    def state(self, *, on_error: str, next_state: str) -> State:
        return {
            "Type": "Task",
            "Comment": "Run the Train step on AWS Batch (Fargate) and wait for the job.",
            "Resource": BATCH_SUBMIT_JOB_SYNC,
            "Parameters": {
                "JobName.$": JOB_NAME_PATH,
                "JobQueue": self.job_queue,
                "JobDefinition": self.job_definition,
                "ContainerOverrides": {
                    "Environment": [{"Name": INPUT_VARIABLE, "Value.$": INPUT_VALUE}]
                },
            },
            "ResultSelector": {
                "JobId.$": "$.JobId",
                "JobName.$": "$.JobName",
                "Status.$": "$.Status",
            },
            "ResultPath": STATUS_RESULT_PATH,
            "TimeoutSeconds": self.settings.timeout_minutes
            * 60
            * (self.settings.spot_attempts if self.settings.spot else 1)
            + QUEUE_ALLOWANCE_SECONDS,
            "Retry": [
                {
                    "ErrorEquals": list(TRANSIENT_BATCH_ERRORS),
                    "IntervalSeconds": 5,
                    "MaxAttempts": 3,
                    "BackoffRate": 2.0,
                    "MaxDelaySeconds": 60,
                    "JitterStrategy": "FULL",
                }
            ],
            "Catch": catch_all(on_error),
            "Next": next_state,
        }


@dataclass(frozen=True)
class SageMakerJob:
    """What a model's ``createTrainingJob.sync`` state names (ARNs or CDK tokens)."""

    model: str
    role_arn: str
    image_uri: str
    bucket: str
    kms_key_id: str
    settings: SageMakerEngineSettings
    environment: Mapping[str, str] = field(default_factory=dict)

    def state(self, *, on_error: str, next_state: str) -> State:
        settings = self.settings
        resources: State = {
            "InstanceType": settings.instance_type,
            "InstanceCount": settings.instance_count,
            "VolumeSizeInGB": settings.volume_gb,
        }
        if not has_instance_storage(settings.instance_type):
            # Instance types with NVMe storage encrypt it themselves and refuse a key.
            resources["VolumeKmsKeyId"] = self.kms_key_id
        stopping: State = {"MaxRuntimeInSeconds": settings.max_runtime_minutes * 60}
        parameters: State = {
            "TrainingJobName.$": JOB_NAME_PATH,
            "RoleArn": self.role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": "File",
            },
            "ResourceConfig": resources,
            "StoppingCondition": stopping,
            "OutputDataConfig": {
                "S3OutputPath": f"s3://{self.bucket}/training-jobs/{self.model}/output/",
                "KmsKeyId": self.kms_key_id,
            },
            "Environment": {**self.environment, f"{INPUT_VARIABLE}.$": INPUT_VALUE},
            # The job reads the training set and writes artifacts and records through the
            # AWS APIs itself, which network isolation would block (ADR 85).
            "EnableNetworkIsolation": False,
        }
        if settings.spot:
            stopping["MaxWaitTimeInSeconds"] = settings.max_wait_seconds
            parameters["EnableManagedSpotTraining"] = True
            parameters["CheckpointConfig"] = {
                "S3Uri.$": f"States.Format('s3://{self.bucket}/checkpoints/{self.model}/{{}}/', "
                "$.lock.Payload.run_id)"
            }
        if settings.subnets:
            parameters["VpcConfig"] = {
                "Subnets": list(settings.subnets),
                "SecurityGroupIds": list(settings.security_groups),
            }
        wait = settings.max_wait_seconds if settings.spot else stopping["MaxRuntimeInSeconds"]
        return {
            "Type": "Task",
            "Comment": "Run the Train step as a SageMaker training job and wait for it.",
            "Resource": SAGEMAKER_TRAINING_JOB_SYNC,
            "Parameters": parameters,
            "ResultSelector": {
                "TrainingJobName.$": "$.TrainingJobName",
                "TrainingJobArn.$": "$.TrainingJobArn",
                "TrainingJobStatus.$": "$.TrainingJobStatus",
            },
            "ResultPath": STATUS_RESULT_PATH,
            "TimeoutSeconds": wait + QUEUE_ALLOWANCE_SECONDS,
            "Catch": catch_all(on_error),
            "Next": next_state,
        }


EngineJob = BatchJob | SageMakerJob


def has_instance_storage(instance_type: str) -> bool:
    """Whether a SageMaker instance type has local NVMe storage (``ml.m5d.xlarge``).

    Examples
    --------
    >>> has_instance_storage("ml.m5d.xlarge"), has_instance_storage("ml.c5n.2xlarge")
    (True, False)
    """
    family = instance_type.split(".")[1]
    return re.search(r"\d[a-z]*d$", family) is not None


def engine_states(
    jobs: Mapping[str, EngineJob],
    *,
    prepare: State,
    collect: State,
    on_error: str,
    lambda_train: str,
) -> dict[str, State]:
    """The states that route engine models' runs through their jobs (``jobs``: by model)."""
    models = sorted(jobs)
    return {
        "TrainingEngine": {
            "Type": "Choice",
            "Comment": "Models that train on AWS Batch or SageMaker (training.engine).",
            "Choices": [
                {
                    "Or": [{"Variable": "$.model_name", "StringEquals": m} for m in models],
                    "Next": "PrepareTrainingJob",
                }
            ],
            "Default": lambda_train,
        },
        "PrepareTrainingJob": prepare,
        "TrainingJob": {
            "Type": "Choice",
            "Comment": "The model's own job (its queue and definition, or its instance).",
            "Choices": [
                {"Variable": "$.model_name", "StringEquals": m, "Next": job_state_name(m)}
                for m in models
            ],
            "Default": "NoTrainingJob",
        },
        "NoTrainingJob": {
            "Type": "Pass",
            "Comment": "Unreachable unless the two choices disagree: fail the run cleanly.",
            "Result": {"Error": "NoTrainingJob", "Cause": "the model has no training job"},
            "ResultPath": "$.error",
            "Next": on_error,
        },
        **{
            job_state_name(m): jobs[m].state(on_error=on_error, next_state="CollectTrainingJob")
            for m in models
        },
        "CollectTrainingJob": collect,
    }
