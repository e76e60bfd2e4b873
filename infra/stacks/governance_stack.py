"""Governance: the records writer (the only writer of registry and audit), the anchor job,
the notifications topic and the stage's cost budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack

from infra.catalog import CONTROL_LAYERS
from infra.constructs.audit_anchoring import AuditAnchoring
from infra.constructs.data_refs import DataRefs
from infra.constructs.event_routing import dead_letter_queue
from infra.constructs.function import SharedLayers
from infra.constructs.llm_budget_meter import LlmBudgetMeter
from infra.constructs.monthly_budget import MonthlyBudget
from infra.constructs.notifications import Notifications
from infra.constructs.records_writer import RecordsWriter
from infra.constructs.stage_promotion import StagePromotionRole

if TYPE_CHECKING:
    from constructs import Construct

    from infra.context import StageContext


class GovernanceStack(Stack):
    """Deployed right after the data stack: every other stack's functions write through it."""

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = DataRefs(self, "Data", ctx=ctx)
        layers = SharedLayers(
            self, "Layers", ctx=ctx, keys=CONTROL_LAYERS, stack_key="governance"
        ).layers
        self.writer = RecordsWriter(self, "RecordsWriter", ctx=ctx, layers=layers, data=data)
        anchor_dlq = dead_letter_queue(
            self, "AnchorDlq", ctx=ctx, key=data.key, name="audit-anchor-dlq"
        )
        self.anchoring = AuditAnchoring(
            self, "AuditAnchoring", ctx=ctx, layers=layers, data=data, dead_letter_queue=anchor_dlq
        )
        self.notifications = Notifications(self, "Notifications", ctx=ctx, data=data)
        # Costs: the stage's AWS budget (llm.monthly_budget) alerts the topic.
        limit = ctx.config.llm.monthly_budget
        self.budget = (
            MonthlyBudget(
                self, "MonthlyBudget", ctx=ctx, limit=limit, topic=self.notifications.topic
            )
            if limit is not None
            else None
        )
        # The LLM budget meter: every 5 minutes it reads the gateway's usage table and puts
        # BudgetThresholdReached on the project bus, which the topic's rule delivers.
        meter_dlq = dead_letter_queue(
            self, "BudgetMeterDlq", ctx=ctx, key=data.key, name="llm-budgets-dlq"
        )
        self.budget_meter = LlmBudgetMeter(
            self,
            "LlmBudgetMeter",
            ctx=ctx,
            layers=layers,
            data=data,
            policy=ctx.config.llm.policy(),
            dead_letter_queue=meter_dlq,
        )
        sources = ctx.config.promotion_sources
        if sources:
            self.promotion = StagePromotionRole(
                self, "StagePromotionRole", ctx=ctx, data=data, sources=sources
            )
