"""What every construct needs to know about the stage it is built for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_logs as logs

from flywheel.resources import BUCKETS, TABLES

if TYPE_CHECKING:
    from infra.assets import Assets
    from infra.config import StageConfig
    from infra.naming import Naming

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
}

#: Custom metrics namespace prefix; the stage is appended so stages never mix.
METRICS_NAMESPACE = "Flywheel"


@dataclass(frozen=True)
class StageContext:
    config: StageConfig
    naming: Naming
    assets: Assets

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Data and logs survive ``cdk destroy`` in stages that retain data."""
        return RemovalPolicy.RETAIN if self.config.retain_data else RemovalPolicy.DESTROY

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.config.log_retention_days]

    @property
    def metrics_namespace(self) -> str:
        return f"{METRICS_NAMESPACE}/{self.config.stage}"

    def resource_environment(self) -> dict[str, str]:
        """``FLYWHEEL_*`` variables that ``flywheel.settings.Settings`` reads."""
        env = {t.env_var: self.naming.table(t) for t in TABLES}
        env.update({b.env_var: self.naming.bucket(b) for b in BUCKETS})
        env.update(
            {
                "FLYWHEEL_BACKEND": "aws",
                "FLYWHEEL_REGION": Aws.REGION,
                "FLYWHEEL_STAGE": self.config.stage,
                "FLYWHEEL_EVENT_BUS": self.naming.event_bus,
                "FLYWHEEL_AUDIT_KEY": self.naming.audit_key_alias,
                "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            }
        )
        return env
