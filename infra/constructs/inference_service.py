"""One model's inference function, its bootstrap version and alias ``live``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.catalog import FUNCTIONS
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from infra.config import ModelConfig
    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

LIVE_ALIAS = "live"


class InferenceService(Construct):
    """Serving for one model: function -> bootstrap version -> alias ``live``.

    CDK creates alias ``live`` on a ``BootstrapVersion`` whose properties never change,
    so later deployments do not move the alias: from then on the promotion workflow owns
    it (``publish_version`` pins ``FLYWHEEL_MODEL_VERSION`` and publishes a version,
    ``shift_alias`` sets the routing weight, ``promote_all``/``rollback`` finish). The
    template therefore has no ``RoutingConfig``: CloudFormation never resets a canary.

    Permissions: read the registry, read this model's artifacts (``models/<name>/``), read
    the online feature store, write captured requests under ``capture/model=<name>/``. It cannot
    write models, the registry or the audit trail.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        model: ModelConfig,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
    ) -> None:
        super().__init__(scope, construct_id)
        self.model = model
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["inference"],
            layers=layers,
            model=model.name,
            memory_mb=model.memory_mb,
            timeout_seconds=model.timeout_seconds,
            reserved_concurrency=model.reserved_concurrency,
            # SnapStart and provisioned concurrency exclude each other; either one takes
            # the model load off the first request.
            snap_start=model.provisioned_concurrency == 0,
            environment={
                "FLYWHEEL_MODEL_NAME": model.name,
                "FLYWHEEL_MAX_BATCH_RECORDS": str(ctx.config.api.max_batch_records),
                "FLYWHEEL_CAPTURE_PREFIX": "capture/",
                **(
                    {"FLYWHEEL_FEATURE_VIEW": model.feature_view}
                    if model.feature_view is not None
                    else {}
                ),
                **(
                    {"FLYWHEEL_FEATURE_VIEW_VERSION": str(model.feature_view_version)}
                    if model.feature_view_version is not None
                    else {}
                ),
            },
        )
        fn = self.handler.function
        data.grant_registry_read(fn)
        data.artifacts.grant_read(fn, f"models/{model.name}/*")
        # Captures are partitioned capture/model=<name>/version=<v>/date=.../hour=.../
        data.features.grant_put(fn, f"capture/model={model.name}/*")
        data.online_features.grant_read_data(fn)

        self.bootstrap_version = lambda_.Version(
            self,
            "BootstrapVersion",
            lambda_=fn,
            description="Created once by CDK; the promotion workflow publishes the next ones.",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.bootstrap_version,
            description=f"{model.name}: champion + canary weight, set by the promotion workflow",
            provisioned_concurrent_executions=model.provisioned_concurrency or None,
        )
