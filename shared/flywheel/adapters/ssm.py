"""The platform's own record of itself: one SSM parameter per stage, written by the CDK app."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

__all__ = ["platform_parameter", "read_platform_record"]


def platform_parameter(prefix: str) -> str:
    """The parameter's name for a stage prefix (``<project>-<stage>``).

    Examples
    --------
    >>> platform_parameter("flywheel-prod")
    '/flywheel/flywheel-prod/platform'
    """
    return f"/flywheel/{prefix}/platform"


def read_platform_record(client: SSMClient, prefix: str) -> dict[str, Any]:
    """The stage's record: ``environment`` (``FLYWHEEL_*`` names), ``api_url``, … .

    Raises
    ------
    ConfigError
        No such stage here (or no permission to read its record), naming the parameter.
    """
    name = platform_parameter(prefix)
    try:
        value = client.get_parameter(Name=name)["Parameter"]["Value"]
        record: dict[str, Any] = json.loads(value)
    except (ClientError, BotoCoreError, ValueError) as err:
        raise ConfigError(
            f"cannot read {name}: is FLYWHEEL_STAGE right, is the stage deployed in this "
            "account and region, and may you read its record (ssm:GetParameter)?",
            field="FLYWHEEL_STAGE",
        ) from err
    return record
