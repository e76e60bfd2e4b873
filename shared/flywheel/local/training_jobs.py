"""Run AWS Batch and SageMaker training jobs in-process for the workflow's ``.sync`` states.

moto executes the training workflow's ASL but runs no Batch job and no SageMaker training
job (its Batch backend never starts a container; SageMaker ``.sync`` is not an integration
it supports). :class:`TrainingJobBridge` answers exactly the two ``.sync`` tasks the
workflow uses (``batch:submitJob.sync`` and ``sagemaker:createTrainingJob.sync``, ADR 85)
by running the training image's ``train`` command, :mod:`training_steps.job`, in this
process: with the environment the job would get (the job definition's and the overrides
for Batch, the task's ``Environment`` for SageMaker) and the job's argument checked. The
task then succeeds or fails as Step Functions reports a finished job: the service's job
description as output, or ``States.TaskFailed`` with it as the cause.

It replaces moto's factory of service tasks for ``batch`` and ``sagemaker`` only; every
other task is moto's own.
"""

from __future__ import annotations

import importlib
import json
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flywheel.local.bridge import scoped_environment

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from flywheel.local.deployment import LocalDeployment

#: The container's argument the image runs the Train step for (SageMaker's default).
TRAIN_COMMAND = "train"
JOB_MODULE = "training_steps.job"
#: The ``.sync`` tasks bridged, as (service, API action in lower case).
BRIDGED = frozenset({("batch", "submitjob"), ("sagemaker", "createtrainingjob")})
#: What Batch says of a job whose container exited non-zero.
BATCH_FAILED_REASON = "Essential container in task exited"


@dataclass(frozen=True)
class JobRun:
    """One job the bridge ran: which engine, its name, and how it ended."""

    engine: str
    name: str
    succeeded: bool
    environment: Mapping[str, str]
    #: ``ErrorType: message`` of the training step's exception (``None``: it succeeded).
    error: str | None = None


