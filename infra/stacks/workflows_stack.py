"""Workflows: the training and promotion state machines and their step functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack

from infra.catalog import CONTROL_LAYERS
from infra.constructs.data_refs import DataRefs
from infra.constructs.function import SharedLayers
from infra.constructs.promotion_workflow import PromotionWorkflow
from infra.constructs.training_workflow import TrainingWorkflow

if TYPE_CHECKING:
    from constructs import Construct

    from infra.context import StageContext


class WorkflowsStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = DataRefs(self, "Data", ctx=ctx)
        layers = SharedLayers(
            self, "Layers", ctx=ctx, keys=CONTROL_LAYERS, stack_key="workflows"
        ).layers
        self.promotion = PromotionWorkflow(self, "Promotion", ctx=ctx, data=data, layers=layers)
        self.training = TrainingWorkflow(
            self, "Training", ctx=ctx, data=data, record_failure=self.promotion.record_failure
        )
