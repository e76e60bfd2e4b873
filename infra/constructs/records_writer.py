"""The records writer: the one function that writes the registry and the audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from flywheel.workflows.writer import Capability
from infra.catalog import FUNCTIONS
from infra.constructs.data_refs import RECORDS_WRITER
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext


class RecordsWriter(Construct):
    """``records-writer`` with one alias per capability (ADR 61).

    - its role (fixed name ``<prefix>-records-writer``) is the only one with write access
      to the registry and audit tables and the only one the audit key lets generate MACs;
    - every other function gets ``lambda:InvokeFunction`` on its own capability's alias,
      so IAM decides which changes it may ask for (``workflows``, ``approvals``,
      ``operations``, ``features``).
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
            spec=FUNCTIONS[RECORDS_WRITER],
            layers=layers,
            fixed_role_name=True,
            sync_only_reason=(
                "Invoked synchronously only, by the platform's functions and people's CLI "
                "(RequestResponse): Lambda never queues its events, so an async dead-letter "
                "queue would stay empty. Refusals and failures go back to the caller."
            ),
        )
        fn = self.handler.function
        data.grant_table_writes(fn)
        data.audit_key.grant_generate_mac(fn)
        data.audit_key.grant_verify_mac(fn)
        version = fn.current_version
        self.aliases = {
            capability: lambda_.Alias(
                self,
                capability.value.title(),
                alias_name=capability.value,
                version=version,
                description=f"Capability {capability.value} of the records writer",
            )
            for capability in Capability
        }
