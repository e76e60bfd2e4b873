"""The training workflow: one function per step (own role), run from the training image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constructs import Construct

from infra.catalog import FUNCTIONS, TRAINING_JOB_STEPS, TRAINING_STEPS, training_function_key
from infra.constructs.data_refs import RECORDS_WRITER
from infra.constructs.events_access import SOURCE_WORKFLOWS, grant_put_events
from infra.constructs.function import FlywheelFunction
from infra.constructs.state_machine import WorkflowStateMachine
from infra.constructs.training_engines import TrainingEngines
from infra.workflows.training import TrainingTimeouts, training_definition

if TYPE_CHECKING:
    from aws_cdk import aws_lambda as lambda_

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: Which data each step may touch (prefixes of the artifacts/features buckets).
#:   reads:  (bucket, prefix) pairs;  writes: (bucket, prefix) pairs;  registry: read|write
ACCESS: dict[str, dict[str, object]] = {
    "acquire_run_lock": {"registry": "write", "reads": [("artifacts", "policies/")]},
    "validate_data": {
        "registry": "read",
        "reads": [("features", "offline/"), ("artifacts", "policies/"), ("artifacts", "models/")],
        "writes": [("artifacts", "reports/")],
    },
    "build_training_set": {
        "registry": "read",
        "reads": [("features", "offline/"), ("artifacts", "models/")],
        "writes": [("artifacts", "training-sets/"), ("artifacts", "reports/")],
        "online_features": True,
    },
    "train": {
        # It records the run (``MODEL#<name>`` / ``RUN#<run id>``) through the writer.
        "registry": "write",
        "reads": [("artifacts", "training-sets/")],
        "writes": [("artifacts", "models/")],
    },
    "evaluate": {
        "registry": "read",
        "reads": [("artifacts", "training-sets/"), ("artifacts", "models/")],
        "writes": [("artifacts", "reports/")],
    },
    "gate": {"registry": "write", "reads": [("artifacts", "policies/"), ("artifacts", "reports/")]},
    "register": {"registry": "write", "reads": [("artifacts", "models/")]},
    "request_approval": {"registry": "write"},
    "release_run_lock": {"registry": "write"},
    # Only in stages with a model on AWS Batch or SageMaker (ADR 85): the job's input
    # (the state) and its result.
    "prepare_training_job": {"registry": "read", "writes": [("artifacts", "training-jobs/")]},
    "collect_training_job": {"registry": "read", "reads": [("artifacts", "training-jobs/")]},
}
#: Steps that put events on the project bus, with their own source (only this one:
#: ``ApprovalRequested``, which notifies the approvers).
ANNOUNCES: dict[str, dict[str, str]] = {
    "request_approval": {"FLYWHEEL_EVENT_SOURCE": SOURCE_WORKFLOWS},
}


class TrainingWorkflow(Construct):
    """Training steps + the training state machine.

    ``record_failure`` is the promotion workflow's function, shared: it audits failures
    of both workflows (passed in as ``record_failure``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        record_failure: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        engine_models = [m for m in cfg.models if m.training.engine != "lambda"]
        self.steps: dict[str, FlywheelFunction] = {}
        for step in (*TRAINING_STEPS, *(TRAINING_JOB_STEPS if engine_models else ())):
            spec = FUNCTIONS[training_function_key(step)]
            heavy = spec.memory_mb > 1024
            fn = FlywheelFunction(
                self,
                "".join(part.title() for part in step.split("_")),
                ctx=ctx,
                spec=spec,
                memory_mb=cfg.training_memory_mb if heavy else None,
                environment={
                    "FLYWHEEL_RUN_LOCK_TTL_SECONDS": str(cfg.training_workflow_timeout_seconds),
                    "FLYWHEEL_APPROVAL_TIMEOUT_SECONDS": str(cfg.approval_timeout_seconds),
                    **(ANNOUNCES.get(step) or {}),
                },
            )
            self._grant(step, fn.function, data)
            self.steps[step] = fn

        arns = {step: fn.function.function_arn for step, fn in self.steps.items()}
        arns["record_failure"] = record_failure.function_arn
        timeouts = {step: fn.spec.timeout_seconds for step, fn in self.steps.items()}
        timeouts["record_failure"] = FUNCTIONS["promotion-record-failure"].timeout_seconds
        #: The job resources of models that train on AWS Batch or SageMaker (else ``None``).
        self.engines: TrainingEngines | None = None
        if engine_models:
            self.engines = TrainingEngines(
                self,
                "Engines",
                ctx=ctx,
                data=data,
                models=engine_models,
                environment={
                    **self.steps["train"].environment,
                    "FLYWHEEL_RECORDS_WRITER": ctx.naming.function(RECORDS_WRITER),
                    "FLYWHEEL_RECORDS_CAPABILITY": "training-runs",
                },
            )
        self.workflow = WorkflowStateMachine(
            self,
            "Workflow",
            ctx=ctx,
            key="training",
            definition=training_definition(
                arns,
                TrainingTimeouts(
                    machine=cfg.training_workflow_timeout_seconds,
                    approval=cfg.approval_timeout_seconds,
                    approval_heartbeat=cfg.approval_heartbeat_seconds,
                    functions=timeouts,
                ),
                self.engines.jobs if self.engines is not None else None,
            ),
            functions=[fn.function for fn in self.steps.values()] + [record_failure],
        )
        self.machine = self.workflow.machine
        if self.engines is not None:
            self.engines.grant_start(self.machine)

    @staticmethod
    def _grant(step: str, fn: lambda_.Function, data: DataRefs) -> None:
        access = ACCESS[step]
        buckets = {"artifacts": data.artifacts, "features": data.features}
        if access["registry"] == "write":
            data.grant_records_writer(fn, "training-runs")
        else:
            data.grant_registry_read(fn)
        for bucket, prefix in access.get("reads", []):  # type: ignore[attr-defined]
            buckets[bucket].grant_read(fn, f"{prefix}*")
        for bucket, prefix in access.get("writes", []):  # type: ignore[attr-defined]
            buckets[bucket].grant_put(fn, f"{prefix}*")
        if access.get("online_features"):
            data.online_features.grant_read_data(fn)
        if step in ANNOUNCES:
            grant_put_events(fn, data.bus, ANNOUNCES[step]["FLYWHEEL_EVENT_SOURCE"])
