"""Monitoring and triggers: scheduled monitors, event routing to the workflows, dashboards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack
from aws_cdk import aws_stepfunctions as sfn

from infra.catalog import RUNTIME_LAYERS
from infra.constructs.dashboards import ModelDashboards
from infra.constructs.data_refs import DataRefs
from infra.constructs.event_routing import EventRouting, dead_letter_queue
from infra.constructs.feature_materialization import FeatureMaterialization
from infra.constructs.function import SharedLayers
from infra.constructs.llm_monitor import LlmQualityMonitor
from infra.constructs.model_monitors import ModelMonitors

if TYPE_CHECKING:
    from constructs import Construct

    from infra.context import StageContext


class MonitoringStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = DataRefs(self, "Data", ctx=ctx)
        # The drift scorer loads the champion with ONNX Runtime (attribution drift, ADR 73).
        layers = SharedLayers(
            self, "Layers", ctx=ctx, keys=RUNTIME_LAYERS, stack_key="monitoring"
        ).layers
        monitors_dlq = dead_letter_queue(
            self, "MonitorsDlq", ctx=ctx, key=data.key, name="monitors-dlq"
        )
        self.monitors = ModelMonitors(
            self, "Monitors", ctx=ctx, data=data, layers=layers, dead_letter_queue=monitors_dlq
        )
        self.llm_monitor = LlmQualityMonitor(
            self, "LlmMonitor", ctx=ctx, data=data, layers=layers, dead_letter_queue=monitors_dlq
        )
        self.materialization = FeatureMaterialization(
            self, "FeatureMaterialization", ctx=ctx, data=data, dead_letter_queue=monitors_dlq
        )
        self.routing = EventRouting(
            self,
            "EventRouting",
            ctx=ctx,
            bus=data.bus,
            key=data.key,
            # By name: the ARN is the stack's own (a pinned environment stays resolved).
            training=sfn.StateMachine.from_state_machine_name(
                self, "Training", ctx.naming.state_machine("training")
            ),
            promotion=sfn.StateMachine.from_state_machine_name(
                self, "Promotion", ctx.naming.state_machine("promotion")
            ),
        )
        self.dashboards = ModelDashboards(self, "Dashboards", ctx=ctx)
