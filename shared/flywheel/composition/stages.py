"""Another stage's platform, found through its SSM record (``/flywheel/<prefix>/platform``).

A stage promotion (ADR 65) works on two stages at once: the one the process is set up
for, and another one, possibly in another account through an assumed role.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.composition.clients import CLIENT_CONFIG, ClientFactory
from flywheel.composition.platform import AwsPlatform
from flywheel.errors import ConfigError, InvalidInputError, UnauthenticatedError

if TYPE_CHECKING:
    from flywheel.settings import Settings

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
    base: Settings,
    project: str = "flywheel",
    role_arn: str | None = None,
    principal: str = "flywheel",
    capability: str | None = None,
) -> AwsPlatform:
    """The platform of ``stage``, named by its SSM record, reached as ``base`` reaches AWS.

    ``role_arn``: assume it first (session named after ``principal``) and read the record
    and every resource with its credentials; ``capability``: the writer alias to use.

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
    >>> from flywheel.settings import Settings
    >>> stage_platform("Prod!", base=Settings(backend="local"))
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidInputError: to: 'Prod!' is not a stage name (lowercase letters, ...
    """
    from flywheel.adapters.ssm import read_platform_record

    if not _STAGE.fullmatch(stage):
        raise InvalidInputError(
            f"to: {stage!r} is not a stage name (lowercase letters, digits, dashes)", field="to"
        )
    if role_arn is not None and not ROLE_ARN.fullmatch(role_arn):
        raise InvalidInputError(f"to-role-arn: {role_arn!r} is not an IAM role ARN",
                                field="to-role-arn")  # fmt: skip
    factory = ClientFactory.for_settings(base)
    session: boto3.Session | None = None
    if role_arn is not None:
        session = _assumed(factory, role_arn, principal, base.region)
    reader = (session or factory.session).client(
        "ssm", endpoint_url=base.endpoint_url, config=CLIENT_CONFIG
    )
    record = read_platform_record(reader, f"{project}-{stage}")
    settings = base.with_resources(dict(record.get("environment", {})))
    update: dict[str, object] = {}
    if capability is not None:
        update["records_capability"] = capability
    if record.get("api_url"):
        update["api_url"] = str(record["api_url"])
    if base.backend == "aws" and record.get("region"):
        update["region"] = str(record["region"])
    settings = type(settings).model_validate({**settings.model_dump(), **update})
    return AwsPlatform(settings, session=session)


def _assumed(factory: ClientFactory, role_arn: str, principal: str, region: str) -> boto3.Session:
    sts = factory.client("sts")
    try:
        credentials = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name(principal), DurationSeconds=3600
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
