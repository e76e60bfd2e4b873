"""The project's EventBridge bus (DriftDetected, PerformanceDegraded, RetrainRequested, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_events as events
from constructs import Construct

if TYPE_CHECKING:
    from infra.context import StageContext


class ProjectBus(Construct):
    """A named custom bus; producers need ``events:PutEvents`` on it (granted per function)."""

    def __init__(self, scope: Construct, construct_id: str, *, ctx: StageContext) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=ctx.naming.event_bus,
            description=f"{ctx.config.prefix}: Flywheel domain events",
        )
