"""Governance: the records writer (the only writer of registry and audit), the anchor job,
and the notifications topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack

from infra.catalog import CONTROL_LAYERS
from infra.constructs.audit_anchoring import AuditAnchoring
from infra.constructs.data_refs import DataRefs
from infra.constructs.event_routing import dead_letter_queue
from infra.constructs.function import SharedLayers
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
        sources = ctx.config.promotion_sources
        if sources:
            self.promotion = StagePromotionRole(
                self, "StagePromotionRole", ctx=ctx, data=data, sources=sources
            )
