"""The settings a project file gives a stage and its models (pure pydantic, no CDK).

The CDK app turns them into its ``StageConfig``; ``flywheel project check`` and
``flywheel init`` validate them without it.

Examples
--------
>>> ModelSettings().memory_mb, StageSettings().api.auth
(1024, 'IAM')
>>> StageSettings(log_retention_days=10)  # doctest: +ELLIPSIS
Traceback (most recent call last):
pydantic_core._pydantic_core.ValidationError: 1 validation error for StageSettings
...
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field, model_validator

from flywheel.llm.gate import PromptGatePolicy  # noqa: TC001 (a field of a pydantic model)
from flywheel.llm.monitor_policy import PromptMonitorPolicy  # noqa: TC001 (a pydantic field)
from flywheel.llm.policy import LlmPolicy, PromptPolicy
from flywheel.models import Frozen
from flywheel.settings import CanaryPlan, CanaryStep
from flywheel.training.engines import TrainingEngineSettings

#: CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}
)

ModelName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,27}[a-z0-9]$")]
ScheduleExpression = Annotated[str, Field(pattern=r"^(rate|cron)\(.+\)$")]
#: An IAM role or user: a full ARN, or ``role/<path/name>`` / ``user/<name>`` in the stage's
#: account. ``*`` may stand for part of the name (IAM Identity Center role names end in a
#: random suffix), never for the account.
IamPrincipal = Annotated[
    str,
    Field(
        pattern=r"^(arn:aws[a-z-]*:iam::\d{12}:)?(role|user)/[A-Za-z0-9+=,.@_/*-]{1,512}$",
    ),
]


class CanarySettings(Frozen):
    """How the promotion workflow rolls a new version out: step by step, each judged.

    Examples
    --------
    >>> steps = [{"weight": 0.05, "bake_minutes": 10}, {"weight": 0.25, "bake_minutes": 30}]
    >>> [s.weight for s in CanarySettings.model_validate({"steps": steps}).steps]
    [0.05, 0.25]
    """

    #: Each step sets alias ``live``'s weight, bakes, then is judged (alarms, predictions);
    #: any breach rolls the whole canary back, a healthy last step promotes.
    steps: CanaryPlan


class ModelSettings(Frozen):
    """How one model is served and retrained: its inference function, schedule, features."""

    #: Reserved concurrency of the inference function (all versions together). The account
    #: must keep 100 unreserved executions, so new accounts (limit 10) need a quota raise.
    reserved_concurrency: int = Field(default=5, ge=1, le=1000)
    memory_mb: int = Field(default=1024, ge=128, le=10240)
    timeout_seconds: int = Field(default=10, ge=1, le=29)  # API Gateway's own limit is 29 s
    #: Scheduled retraining (EventBridge schedule expression, UTC) or ``None`` for none.
    training_schedule: ScheduleExpression | None = "cron(0 3 ? * MON *)"
    #: Provisioned concurrency on alias ``live`` (costs money at rest); ``0`` for none.
    #: Without it, published versions use Lambda SnapStart (the two are exclusive).
    provisioned_concurrency: int = Field(default=0, ge=0)
    #: Online feature view that entity-only predict requests read (``None``: records only),
    #: and its pinned version.
    feature_view: str | None = None
    feature_view_version: int | None = Field(default=None, ge=1)
    #: The model's canary steps; ``None``: one step of the stage's ``canary_weight`` for
    #: its ``bake_minutes``.
    canary: CanarySettings | None = None
    #: Where its Train step runs: the Lambda container (default), AWS Batch on Fargate or
    #: a SageMaker training job, with the engine's settings (ADR 85).
    training: TrainingEngineSettings = TrainingEngineSettings()


#: Most bytes the gateway's policy may take as JSON: it travels in the gateway function's
#: environment (``FLYWHEEL_LLM_POLICY``), which Lambda caps at 4 KB with every other
#: variable (the stage's resource names and the gateway's settings: about 0.8 KB).
LLM_POLICY_MAX_BYTES = 2560


class PromptSettings(PromptPolicy):
    """One prompt in the project file's ``llm.prompts``: its policy, its canary, and the
    evaluation gate its new versions pass before their canary (ADR 81).

    Examples
    --------
    >>> prompt = PromptSettings.model_validate(
    ...     {"teams": ["support"], "canary": {"steps": [{"weight": 0.1, "bake_minutes": 5}]},
    ...      "gate": {"groundedness_min": 0.7, "max_drop_vs_champion": 0.05}}
    ... )
    >>> prompt.teams, [s.weight for s in prompt.canary.steps], prompt.gate.groundedness_min
    (('support',), [0.1], 0.7)
    """

    #: How the promotion workflow rolls a new version of the prompt out (the same steps
    #: as a model's); ``None``: one step of the stage's ``canary_weight`` and bake.
    canary: CanarySettings | None = None
    #: The evaluation gate (``None``: the defaults, :class:`PromptGatePolicy`).
    gate: PromptGatePolicy | None = None
    #: The production quality monitor (``None``: the defaults, :class:`PromptMonitorPolicy`;
    #: ADR 82).
    monitor: PromptMonitorPolicy | None = None


class LlmSettings(LlmPolicy):
    """A stage's ``llm:`` section: the gateway's :class:`~flywheel.llm.policy.LlmPolicy`,
    and each prompt's canary steps (which the promotion workflow reads instead).

    Examples
    --------
    >>> llm = LlmSettings.model_validate({
    ...     "monthly_budget": "50",
    ...     "prompts": {"ticket-summary": {"budget": {"day": "2"},
    ...                 "canary": {"steps": [{"weight": 0.1, "bake_minutes": 5}]}}},
    ... })
    >>> llm.policy_json()
    '{"prompts":{"ticket-summary":{"budget":{"day":"2"}}},"monthly_budget":"50"}'
    """

    prompts: dict[str, PromptSettings] = Field(  # type: ignore[assignment]
        default_factory=dict, max_length=1000
    )

    @model_validator(mode="after")
    def _fits_the_environment(self) -> LlmSettings:
        size = len(self.policy_json().encode())
        if size > LLM_POLICY_MAX_BYTES:
            raise ValueError(
                f"the gateway's policy is {size} bytes as JSON, at most {LLM_POLICY_MAX_BYTES}: "
                "it travels in the gateway function's environment, which Lambda caps at 4 KB"
            )
        return self

    def policy(self) -> LlmPolicy:
        """The gateway's policy: everything but the prompts' canary steps, gates and
        monitors."""
        data = self.model_dump(include=set(LlmPolicy.model_fields))
        for prompt in data["prompts"].values():
            del prompt["canary"]
            del prompt["gate"]
            del prompt["monitor"]
        return LlmPolicy.model_validate(data)

    def gates_json(self) -> str:
        """The prompts' evaluation gates as the evaluation step's ``FLYWHEEL_PROMPT_GATES``
        (by prompt, only those the project file declares; defaults left out).

        Examples
        --------
        >>> LlmSettings.model_validate(
        ...     {"prompts": {"faq": {"gate": {"groundedness_min": 0.8}}, "other": {}}}
        ... ).gates_json()
        '{"faq":{"groundedness_min":0.8}}'
        """
        gates = {
            name: prompt.gate.model_dump(mode="json", exclude_defaults=True)
            for name, prompt in sorted(self.prompts.items())
            if prompt.gate is not None
        }
        return json.dumps(gates, sort_keys=True, separators=(",", ":"))

    def prompts_json(self) -> str:
        """The prompts the quality monitor covers, as ``FLYWHEEL_PROMPTS``.

        Examples
        --------
        >>> LlmSettings.model_validate({"prompts": {"faq": {}, "chat": {}}}).prompts_json()
        '["chat","faq"]'
        """
        return json.dumps(sorted(self.prompts), separators=(",", ":"))

    def monitors_json(self) -> str:
        """The prompts' monitor policies as the quality monitor's ``FLYWHEEL_PROMPT_MONITORS``
        (by prompt, only those the project file declares; defaults left out).

        Examples
        --------
        >>> LlmSettings.model_validate(
        ...     {"prompts": {"faq": {"monitor": {"sample_rate": 0.5}}, "other": {}}}
        ... ).monitors_json()
        '{"faq":{"sample_rate":0.5}}'
        """
        monitors = {
            name: prompt.monitor.model_dump(mode="json", exclude_defaults=True)
            for name, prompt in sorted(self.prompts.items())
            if prompt.monitor is not None
        }
        return json.dumps(monitors, sort_keys=True, separators=(",", ":"))

    def policy_json(self) -> str:
        """:meth:`policy` as the gateway's ``FLYWHEEL_LLM_POLICY``: compact, defaults left
        out (``LlmPolicy.model_validate`` puts them back)."""
        return self.policy().model_dump_json(exclude_defaults=True)


class CanaryAlarmConfig(Frozen):
    """Thresholds of the alarms that ``check_canary`` reads during the bake."""

    error_rate_percent: float = Field(default=2.0, gt=0, le=100)
    p99_latency_ms: int = Field(default=500, ge=1)
    validation_failure_rate_percent: float = Field(default=5.0, gt=0, le=100)
    #: Population stability index of the canary's prediction distribution vs the reference.
    prediction_drift: float = Field(default=0.2, gt=0)
    period_seconds: Literal[60, 300] = 60
    evaluation_periods: int = Field(default=3, ge=1)
    datapoints_to_alarm: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _m_of_n(self) -> CanaryAlarmConfig:
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm must be <= evaluation_periods")
        return self


class ApiConfig(Frozen):
    """The REST API in front of inference, approvals and feedback."""

    #: Method authorization. ``NONE`` is deliberately not an option.
    auth: Literal["IAM", "COGNITO"] = "IAM"
    #: Existing user pool to authorize against when ``auth == "COGNITO"``.
    cognito_user_pool_arn: str | None = None
    throttle_rate_limit: float = Field(default=50, gt=0)
    throttle_burst_limit: int = Field(default=100, gt=0)
    #: Largest batch accepted by ``/predict`` (also enforced by the handler).
    max_batch_records: int = Field(default=100, ge=1, le=10_000)
    #: Execution log level; request/response bodies are never logged (data trace off).
    logging_level: Literal["ERROR", "INFO"] = "ERROR"
    #: Regional endpoint TLS policy; every option here refuses anything older than TLS 1.2.
    tls_security_policy: Literal[
        "SecurityPolicy_TLS13_1_2_PFS_PQ_2025_09",
        "SecurityPolicy_TLS13_1_2_PQ_2025_09",
        "SecurityPolicy_TLS13_1_3_2025_09",
    ] = "SecurityPolicy_TLS13_1_2_PFS_PQ_2025_09"
    #: Attach a WAF web ACL (AWS managed common and known-bad-inputs rules, a per-IP rate
    #: limit, the documented body limit). ~9 USD/month.
    waf: bool = False
    waf_rate_limit_per_5min: int = Field(default=2000, ge=10)
    #: Let this app set the account-wide API Gateway CloudWatch role (needed for execution
    #: logs). Turn off if another stack in the account already manages it.
    manage_cloudwatch_role: bool = True

    @model_validator(mode="after")
    def _cognito_needs_pool(self) -> ApiConfig:
        if self.auth == "COGNITO" and not self.cognito_user_pool_arn:
            raise ValueError("auth=COGNITO needs cognito_user_pool_arn")
        return self


#: An address SNS can deliver to (one ``@``, a dotted domain; SNS confirms it by email).
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$", max_length=254)]


class SlackChannel(Frozen):
    """A Slack channel that AWS Chatbot posts to (the workspace is authorized once, in the
    Chatbot console; its id and the channel's id are what CloudFormation needs)."""

    workspace_id: Annotated[str, Field(pattern=r"^[0-9A-Z]{1,255}$")]
    channel_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,256}$")]


