"""The LLM gateway: one function that answers ``POST /v1/prompts/{name}/invoke`` for every
prompt, with the stage's LLM policy."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from flywheel.llm.prices import PriceTable, default_prices
from flywheel.project import ProjectError
from flywheel.settings import Settings
from infra.catalog import FUNCTIONS
from infra.constructs.function import FlywheelFunction

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_cdk import aws_lambda as lambda_

    from flywheel.llm.policy import LlmPolicy
    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: Where calls are captured in the features bucket (``FLYWHEEL_LLM_CAPTURE_PREFIX``).
LLM_CAPTURE_PREFIX: str = Settings.model_fields["llm_capture_prefix"].default
#: How often the gateway re-reads each prompt's routing state (champion, canary weight,
#: experiment) in the background (``FLYWHEEL_ROLE_REFRESH_SECONDS``).
ROLE_REFRESH_SECONDS = 30
#: A provider call's read timeout, seconds (``FLYWHEEL_LLM_TIMEOUT_SECONDS``). Retries
#: wait only within it, so a call with a retry ends within about twice this: under the
#: function's 29 s, so the gateway answers its own 504 before API Gateway gives up.
PROVIDER_TIMEOUT_SECONDS = 12
#: What the registry reads of the gateway take (aliases, versions, canary and
#: experiment records, all by key; no index).
REGISTRY_READS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
#: What the budget ledger and the usage counters take: reads by key, and the conditional
#: updates of a reservation and its settlement (``TransactWriteItems`` is authorized per
#: item as these). No scans, no deletes, no batch writes.
USAGE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)
#: What Converse needs (the Bedrock adapter calls ``bedrock-runtime`` ``Converse`` only).
CONVERSE_ACTIONS = ("bedrock:InvokeModel",)
#: What a Converse call with a ``guardrailConfig`` needs on the guardrail.
GUARDRAIL_ACTIONS = ("bedrock:ApplyGuardrail",)
#: Lambda's limit on a function's environment (all variables together), bytes.
ENVIRONMENT_LIMIT_BYTES = 4096


def bedrock_model_ids(prices: PriceTable | None = None) -> list[str]:
    """The Bedrock models a prompt may name: those of the price table (a spec whose model
    has no price cannot be registered, ADR 78).

    Examples
    --------
    >>> "anthropic.claude-3-haiku-20240307-v1:0" in bedrock_model_ids()
    True
    >>> "gpt-4o-mini" in bedrock_model_ids()
    False
    """
    table = prices or default_prices()
    return sorted({p.model_id for p in table.prices if p.provider == "bedrock"})


def foundation_model_arn(model_id: str) -> str:
    """A foundation model of the stage's region (foundation-model ARNs name no account)."""
    return f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}::foundation-model/{model_id}"


