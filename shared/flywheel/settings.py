"""Typed settings for the composition roots (CLI, SDK, Lambda handlers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.local.provision import default_names


def _local(env_var: str) -> str:
    return default_names()[env_var]


class Settings(BaseSettings):
    """Where Flywheel keeps its state, read from ``FLYWHEEL_*`` environment variables.

    ``backend="local"`` (the default) runs everything against a moto server on
    localhost that the CLI starts on demand: no AWS account needed.
    ``backend="aws"`` uses the ambient AWS credentials and the deployed resources.

    Examples
    --------
    >>> Settings(backend="aws", registry_table="t").registry_table
    't'
    """

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", extra="ignore")

    backend: Literal["local", "aws"] = "local"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    registry_table: str = Field(default_factory=lambda: _local("FLYWHEEL_REGISTRY_TABLE"))
    audit_table: str = Field(default_factory=lambda: _local("FLYWHEEL_AUDIT_TABLE"))
    online_features_table: str = Field(
        default_factory=lambda: _local("FLYWHEEL_ONLINE_FEATURES_TABLE")
    )
    idempotency_table: str = Field(default_factory=lambda: _local("FLYWHEEL_IDEMPOTENCY_TABLE"))
    artifacts_bucket: str = Field(default_factory=lambda: _local("FLYWHEEL_ARTIFACTS_BUCKET"))
    features_bucket: str = Field(default_factory=lambda: _local("FLYWHEEL_FEATURES_BUCKET"))
    local_port: int = 5055
    local_home: Path = Path(".flywheel")
    actor: str | None = None

    # -- workflows (training steps, approvals, promotion steps) -----------------------------
    #: The project event bus (``VersionApproved`` goes there); ``None``: no bus configured.
    event_bus: str | None = None
    #: ``source`` of the events this function puts (each producer has its own).
    event_source: str = "flywheel.approvals"
    #: Model name -> inference function name (JSON in ``FLYWHEEL_INFERENCE_FUNCTIONS``).
    inference_functions: dict[str, str] = Field(default_factory=dict)
    live_alias: str = "live"
    canary_weight: float = Field(default=0.1, gt=0, lt=1)
    #: Model name -> canary alarm names (JSON in ``FLYWHEEL_CANARY_ALARMS``).
    canary_alarms: dict[str, list[str]] = Field(default_factory=dict)
    #: Largest PSI of the canary's captured predictions against the champion's before
    #: ``check_canary`` rolls back; ``None``: no prediction check.
    canary_prediction_psi: float | None = Field(default=None, gt=0)
    #: Captured rows each side needs before the prediction check gives a verdict.
    canary_prediction_min_rows: int = Field(default=50, ge=1)
    #: A training run's lock expires after this (the training machine's timeout).
    run_lock_ttl_seconds: int = Field(default=78 * 3600, ge=60)
    #: Longest an approval may wait (the RequestApproval task's timeout).
    approval_timeout_seconds: int = Field(default=72 * 3600, ge=60)
    training_state_machine_arn: str | None = None
    #: Error name sent with SendTaskFailure on a rejection (the training ASL catches it).
    approval_rejected_error: str = "ApprovalRejected"

    def with_resources(
        self, environment: dict[str, str], *, endpoint_url: str | None = None
    ) -> Settings:
        """These settings with resource names from ``FLYWHEEL_*`` variables (a deployment's).

        Examples
        --------
        >>> s = Settings(backend="aws").with_resources({"FLYWHEEL_AUDIT_TABLE": "a"})
        >>> s.audit_table
        'a'
        """
        update: dict[str, object] = {
            key.removeprefix("FLYWHEEL_").lower(): value
            for key, value in environment.items()
            if key.removeprefix("FLYWHEEL_").lower() in type(self).model_fields
        }
        if endpoint_url is not None:
            update["endpoint_url"] = endpoint_url
        for key, value in list(update.items()):
            if isinstance(value, str) and value[:1] in "{[":
                update[key] = json.loads(value)  # JSON-valued variables, as env parsing does
        return type(self).model_validate({**self.model_dump(), **update})
