"""Typed settings for the composition root, read from ``FLYWHEEL_*`` environment variables."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.errors import ConfigError
from flywheel.models import Frozen
from flywheel.resources import BUCKETS, TABLES

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "LOCAL_CREDENTIALS",
    "MAX_CANARY_STEPS",
    "RESOURCE_VARIABLES",
    "CanaryPlan",
    "CanaryStep",
    "Settings",
]

#: Most steps a canary may take (each costs a bake and a check).
MAX_CANARY_STEPS = 10


class CanaryStep(Frozen):
    """One step of a canary: the share of live traffic the new version gets, and how long.

    Examples
    --------
    >>> CanaryStep(weight=0.05, bake_minutes=10).bake_seconds
    600
    """

    weight: float = Field(gt=0, lt=1, description="Share of alias live's traffic.")
    bake_minutes: int = Field(ge=1, le=1440, description="Wait before the step is judged.")

    @property
    def bake_seconds(self) -> int:
        return self.bake_minutes * 60


def _ordered(steps: tuple[CanaryStep, ...]) -> tuple[CanaryStep, ...]:
    for number, (before, after) in enumerate(itertools.pairwise(steps), start=2):
        if after.weight <= before.weight:
            raise ValueError(
                f"weights must increase from step to step: step {number} has {after.weight}, "
                f"step {number - 1} {before.weight}"
            )
    return steps


#: A canary's steps, in order: 1 to :data:`MAX_CANARY_STEPS`, weights strictly increasing.
#: After the last step is judged healthy the version takes all traffic.
CanaryPlan = Annotated[
    tuple[CanaryStep, ...],
    Field(min_length=1, max_length=MAX_CANARY_STEPS),
    AfterValidator(_ordered),
]

#: The credentials every client of the local runtime uses (moto accepts any).
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "flywheel-local",
    "AWS_SECRET_ACCESS_KEY": "flywheel-local",
    "AWS_SESSION_TOKEN": "flywheel-local",
}

#: Settings field -> the environment variable that names the deployed resource.
RESOURCE_VARIABLES: dict[str, str] = {
    variable.removeprefix("FLYWHEEL_").lower(): variable
    for variable in [t.env_var for t in TABLES] + [b.env_var for b in BUCKETS]
}
_BUCKET_FIELDS = frozenset(b.env_var.removeprefix("FLYWHEEL_").lower() for b in BUCKETS)
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KMS_KEY = re.compile(
    r"^(alias/[A-Za-z0-9/_-]{1,250}|[0-9a-f-]{36}|mrk-[0-9a-f]{32}"
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[A-Za-z0-9-]+|alias/[A-Za-z0-9/_-]+))$"
)


class Settings(BaseSettings):
    """Where Flywheel keeps its state and how it reaches it.

    ``backend="aws"`` uses the ambient AWS credentials and needs every resource name
    (``FLYWHEEL_REGISTRY_TABLE`` …): a missing or malformed one raises
    :class:`~flywheel.errors.ConfigError` naming the variable, at construction.
    ``backend="local"`` talks to the local runtime at ``endpoint_url``; the CLI and the
    SDK fill in its endpoint and resource names from the runtime itself.

    Examples
    --------
    >>> Settings(backend="local").registry_table is None
    True
    >>> Settings(backend="aws")
    Traceback (most recent call last):
    ...
    flywheel.errors.ConfigError: FLYWHEEL_REGISTRY_TABLE is not set (FLYWHEEL_BACKEND=aws needs ...
    """

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", extra="ignore")

    backend: Literal["local", "aws"] = "local"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    registry_table: str | None = None
    audit_table: str | None = None
    online_features_table: str | None = None
    idempotency_table: str | None = None
    llm_usage_table: str | None = None
    artifacts_bucket: str | None = None
    features_bucket: str | None = None
    anchors_bucket: str | None = None
    #: The audit writer's KMS HMAC key (alias or ARN) that signs chain heads
    #: (``FLYWHEEL_AUDIT_KEY``); required with ``backend="aws"``.
    audit_key: str | None = None
    #: The records writer function (``FLYWHEEL_RECORDS_WRITER``): when set, every registry
    #: and audit write goes through it, using ``records_capability`` (its alias; people:
    #: ``training`` or ``operations``).
    records_writer: str | None = None
    records_capability: str = "operations"
    #: The records writer takes the actor its callers name (the local runtime only, where
    #: ``--actor`` is allowed); in AWS people prove who they are.
    trust_asserted_actors: bool = False
    #: The deployed REST API's invoke URL (people's approvals go through it in AWS).
    api_url: str | None = None
    #: The approval function (the local runtime's stand-in for the approvals route).
    approval_function: str | None = None
    #: The retrain function (the local runtime's stand-in for the retrain route).
    retrain_function: str | None = None
    local_port: int = Field(default=5055, ge=1, le=65534)
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
    #: Model name -> its canary steps (JSON in ``FLYWHEEL_CANARY_STEPS``); a model not
    #: listed takes one step of ``canary_weight`` (baked as long as the workflow says).
    canary_steps: dict[str, CanaryPlan] = Field(default_factory=dict)
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

    # -- LLM providers (ADR 78) --------------------------------------------------------------
    #: How long one provider call may take (read timeout), seconds.
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=900)
    #: Calls per completion at most, throttled or unavailable ones retried with jitter.
    llm_max_attempts: int = Field(default=3, ge=1, le=10)
    #: How long a guardrail's judge (Bedrock ``ApplyGuardrail``) may take in the gateway's
    #: request path, seconds: the read timeout, and the deadline of its one retry.
    guardrail_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    #: The OpenAI-compatible endpoint's base URL (``.../v1``); its API key, if any, is read
    #: from ``FLYWHEEL_OPENAI_API_KEY`` at each call and never stored.
    openai_base_url: str | None = None
    #: The stage's LLM policy (JSON in ``FLYWHEEL_LLM_POLICY``): budgets, teams, capture
    #: policies and canary alarms per prompt (:class:`flywheel.llm.policy.LlmPolicy`).
    llm_policy: dict[str, Any] = Field(default_factory=dict)
    #: Where the gateway captures calls, in the features bucket (ADR 80).
    llm_capture_prefix: str = Field(default="llm-capture/", pattern=r"^[a-z0-9-]+/$")
    #: Prompt name -> its evaluation gate (JSON in ``FLYWHEEL_PROMPT_GATES``; the project
    #: file's ``llm.prompts.<name>.gate``, :class:`flywheel.llm.gate.PromptGatePolicy`).
    prompt_gates: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Prompt name -> its production monitor (JSON in ``FLYWHEEL_PROMPT_MONITORS``; the
    #: project file's ``llm.prompts.<name>.monitor``,
    #: :class:`flywheel.llm.monitor_policy.PromptMonitorPolicy`): the quality monitor's
    #: policy, and whether its verdict rolls a canary back (ADR 82).
    prompt_monitors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: Evaluation set items answered at once by the evaluation gate (ADR 81).
    evaluation_concurrency: int = Field(default=4, ge=1, le=32)

    @model_validator(mode="after")
    def _resource_names(self) -> Self:
        for name, variable in RESOURCE_VARIABLES.items():
            value = getattr(self, name)
            if value is None:
                if self.backend == "aws":
                    raise ConfigError(
                        f"{variable} is not set (FLYWHEEL_BACKEND=aws needs every resource "
                        "name of the deployment)",
                        field=variable,
                    )
                continue
            pattern = _BUCKET_NAME if name in _BUCKET_FIELDS else _TABLE_NAME
            if not pattern.fullmatch(value):
                kind = "an S3 bucket" if name in _BUCKET_FIELDS else "a DynamoDB table"
                raise ConfigError(f"{variable}={value!r} is not {kind} name", field=variable)
        if self.audit_key is None and self.backend == "aws":
            raise ConfigError(
                "FLYWHEEL_AUDIT_KEY is not set (FLYWHEEL_BACKEND=aws signs every audit head "
                "with the deployment's KMS key)",
                field="FLYWHEEL_AUDIT_KEY",
            )
        if self.audit_key is not None and not _KMS_KEY.fullmatch(self.audit_key):
            raise ConfigError(
                f"FLYWHEEL_AUDIT_KEY={self.audit_key!r} is not a KMS key alias, id or ARN",
                field="FLYWHEEL_AUDIT_KEY",
            )
        return self

    def resource(self, name: str) -> str:
        """The resource name in field ``name``; :class:`ConfigError` naming its variable if unset.

        Examples
        --------
        >>> Settings(backend="local", audit_table="audit").resource("audit_table")
        'audit'
        >>> Settings(backend="local").resource("audit_table")
        Traceback (most recent call last):
        ...
        flywheel.errors.ConfigError: FLYWHEEL_AUDIT_TABLE is not set ...
        """
        value: str | None = getattr(self, name)
        if value is None:
            raise ConfigError(
                f"{RESOURCE_VARIABLES[name]} is not set (start the local runtime through the "
                "CLI, or name the deployment's resources)",
                field=RESOURCE_VARIABLES[name],
            )
        return value

    def resource_environment(self) -> dict[str, str]:
        """The ``FLYWHEEL_*`` resource variables these settings name (unset ones left out).

        Examples
        --------
        >>> Settings(backend="local", audit_table="audit").resource_environment()
        {'FLYWHEEL_AUDIT_TABLE': 'audit'}
        """
        return {
            variable: value
            for name, variable in RESOURCE_VARIABLES.items()
            if (value := getattr(self, name)) is not None
        }

    @classmethod
    def of_deployment(cls, environment: Mapping[str, str], **values: Any) -> Self:
        """Settings from a deployment's ``FLYWHEEL_*`` variables, plus ``values``.

        Fields neither names are read from this process's environment as usual.

        Examples
        --------
        >>> names = {"FLYWHEEL_REGISTRY_TABLE": "reg", "FLYWHEEL_AUDIT_TABLE": "aud",
        ...          "FLYWHEEL_ONLINE_FEATURES_TABLE": "onl", "FLYWHEEL_IDEMPOTENCY_TABLE": "idm",
        ...          "FLYWHEEL_LLM_USAGE_TABLE": "use",
        ...          "FLYWHEEL_ARTIFACTS_BUCKET": "art-1", "FLYWHEEL_FEATURES_BUCKET": "fea-1",
        ...          "FLYWHEEL_ANCHORS_BUCKET": "anc-1", "FLYWHEEL_AUDIT_KEY": "alias/audit"}
        >>> Settings.of_deployment(names, backend="aws").features_bucket
        'fea-1'
        """
        return cls(**{**_fields(cls, environment), **values})

    def with_resources(
        self, environment: Mapping[str, str], *, endpoint_url: str | None = None
    ) -> Self:
        """These settings updated from ``FLYWHEEL_*`` variables (a deployment's names).

        Examples
        --------
        >>> s = Settings(backend="local").with_resources({"FLYWHEEL_AUDIT_TABLE": "a-1"})
        >>> s.audit_table
        'a-1'
        """
        update = _fields(type(self), environment)
        if endpoint_url is not None:
            update["endpoint_url"] = endpoint_url
        return type(self).model_validate({**self.model_dump(), **update})


def _fields(settings_type: type[Settings], environment: Mapping[str, str]) -> dict[str, Any]:
    """``FLYWHEEL_*`` variables as field values (JSON-valued ones decoded, as env parsing does)."""
    fields: dict[str, Any] = {}
    for key, value in environment.items():
        name = key.removeprefix("FLYWHEEL_").lower()
        if key.startswith("FLYWHEEL_") and name in settings_type.model_fields:
            fields[name] = json.loads(value) if value[:1] in "{[" else value
    return fields