def guardrails_arn() -> str:
    """Every guardrail of the stage's account and region."""
    return f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:guardrail/*"


def policy_guardrail_arns(llm: LlmPolicy) -> list[str]:
    """The Bedrock guardrails the stage's prompts judge their calls with in the request
    path (``guardrails.bedrock``), as ARNs: an id becomes the stage's account and region's
    guardrail of that id, an ARN stays as it is. Versions are not part of the ARN.

    Examples
    --------
    >>> from flywheel.llm.policy import LlmPolicy
    >>> policy = LlmPolicy.model_validate({"prompts": {
    ...     "a": {"guardrails": {"input": {}, "bedrock": {"id": "gr1", "version": "2"}}},
    ...     "b": {"guardrails": {"input": {}, "bedrock": {"id": "gr1", "version": "3"}}}}})
    >>> [arn.split(":")[-1] for arn in policy_guardrail_arns(policy)]
    ['guardrail/gr1']
    """
    ids = sorted(
        {
            prompt.guardrails.bedrock.id
            for prompt in llm.prompts.values()
            if prompt.guardrails is not None and prompt.guardrails.bedrock is not None
        }
    )
    return [
        guardrail if guardrail.startswith("arn:") else
        f"arn:{Aws.PARTITION}:bedrock:{Aws.REGION}:{Aws.ACCOUNT_ID}:guardrail/{guardrail}"
        for guardrail in ids
    ]  # fmt: skip


def gateway_environment(ctx: StageContext) -> dict[str, str]:
    """The gateway's own variables (the stage's resource names come with every function):
    the policy without the prompts' canary steps, the capture prefix, the provider
    timeout and the routing refresh."""
    return {
        "FLYWHEEL_LLM_POLICY": ctx.config.llm.policy_json(),
        "FLYWHEEL_LLM_CAPTURE_PREFIX": LLM_CAPTURE_PREFIX,
        "FLYWHEEL_LLM_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
        "FLYWHEEL_ROLE_REFRESH_SECONDS": str(ROLE_REFRESH_SECONDS),
    }


class LlmGateway(Construct):
    """The gateway function (``llm_gateway.handler.handler``, the domain and base layers).

    Permissions, and nothing else:

    - read the registry table by key (prompt aliases, versions, the canary and
      experiment records), and read ``prompts/`` in the artifacts bucket (the specs);
    - read and write the LLM usage table (budget reservations, usage counters);
    - write captured calls under ``llm-capture/`` in the features bucket;
    - ``bedrock:InvokeModel`` on the price table's Bedrock foundation models in the
      stage's region (what ``Converse`` needs), ``bedrock:ApplyGuardrail`` on the
      account's guardrails (a prompt spec may name one) and, by its ARN, on each guardrail
      the policy's request-path guardrails name (``guardrails.bedrock``, ADR 83);
    - the stage key for all of these; its own log group and X-Ray traces.

    It cannot write the registry or the audit trail, put events or read models.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Mapping[str, lambda_.ILayerVersion],
        data: DataRefs,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = FlywheelFunction(
            self,
            "Handler",
            ctx=ctx,
            spec=FUNCTIONS["llm-gateway"],
            layers=layers,
            environment=gateway_environment(ctx),
        )
        fn = self.handler.function
        self._check_environment_size(self.handler.environment)
        iam.Grant.add_to_principal(
            grantee=fn, actions=list(REGISTRY_READS), resource_arns=[data.registry.table_arn]
        )
        data.artifacts.grant_read(fn, "prompts/*")
        iam.Grant.add_to_principal(
            grantee=fn, actions=list(USAGE_ACTIONS), resource_arns=[data.llm_usage.table_arn]
        )
        # The stage key encrypts the tables, the buckets and the captured calls.
        data.key.grant_encrypt_decrypt(fn)
        data.features.grant_put(fn, f"{LLM_CAPTURE_PREFIX}*")
        iam.Grant.add_to_principal(
            grantee=fn,
            actions=list(CONVERSE_ACTIONS),
            resource_arns=[foundation_model_arn(m) for m in bedrock_model_ids()],
        )
        iam.Grant.add_to_principal(
            grantee=fn, actions=list(GUARDRAIL_ACTIONS), resource_arns=[guardrails_arn()]
        )
        # The request path's guardrails, named in the project file: granted by ARN, so the
        # permission they need is reviewable and does not rest on the specs' wildcard.
        configured = policy_guardrail_arns(ctx.config.llm)
        if configured:
            iam.Grant.add_to_principal(
                grantee=fn, actions=list(GUARDRAIL_ACTIONS), resource_arns=configured
            )

    def _check_environment_size(self, environment: Mapping[str, str]) -> None:
        """Refuse at synth what Lambda would refuse at deploy: an environment over 4 KB.

        Tokens (account, region) render longer than their values: an upper bound.
        """
        size = len(json.dumps(Stack.of(self).resolve(dict(environment))))
        if size > ENVIRONMENT_LIMIT_BYTES:
            raise ProjectError(
                f"llm: the gateway's environment would be about {size} bytes, over Lambda's "
                f"{ENVIRONMENT_LIMIT_BYTES} (its policy, FLYWHEEL_LLM_POLICY, is the part "
                "that grows: fewer prompts or patterns)",
                field="llm",
            )
