"""AWS adapters of the workflow ports: Lambda, CloudWatch, EventBridge, Step Functions.

Each takes an injected boto3 client (``client=None`` builds a default one) and turns
service errors into Flywheel errors whose messages never carry the service's text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from flywheel.errors import (
    ConcurrentModificationError,
    EventPublishError,
    FlywheelError,
    ServingControlError,
    TaskTokenError,
)
from flywheel.workflows.ports import AlarmState, AliasRouting, PublishedVersion

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_cloudwatch.client import CloudWatchClient
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_lambda.type_defs import (
        FunctionConfigurationResponseTypeDef,
        PublishVersionRequestTypeDef,
        UpdateFunctionConfigurationRequestTypeDef,
    )
    from mypy_boto3_stepfunctions.client import SFNClient

#: The environment variable that pins an inference function version to a model version.
MODEL_VERSION_VARIABLE = "FLYWHEEL_MODEL_VERSION"
_CONFLICT_CODES = frozenset(
    {"PreconditionFailedException", "ResourceConflictException", "CodeVerificationFailedException"}
)
_REFUSED_TOKEN_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class StepFunctionsError(FlywheelError):
    """Step Functions could not be reached (the decision is recorded; a replay retries)."""

    code = "stepfunctions_unavailable"


class LambdaServingControl:
    """Publishes pinned versions of each model's inference function and routes its alias.

    Parameters
    ----------
    functions
        Model name -> inference function name (``FLYWHEEL_INFERENCE_FUNCTIONS``).
    alias
        The alias that serves traffic (``live``).
    client
        A Lambda client.

    Examples
    --------
    >>> serving = LambdaServingControl({"churn": "flywheel-dev-inference-churn"},
    ...                                client=lambda_client)  # doctest: +SKIP
    >>> serving.publish("churn", 3).lambda_version  # doctest: +SKIP
    '4'
    """

    def __init__(
        self,
        functions: Mapping[str, str],
        *,
        alias: str = "live",
        client: LambdaClient | None = None,
        wait_delay_seconds: int = 2,
    ) -> None:
        self._functions = dict(functions)
        self._alias = alias
        self._client: LambdaClient = client if client is not None else boto3.client("lambda")
        self._delay = wait_delay_seconds

    def _name(self, model: str) -> str:
        try:
            return self._functions[model]
        except KeyError:
            raise ServingControlError(
                f"model {model!r} has no inference function (FLYWHEEL_INFERENCE_FUNCTIONS)",
                field="model_name",
            ) from None

    def publish(self, model: str, model_version: int) -> PublishedVersion:
        """Pin ``FLYWHEEL_MODEL_VERSION`` in the function's configuration and publish.

        The configuration update and the publish are conditional on the function's
        revision, so two concurrent publishes cannot swap their pins.
        """
        name = self._name(model)
        try:
            config = self._client.get_function_configuration(FunctionName=name)
            base = _variables(config)
            base.pop(MODEL_VERSION_VARIABLE, None)
            existing = self._find_pinned(name, model_version, config["CodeSha256"], base)
            if existing is not None:
                return PublishedVersion(
                    function_name=name, lambda_version=existing, model_version=model_version
                )
            update: UpdateFunctionConfigurationRequestTypeDef = {
                "FunctionName": name,
                "Environment": {"Variables": {**base, MODEL_VERSION_VARIABLE: str(model_version)}},
            }
            if config.get("RevisionId"):  # Lambda always sends one; emulators may not
                update["RevisionId"] = config["RevisionId"]
            self._client.update_function_configuration(**update)
            self._client.get_waiter("function_updated").wait(
                FunctionName=name, WaiterConfig={"Delay": self._delay, "MaxAttempts": 150}
            )
            current = self._client.get_function_configuration(FunctionName=name)
            publish: PublishVersionRequestTypeDef = {
                "FunctionName": name,
                "CodeSha256": current["CodeSha256"],
                "Description": f"{model} model version {model_version}",
            }
            if current.get("RevisionId"):
                publish["RevisionId"] = current["RevisionId"]
            published = self._client.publish_version(**publish)
        except (ClientError, BotoCoreError, WaiterError) as err:
            _raise_serving(err, f"publishing a version of {name}")
        if _variables(published).get(MODEL_VERSION_VARIABLE) != str(model_version):
            raise ConcurrentModificationError(
                f"{name} was reconfigured while publishing; try again", field="function"
            )
        return PublishedVersion(
            function_name=name, lambda_version=published["Version"], model_version=model_version
        )

    def _find_pinned(
        self, name: str, model_version: int, code_sha256: str, base: dict[str, str]
    ) -> str | None:
        """The newest version pinned to ``model_version`` with today's code and settings."""
        found: list[int] = []
        paginator = self._client.get_paginator("list_versions_by_function")
        for page in paginator.paginate(FunctionName=name):
            for version in page.get("Versions", []):
                number = version.get("Version", "$LATEST")
                if number == "$LATEST" or version.get("CodeSha256") != code_sha256:
                    continue
                variables = _variables(version)
                pinned = variables.pop(MODEL_VERSION_VARIABLE, None)
                if pinned == str(model_version) and variables == base:
                    found.append(int(number))
        return str(max(found)) if found else None

    def routing(self, model: str) -> AliasRouting:
        name = self._name(model)
        try:
            alias = self._client.get_alias(FunctionName=name, Name=self._alias)
        except (ClientError, BotoCoreError) as err:
            _raise_serving(err, f"reading alias {self._alias} of {name}")
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasRouting(
            primary=alias["FunctionVersion"], weights={k: float(v) for k, v in weights.items()}
        )

    def route(self, model: str, routing: AliasRouting) -> None:
        name = self._name(model)
        try:
            self._client.update_alias(
                FunctionName=name,
                Name=self._alias,
                FunctionVersion=routing.primary,
                RoutingConfig={"AdditionalVersionWeights": dict(routing.weights)},
            )
        except (ClientError, BotoCoreError) as err:
            _raise_serving(err, f"routing alias {self._alias} of {name}")