class TrainingJobBridge:
    """The training jobs of a local deployment, run in-process when a workflow asks.

    Examples
    --------
    >>> from flywheel.local.deployment import LocalDeployment
    >>> bridge = TrainingJobBridge(LocalDeployment({}))
    >>> bridge.runs
    []
    """

    def __init__(
        self,
        deployment: LocalDeployment,
        *,
        extra_env: Mapping[str, str] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.deployment = deployment
        self.extra_env = dict(extra_env or {})
        self.now = now
        self.runs: list[JobRun] = []
        self._lock = threading.Lock()

    # -- moto's factory of service tasks -----
    def service_for(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap moto's ``state_task_service_for``: bridged services get :meth:`task_class`."""
        task_class = self.task_class()

        def state_task_service_for(service_name: str) -> Any:
            if service_name in {"batch", "sagemaker"}:
                return task_class()
            return original(service_name=service_name)

        return state_task_service_for

    def task_class(self) -> type:
        """A moto service task whose ``.sync`` runs the job here (moto imported lazily)."""
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
            FailureEventException,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (  # noqa: E501
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
            ResourceCondition,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
            StateTaskServiceCallback,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        bridge = self

        patterns: set[Any] = {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}

        class LocalTrainingJobTask(StateTaskServiceCallback):
            def __init__(self) -> None:
                super().__init__(supported_integration_patterns=patterns)

            def _validate_service_integration_is_supported(self) -> None:
                key = (self.resource.service_name, self.resource.api_action.lower())
                if key not in BRIDGED or self.resource.condition != ResourceCondition.Sync:
                    raise ValueError(
                        f"the local runtime runs only {sorted(BRIDGED)} as .sync tasks, not "
                        f"{self.resource.resource_arn}"
                    )

            def _normalise_parameters(self, *_: Any, **__: Any) -> None:
                """Keep the task's parameters as written (the bridge reads them so)."""

            def _normalise_response(self, *_: Any, **__: Any) -> None:
                """The bridge answers in Step Functions' casing already."""

            def _eval_service_task(
                self,
                env: Any,
                resource_runtime_part: Any,
                normalised_parameters: dict[str, Any],
                state_credentials: Any,
            ) -> None:
                del resource_runtime_part, state_credentials  # moto's signature
                env.stack.append(bridge.run(self.resource.service_name, normalised_parameters))

            def _build_sync_resolver(
                self,
                env: Any,
                resource_runtime_part: Any,
                normalised_parameters: dict[str, Any],
                state_credentials: Any,
            ) -> Callable[[], Any]:
                del resource_runtime_part, normalised_parameters, state_credentials
                # The job ran when the task was submitted (``_eval_service_task``); this
                # reports how it ended, as moto's Batch resolver reports DescribeJobs.
                outcome: dict[str, Any] = env.stack.pop()
                task = self

                def resolve() -> dict[str, Any]:
                    if outcome.get("Status", outcome.get("TrainingJobStatus")) in (
                        "SUCCEEDED", "Completed",
                    ):  # fmt: skip
                        return outcome
                    raise FailureEventException(
                        FailureEvent(
                            env=env,
                            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                            event_type=HistoryEventType.TaskFailed,
                            event_details=EventDetails(  # type: ignore[typeddict-item]
                                taskFailedEventDetails=TaskFailedEventDetails(
                                    resource=task._get_sfn_resource(),
                                    resourceType=task._get_sfn_resource_type(),
                                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                                    cause=json.dumps(outcome),
                                )
                            ),
                        )
                    )

                return resolve

        return LocalTrainingJobTask

    # -- the jobs -----
    def run(self, service: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Run one job as ``service`` would, and describe it as its ``.sync`` task does."""
        if service == "batch":
            return self._batch(parameters)
        return self._sagemaker(parameters)

    def _batch(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        name = str(parameters["JobName"])
        definition = self._job_definition(str(parameters["JobDefinition"]))
        container = definition.get("ContainerProperties") or {}
        environment = _pairs(container.get("Environment"))
        overrides = parameters.get("ContainerOverrides") or {}
        environment.update(_pairs(overrides.get("Environment")))
        command = overrides.get("Command") or container.get("Command") or []
        job_id = str(uuid.uuid4())
        error = self._train("batch", name, environment, command)
        described: dict[str, Any] = {
            "JobId": job_id,
            "JobName": name,
            "JobQueue": parameters.get("JobQueue"),
            "JobDefinition": parameters["JobDefinition"],
            "Status": "SUCCEEDED" if error is None else "FAILED",
            "Container": {"Command": command, "ExitCode": 0 if error is None else 1},
        }
        if error is not None:
            described["StatusReason"] = BATCH_FAILED_REASON
        return described

    def _sagemaker(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        name = str(parameters["TrainingJobName"])
        environment = {str(k): str(v) for k, v in (parameters.get("Environment") or {}).items()}
        specification = parameters.get("AlgorithmSpecification") or {}
        command = [
            *(specification.get("ContainerEntrypoint") or ()),
            *(specification.get("ContainerArguments") or (TRAIN_COMMAND,)),
        ]
        error = self._train("sagemaker", name, environment, command)
        region, account = self.deployment.region, self.deployment.account
        described: dict[str, Any] = {
            "TrainingJobName": name,
            "TrainingJobArn": f"arn:aws:sagemaker:{region}:{account}:training-job/{name}",
            "TrainingJobStatus": "Completed" if error is None else "Failed",
            "SecondaryStatus": "Completed" if error is None else "Failed",
            "AlgorithmSpecification": dict(specification),
            "ResourceConfig": parameters.get("ResourceConfig"),
            "EnableManagedSpotTraining": bool(parameters.get("EnableManagedSpotTraining")),
        }
        if error is not None:
            described["FailureReason"] = f"AlgorithmError: {error}"
        return described

    def _job_definition(self, named: str) -> dict[str, Any]:
        name = named.rsplit("job-definition/", 1)[-1].split(":", maxsplit=1)[0]
        for resource in self.deployment.of_type("AWS::Batch::JobDefinition"):
            if resource.name == name:
                resolved: dict[str, Any] = self.deployment.resolve(
                    resource.properties, resource.stack
                )
                return resolved
        raise ValueError(f"no job definition {named!r} in the deployment")

    def _train(
        self, engine: str, name: str, environment: Mapping[str, str], command: list[str]
    ) -> str | None:
        """Run the job's command in-process; ``None`` on success, else its error."""
        env = {**self.extra_env, **environment}
        if self.now is not None:
            env["FLYWHEEL_NOW"] = self.now().isoformat()
        error: str | None = None
        if command != [TRAIN_COMMAND]:
            error = f"UnknownCommand: the training image runs {[TRAIN_COMMAND]}, not {command}"
        else:
            try:
                with scoped_environment(env):
                    importlib.import_module(JOB_MODULE).run()
            except Exception as exc:  # the job fails, as its container would exit 1
                error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.runs.append(JobRun(engine, name, error is None, env, error))
        return error


def _pairs(items: Any) -> dict[str, str]:
    """Batch's ``[{"Name": ..., "Value": ...}]`` as a mapping."""
    return {str(item["Name"]): str(item["Value"]) for item in items or ()}