class NotificationsConfig(Frozen):
    """Who the stage's notifications topic reaches: alarms, approvals, bias, tampering."""

    #: Email subscriptions (each address confirms its subscription once).
    emails: tuple[EmailAddress, ...] = ()
    slack: SlackChannel | None = None

    @model_validator(mode="after")
    def _unique(self) -> NotificationsConfig:
        lowered = [e.lower() for e in self.emails]
        if len(set(lowered)) != len(lowered):
            raise ValueError("emails must be unique")
        return self


class PromotionSource(Frozen):
    """A stage allowed to promote into this one: its name and its AWS account.

    Examples
    --------
    >>> PromotionSource(stage="dev", account="111111111111").stage
    'dev'
    """

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,9}$")]
    account: Annotated[str, Field(pattern=r"^\d{12}$")]


GitHubRepository = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")]
BranchName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]{1,200}$")]


class CiConfig(Frozen):
    """GitHub Actions' access to this stage (``FlywheelCiAccess``, deployed by an admin);
    derived from the project's ``ci`` when that is GitHub Actions and this is unset."""

    #: ``owner/repo`` whose workflows may assume the deploy role.
    github_repository: GitHubRepository
    #: The branch whose pushes deploy (``sub`` = ``repo:<repo>:ref:refs/heads/<branch>``).
    branch: BranchName = "main"
    #: Trust jobs of this GitHub environment instead of the branch
    #: (``repo:<repo>:environment:<name>``): its protection rules gate every use of the role.
    environment: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,255}$")] | None = None
    #: The account's existing GitHub OIDC provider (one per account); ``None`` creates it.
    oidc_provider_arn: (
        Annotated[
            str,
            Field(
                pattern=r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
            ),
        ]
        | None
    ) = None