def _variables(config: FunctionConfigurationResponseTypeDef | Any) -> dict[str, str]:
    return dict((config.get("Environment") or {}).get("Variables") or {})


def _raise_serving(err: ClientError | BotoCoreError | WaiterError, doing: str) -> NoReturn:
    if isinstance(err, ClientError) and _code(err) in _CONFLICT_CODES:
        raise ConcurrentModificationError(
            f"{doing}: the function changed concurrently; try again", field="function"
        ) from err
    reason = _code(err) if isinstance(err, ClientError) else type(err).__name__
    raise ServingControlError(
        f"{doing} failed", field="function", details={"reason": reason}
    ) from err


class CloudWatchCanaryHealth:
    """Reads each model's canary alarms (``FLYWHEEL_CANARY_ALARMS``).

    Examples
    --------
    >>> health = CloudWatchCanaryHealth({"churn": ["churn-canary-errorrate"]},
    ...                                 client=cloudwatch)  # doctest: +SKIP
    >>> health.alarm_states("churn")  # doctest: +SKIP
    {'churn-canary-errorrate': <AlarmState.OK: 'OK'>}
    """

    def __init__(
        self, alarms: Mapping[str, Sequence[str]], *, client: CloudWatchClient | None = None
    ) -> None:
        self._alarms = {model: list(names) for model, names in alarms.items()}
        self._client: CloudWatchClient = (
            client if client is not None else boto3.client("cloudwatch")
        )

    def alarm_states(self, model: str) -> dict[str, AlarmState]:
        names = self._alarms.get(model, [])
        states = dict.fromkeys(names, AlarmState.MISSING)
        try:
            for start in range(0, len(names), 100):
                paginator = self._client.get_paginator("describe_alarms")
                for page in paginator.paginate(
                    AlarmNames=names[start : start + 100],
                    AlarmTypes=["MetricAlarm", "CompositeAlarm"],
                ):
                    alarms: list[Any] = [
                        *page.get("MetricAlarms", []),
                        *page.get("CompositeAlarms", []),
                    ]
                    for alarm in alarms:
                        states[alarm["AlarmName"]] = AlarmState(alarm["StateValue"])
        except (ClientError, BotoCoreError) as err:
            reason = _code(err) if isinstance(err, ClientError) else type(err).__name__
            raise ServingControlError(
                f"could not read the canary alarms of {model!r}", details={"reason": reason}
            ) from err
        return states


class EventBridgePublisher:
    """Puts events on the project bus with this producer's ``source``.

    Examples
    --------
    >>> bus = EventBridgePublisher("flywheel-dev-bus", source="flywheel.approvals",
    ...                            client=events_client)  # doctest: +SKIP
    >>> bus.publish("VersionApproved", {"model_name": "churn", "version": 3})  # doctest: +SKIP
    '6a7e...'
    """

    def __init__(self, bus: str, *, source: str, client: EventBridgeClient | None = None) -> None:
        self._bus = bus
        self._source = source
        self._client: EventBridgeClient = client if client is not None else boto3.client("events")

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        try:
            response = self._client.put_events(
                Entries=[
                    {
                        "EventBusName": self._bus,
                        "Source": self._source,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail, sort_keys=True, default=str),
                    }
                ]
            )
        except (ClientError, BotoCoreError) as err:
            raise EventPublishError(
                f"{detail_type} could not be put on bus {self._bus}", field="event"
            ) from err
        entry = (response.get("Entries") or [{}])[0]
        if response.get("FailedEntryCount") or "EventId" not in entry:
            raise EventPublishError(
                f"bus {self._bus} refused {detail_type}",
                field="event",
                details={"reason": entry.get("ErrorCode")},
            )
        return entry["EventId"]


class StepFunctionsTaskTokens:
    """``SendTaskSuccess`` / ``SendTaskFailure``.

    A refused token (timed out, unknown, already used) raises
    :class:`~flywheel.errors.TaskTokenError`: nothing can resume that task any more.
    Any other failure raises :class:`StepFunctionsError` (worth retrying).

    Examples
    --------
    >>> StepFunctionsTaskTokens(client=sfn).succeed(token, {"ok": 1})  # doctest: +SKIP
    """

    def __init__(self, *, client: SFNClient | None = None) -> None:
        self._client: SFNClient = client if client is not None else boto3.client("stepfunctions")

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        try:
            self._client.send_task_success(
                taskToken=token, output=json.dumps(output, sort_keys=True, default=str)
            )
        except (ClientError, BotoCoreError) as err:
            _raise_token(err)

    def fail(self, token: str, *, error: str, cause: str) -> None:
        try:
            self._client.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])
        except (ClientError, BotoCoreError) as err:
            _raise_token(err)


def _raise_token(err: ClientError | BotoCoreError) -> NoReturn:
    if isinstance(err, ClientError) and _code(err) in _REFUSED_TOKEN_CODES:
        raise TaskTokenError(
            "the workflow no longer waits for this decision (task timed out or gone)",
            field="task_token",
            details={"reason": _code(err)},
        ) from err
    raise StepFunctionsError("Step Functions could not be reached; try again") from err
