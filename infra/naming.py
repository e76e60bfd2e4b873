"""Physical names of every named resource, derived from the stage prefix.

Names are deterministic so that (1) stacks can reference each other's resources by name
instead of through CloudFormation exports (no export lock-in, no hashed ids in IAM
policies), (2) the local runtime and the CLI can find resources with nothing but the
stage, and (3) cdk-nag acknowledgements name readable ARNs.

Table names follow the local runtime's convention (``<prefix>-<LogicalId>``, see
``flywheel.local.provision.default_names``); bucket names add account and region because
S3 names are global.

Examples
--------
>>> from flywheel.resources import REGISTRY_TABLE
>>> Naming("flywheel-dev").table(REGISTRY_TABLE)
'flywheel-dev-RegistryTable'
>>> Naming("flywheel-dev").function("approval-api")
'flywheel-dev-approval-api'
>>> Naming("flywheel-dev").topic("notifications")
'flywheel-dev-notifications'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws

if TYPE_CHECKING:
    from flywheel.resources import BucketDef, TableDef


@dataclass(frozen=True)
class Naming:
    prefix: str

    def table(self, table: TableDef) -> str:
        return f"{self.prefix}-{table.logical_id}"

    def bucket(self, bucket: BucketDef | str) -> str:
        """``<prefix>-<logicalid lowercased>-<account>-<region>`` (tokens for account/region)."""
        logical = bucket if isinstance(bucket, str) else bucket.logical_id
        return f"{self.prefix}-{logical.lower()}-{Aws.ACCOUNT_ID}-{Aws.REGION}"

    def function(self, key: str, model: str | None = None) -> str:
        return f"{self.prefix}-{key}" + (f"-{model}" if model else "")

    def role_arn(self, key: str) -> str:
        """The ARN of a role with a fixed name (``<prefix>-<key>``)."""
        return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{self.prefix}-{key}"

    def role_arn_like(self) -> str:
        """The ARN pattern of every role of this stage (fixed names and generated ones)."""
        return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/{self.prefix}-*"

    def managed_policy(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def managed_policy_arn(self, key: str) -> str:
        return f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:policy/{self.managed_policy(key)}"

    @property
    def platform_parameter(self) -> str:
        """The SSM parameter that describes the deployed stage (``/flywheel/<prefix>/platform``)."""
        return f"/flywheel/{self.prefix}/platform"

    def function_arn(self, key: str, qualifier: str | None = None) -> str:
        return (
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:function:"
            f"{self.function(key)}" + (f":{qualifier}" if qualifier else "")
        )

    def layer(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def state_machine(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def state_machine_arn(self, key: str) -> str:
        return (
            f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"stateMachine:{self.state_machine(key)}"
        )

    def execution_arn(self, key: str, name: str = "*") -> str:
        """Executions of state machine ``key`` (all of them by default)."""
        return (
            f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"execution:{self.state_machine(key)}:{name}"
        )

    @property
    def event_bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def event_bus_arn(self) -> str:
        return (
            f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:event-bus/{self.event_bus}"
        )

    @property
    def data_key_alias(self) -> str:
        return f"alias/{self.prefix}-data"

    @property
    def audit_key_alias(self) -> str:
        """The audit writer's HMAC key, which signs audit chain heads."""
        return f"alias/{self.prefix}-audit"

    def alarm(self, model: str, metric: str) -> str:
        return f"{self.prefix}-{model}-canary-{metric}"

    def topic(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def topic_arn(self, key: str) -> str:
        """The ARN of a topic with a fixed name (``<prefix>-<key>``)."""
        return f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{self.topic(key)}"

    def stack(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def queue(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def log_group(self, kind: str, key: str) -> str:
        """``/aws/lambda/<fn>`` for functions; vended-logs prefix for Step Functions."""
        if kind == "lambda":
            return f"/aws/lambda/{key}"
        if kind == "states":
            return f"/aws/vendedlogs/states/{key}"
        return f"/{self.prefix}/{kind}/{key}"
