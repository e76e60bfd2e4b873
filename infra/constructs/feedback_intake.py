"""Delayed labels: ``POST /v1/feedback`` stores ground truth next to the captured predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext


class FeedbackIntake(Construct):
    """Writes labels under ``labels/`` of the features bucket; idempotent by request id."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["feedback"],
            layers=layers,
            environment={"FLYWHEEL_LABELS_PREFIX": "labels/"},
        )
        fn = self.handler.function
        data.grant_registry_read(fn)
        data.features.grant_put(fn, "labels/*")
        data.idempotency.grant_read_write_data(fn)
