"""Typed settings for the composition roots (CLI, SDK, Lambda handlers)."""

from __future__ import annotations

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
