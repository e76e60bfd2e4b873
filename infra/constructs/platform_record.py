"""The stage's own record: SSM parameter ``/flywheel/<prefix>/platform`` (JSON)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from flywheel.settings import RESOURCE_VARIABLES
from infra.constructs.data_refs import RECORDS_WRITER
from infra.constructs.promotion_workflow import serving_control_environment

if TYPE_CHECKING:
    from aws_cdk import aws_apigateway as apigw

    from infra.context import StageContext

#: Variables of ``StageContext.resource_environment`` that name resources besides the
#: tables and buckets (``flywheel.settings.RESOURCE_VARIABLES``).
NAMED_RESOURCES = frozenset({"FLYWHEEL_AUDIT_KEY", "FLYWHEEL_EVENT_BUS"})
#: SSM's limit on a standard parameter's value (bytes); longer values need the advanced tier.
STANDARD_TIER_LIMIT = 4096


def platform_record(ctx: StageContext, api_url: str) -> dict[str, Any]:
    """What the parameter holds: ``stage``, ``region``, ``environment``, ``api_url``,
    ``state_machines`` (tokens for account, region and the API)."""
    resources = ctx.resource_environment()
    environment = {
        key: value
        for key, value in resources.items()
        if key in RESOURCE_VARIABLES.values() or key in NAMED_RESOURCES
    }
    environment["FLYWHEEL_RECORDS_WRITER"] = ctx.naming.function(RECORDS_WRITER)
    environment.update(serving_control_environment(ctx))
    return {
        "stage": ctx.config.stage,
        "region": Aws.REGION,
        "environment": dict(sorted(environment.items())),
        "api_url": api_url,
        "state_machines": {
            key: ctx.naming.state_machine_arn(key) for key in ("training", "promotion")
        },
    }


class PlatformRecord(Construct):
    """The deployed stage in one place, for people and tools (the personas may read it).

    Its ``environment`` is the ``FLYWHEEL_*`` variables the functions get, so
    ``Settings.of_deployment(record["environment"], backend="aws")`` reaches the stage.
    It lives in the serving stack: the API's id is the one name not derived from the
    prefix, and stacks share no exports; every other value is a deterministic name.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, ctx: StageContext, api: apigw.RestApi
    ) -> None:
        super().__init__(scope, construct_id)
        record = platform_record(ctx, api.url)
        # Tokens render longer than the values they stand for: an upper bound.
        estimate = len(json.dumps(Stack.of(self).resolve(record)))
        self.parameter = ssm.StringParameter(
            self,
            "Parameter",
            parameter_name=ctx.naming.platform_parameter,
            description=f"{ctx.config.prefix}: the deployed stage (names, API, state machines)",
            string_value=Stack.of(self).to_json_string(record),
            tier=(
                ssm.ParameterTier.ADVANCED
                if estimate > STANDARD_TIER_LIMIT
                else ssm.ParameterTier.STANDARD
            ),
        )
