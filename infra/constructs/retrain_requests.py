"""Manual training runs: ``POST /v1/models/{name}/retrain`` puts ``RetrainRequested``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.events_access import SOURCE_OPERATOR, grant_put_events
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: The function's catalogue key and fixed role name (``<prefix>-retrain-api``).
RETRAIN_API = "retrain-api"


class RetrainRequests(Construct):
    """The only producer of ``flywheel.operator`` events (the project bus denies the rest).

    Its role has a fixed name so that the bus policy in the data stack can name it; it
    reads model configs (registry) and puts ``RetrainRequested`` naming the caller, and
    stores model configs as the caller (the records writer's ``configs`` capability).
    """

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
            spec=FUNCTIONS[RETRAIN_API],
            layers=layers,
            environment={"FLYWHEEL_EVENT_SOURCE": SOURCE_OPERATOR},
            fixed_role_name=True,
        )
        fn = self.handler.function
        # The config route writes model configs through the writer's ``configs`` alias.
        data.grant_records_writer(fn, "configs")
        grant_put_events(fn, data.bus, SOURCE_OPERATOR)