class StageSettings(Frozen):
    """Everything about a stage that is not its models: safety, evidence, workflows, people."""

    #: Pin the target environment; ``None`` keeps the stacks environment-agnostic.
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None

    # Data safety
    retain_data: bool = True
    deletion_protection: bool = True
    termination_protection: bool = True
    log_retention_days: int = 30
    access_log_retention_days: int = Field(default=90, ge=1)
    noncurrent_version_retention_days: int = Field(default=90, ge=1)

    # Evidence: write-once artifacts and anchors (S3 Object Lock)
    #: COMPLIANCE: nobody, not even the root user, deletes a locked version before its
    #: retention ends; GOVERNANCE: principals with s3:BypassGovernanceRetention can.
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"
    #: How long models, training sets and reports stay locked.
    artifact_retention_days: int = Field(default=3 * 365, ge=1)
    #: How long signed audit heads (anchors) stay locked.
    anchor_retention_days: int = Field(default=7 * 365, ge=1)
    #: How often the anchor job copies signed heads out of DynamoDB.
    anchor_schedule: ScheduleExpression = "rate(1 hour)"

    # Workflows
    #: The canary of models that set no ``canary.steps``: one step of this weight ...
    canary_weight: float = Field(default=0.1, gt=0, lt=1)
    #: ... judged after this long.
    bake_minutes: int = Field(default=10, ge=1, le=1440)
    approval_timeout_hours: int = Field(default=72, ge=1, le=24 * 30)
    training_timeout_hours: int = Field(default=6, ge=1, le=24)
    training_memory_mb: int = Field(default=3008, ge=512, le=10240)
    training_ephemeral_storage_mb: int = Field(default=2048, ge=512, le=10240)
    #: Step Functions logs at level ALL; execution data stays out of the logs by default
    #: because task inputs carry approval task tokens and data lineage.
    sfn_include_execution_data: bool = False

    # Monitoring
    drift_schedule: ScheduleExpression = "rate(1 hour)"
    performance_schedule: ScheduleExpression = "rate(6 hours)"
    #: How often the LLM quality monitor scores the prompts' captured calls (ADR 82).
    llm_monitor_schedule: ScheduleExpression = "rate(1 hour)"
    #: How often new offline feature rows are materialized to the online store.
    materialization_schedule: ScheduleExpression = "rate(15 minutes)"
    #: Feature views to materialize (empty: every registered view, latest version).
    feature_views: tuple[str, ...] = ()
    alarms: CanaryAlarmConfig = CanaryAlarmConfig()
    api: ApiConfig = ApiConfig()
    notifications: NotificationsConfig = NotificationsConfig()

    # People
    #: Who may call ``POST /v1/approvals/{id}`` (the API's resource policy denies everyone
    #: else, whatever their IAM policies allow). ``None``: the stage's approver persona
    #: role ``<prefix>-approver``. Needs ``api.auth == "IAM"``.
    approver_principals: tuple[IamPrincipal, ...] | None = None
    #: Stages whose ML engineers may promote model versions into this one, each
    #: ``{stage, account}`` (``flywheel stage promote``, ADR 65); none by default.
    promotion_sources: tuple[PromotionSource, ...] = ()

    # CI/CD
    #: GitHub Actions deploy access (``-c ci=true`` adds ``FlywheelCiAccess``); default off.
    ci: CiConfig | None = None

    def canary_steps(self, model: ModelSettings | PromptSettings) -> tuple[CanaryStep, ...]:
        """A model's or a prompt's canary steps: its own, else one step of the stage's
        defaults.

        Examples
        --------
        >>> [(s.weight, s.bake_minutes) for s in StageSettings().canary_steps(ModelSettings())]
        [(0.1, 10)]
        """
        if model.canary is not None:
            return model.canary.steps
        return (CanaryStep(weight=self.canary_weight, bake_minutes=self.bake_minutes),)

    @model_validator(mode="after")
    def _checks(self) -> StageSettings:
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {sorted(LOG_RETENTION_DAYS)}")
        self._check_approvers()
        return self

    def _check_approvers(self) -> None:
        if self.approver_principals is None:
            return
        if not self.approver_principals:
            raise ValueError(
                "approver_principals must name at least one principal (leave it unset for "
                "the approver persona role)"
            )
        if self.api.auth != "IAM":
            raise ValueError(
                "approver_principals needs api.auth=IAM: Cognito callers have no IAM principal"
            )
        for principal in self.approver_principals:
            if principal.rsplit(":", 1)[-1].split("/", 1)[1].startswith("*"):
                raise ValueError(
                    f"approver_principals: {principal} starts its name with a wildcard "
                    "(it would admit every role or user)"
                )
            account = principal.split(":")[4] if principal.startswith("arn:") else None
            if account is not None and self.account is not None and account != self.account:
                raise ValueError(
                    f"approver_principals: {principal} is not in the stage's account "
                    f"{self.account} (the API admits no other account)"
                )
