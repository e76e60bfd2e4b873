"""Another stage's platform, found through its SSM record (``/flywheel/<prefix>/platform``).

A stage promotion (ADR 65) works on two stages at once: the one the process is set up
for, and another one, possibly in another account through an assumed role.
"""

from __future__ import annotations

import re
from typing import Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.composition.clients import CLIENT_CONFIG
from flywheel.composition.platform import AwsPlatform
from flywheel.errors import ConfigError, InvalidInputError, UnauthenticatedError
from flywheel.settings import LOCAL_CREDENTIALS, Settings

__all__ = ["PROMOTIONS_CAPABILITY", "ROLE_ARN", "session_name", "stage_platform"]

#: The records writer's alias a promoted version is written through in the target.
PROMOTIONS_CAPABILITY = "promotions"
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def session_name(principal: str) -> str:
    """The role session name for ``principal``: its last path segment, as STS allows.

    Examples
    --------
    >>> session_name("arn:aws:sts::111111111111:assumed-role/flywheel-dev-ml-engineer/ana")
    'ana'
    >>> session_name("local user")
    'local-user'
    """
    last = principal.rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9+=,.@_-]", "-", last)[:64]
    return cleaned if len(cleaned) >= 2 else "flywheel-promotion"


def stage_platform(
    stage: str,
    *,
    backend: Literal["local", "aws"],
    region: str,
    endpoint_url: str | None = None,
    project: str = "flywheel",
    role_arn: str | None = None,
    capability: str | None = None,
) -> AwsPlatform:
    """The platform of ``stage``, named by its SSM record (on AWS or the local runtime).

    ``role_arn``: assume it first (the session named after who you are) and read the
    record and every resource with its credentials; ``capability``: the writer alias.

    Raises
    ------
    InvalidInputError
        ``stage`` or ``role_arn`` is malformed (naming the option).
    UnauthenticatedError
        The role could not be assumed.
    ConfigError
        The stage has no record here.

    Examples
    --------
    >>> stage_platform("Prod!", backend="local", region="us-east-1")
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: stage: 'Prod!' is not a stage name (lowercase letters, ...
    """
    from flywheel.adapters.ssm import read_platform_record

    if not _STAGE.fullmatch(stage):
        raise InvalidInputError(
            f"stage: {stage!r} is not a stage name (lowercase letters, digits, dashes)",
            field="stage",
        )
    if role_arn is not None and not ROLE_ARN.fullmatch(role_arn):
        raise InvalidInputError(f"to-role-arn: {role_arn!r} is not an IAM role ARN",
                                field="to-role-arn")  # fmt: skip
    session = _session(backend, region)
    if role_arn is not None:
        session = _assumed(session, role_arn, endpoint_url, region)
    reader = session.client("ssm", endpoint_url=endpoint_url, config=CLIENT_CONFIG)
    record = read_platform_record(reader, f"{project}-{stage}")
    values: dict[str, object] = {"backend": backend, "endpoint_url": endpoint_url}
    values["region"] = str(record.get("region") or region) if backend == "aws" else region
    if capability is not None:
        values["records_capability"] = capability
    if record.get("api_url"):
        values["api_url"] = str(record["api_url"])
    settings = Settings.of_deployment(dict(record.get("environment", {})), **values)
    return AwsPlatform(settings, session=session)


def _session(backend: str, region: str) -> boto3.Session:
    if backend == "aws":
        return boto3.Session(region_name=region)
    return boto3.Session(
        region_name=region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def _assumed(
    session: boto3.Session, role_arn: str, endpoint_url: str | None, region: str
) -> boto3.Session:
    sts = session.client("sts", endpoint_url=endpoint_url, config=CLIENT_CONFIG)
    try:
        me = str(sts.get_caller_identity()["Arn"])
        credentials = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name(me), DurationSeconds=3600
        )["Credentials"]
    except (ClientError, BotoCoreError) as err:
        raise UnauthenticatedError(
            f"cannot assume {role_arn}: does the target stage trust this stage's account, "
            "and are you an ML engineer of this stage?",
            field="to-role-arn",
        ) from err
    if not credentials.get("AccessKeyId"):
        raise ConfigError(f"{role_arn} returned no credentials", field="to-role-arn")
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )
