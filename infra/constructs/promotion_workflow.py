"""The promotion workflow: publish a pinned version, canary on alias live, bake, judge."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from flywheel.project import ProjectError
from infra.catalog import EVALUATION_STEP, FUNCTIONS, PROMOTION_STEPS, promotion_function_key
from infra.constructs.canary_alarms import all_canary_alarm_names
from infra.constructs.function import FlywheelFunction
from infra.constructs.inference_service import LIVE_ALIAS
from infra.constructs.llm_gateway import (
    CONVERSE_ACTIONS,
    ENVIRONMENT_LIMIT_BYTES,
    GUARDRAIL_ACTIONS,
    USAGE_ACTIONS,
    bedrock_model_ids,
    foundation_model_arn,
    guardrails_arn,
)
from infra.constructs.state_machine import WorkflowStateMachine
from infra.workflows.promotion import PromotionSettings, promotion_definition

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from infra.constructs.data_refs import DataRefs
    from infra.context import StageContext

#: What ``publish_version`` calls (``LambdaServingControl.publish``): it reads the inference
#: function, pins ``FLYWHEEL_MODEL_VERSION`` in its environment and publishes (a Lambda
#: version snapshots code + config).
PUBLISH_ACTIONS = (
    "lambda:GetFunctionConfiguration",
    "lambda:ListVersionsByFunction",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
)
#: The managed policy (``<prefix>-<key>``) that holds them; the serving stack defines it.
PUBLISH_POLICY = "publish-model-versions"
ALIAS_ACTIONS = ("lambda:GetAlias", "lambda:UpdateAlias")
#: Steps that move alias ``live`` (record_failure restores it after a failure).
ALIAS_STEPS = frozenset({"shift_alias", "promote_all", "rollback", "record_failure"})
REGISTRY_WRITERS = frozenset(
    {EVALUATION_STEP, "shift_alias", "promote_all", "rollback", "record_failure"}
)


def inference_functions(ctx: StageContext) -> dict[str, str]:
    """Model name -> its inference function's name."""
    return {m.name: ctx.naming.function("inference", m.name) for m in ctx.config.models}


def serving_control_environment(ctx: StageContext) -> dict[str, str]:
    """What moves alias ``live``: ``FLYWHEEL_INFERENCE_FUNCTIONS``, ``FLYWHEEL_LIVE_ALIAS``
    and ``FLYWHEEL_CANARY_ALARMS`` (JSON by model, and by prompt of ``llm.prompts``)."""
    alarms = all_canary_alarm_names(ctx)
    return {
        "FLYWHEEL_INFERENCE_FUNCTIONS": json.dumps(inference_functions(ctx), sort_keys=True),
        "FLYWHEEL_LIVE_ALIAS": LIVE_ALIAS,
        "FLYWHEEL_CANARY_ALARMS": json.dumps(alarms, sort_keys=True),
    }


def canary_steps_environment(ctx: StageContext) -> str:
    """``FLYWHEEL_CANARY_STEPS``: the canary steps of models and prompts that set their
    own (JSON by name); the others take the stage's one step from the workflow's input."""
    plans = {
        m.name: [step.model_dump(mode="json") for step in m.canary.steps]
        for m in ctx.config.models
        if m.canary is not None
    }
    plans.update(
        {
            name: [step.model_dump(mode="json") for step in prompt.canary.steps]
            for name, prompt in ctx.config.llm.prompts.items()
            if prompt.canary is not None
        }
    )
    return json.dumps(plans, sort_keys=True, separators=(",", ":"))


def evaluation_environment(ctx: StageContext) -> dict[str, str]:
    """The evaluation step's own variables (ADR 81): the stage's LLM policy (budgets and
    teams its calls are charged to, as the gateway's) and the prompts' gates
    (``FLYWHEEL_PROMPT_GATES``, by prompt). It needs none of the canary's variables."""
    return {
        "FLYWHEEL_LLM_POLICY": ctx.config.llm.policy_json(),
        "FLYWHEEL_PROMPT_GATES": ctx.config.llm.gates_json(),
    }


def function_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:function:{name}"


def alarm_arn(name: str) -> str:
    return f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{name}"


class PublishPolicy(Construct):
    """``publish_version``'s rights on the inference functions, defined where they live.

    The serving stack owns the functions and their layers, so only it can name the
    layers' current version ARNs: ``UpdateFunctionConfiguration`` is allowed on the
    functions' unqualified ARNs, and only with those layers (``lambda:Layer``); the
    promotion step's role attaches the policy by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        functions = [function_arn(n) for n in inference_functions(ctx).values()]
        reads = [a for a in PUBLISH_ACTIONS if a != "lambda:UpdateFunctionConfiguration"]
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            managed_policy_name=ctx.naming.managed_policy(PUBLISH_POLICY),
            description=f"{ctx.config.prefix}: pin a model version and publish (promotion)",
            statements=[
                iam.PolicyStatement(actions=reads, resources=functions),
                iam.PolicyStatement(
                    actions=["lambda:UpdateFunctionConfiguration"],
                    resources=functions,
                    conditions={
                        "ForAllValues:StringEquals": {
                            "lambda:Layer": [layer.layer_version_arn for layer in layers]
                        }
                    },
                ),
            ],
        )


class PromotionWorkflow(Construct):
    """Promotion steps (one function and role each) + the promotion state machine.

    The inference functions and canary alarms live in the serving stack; they are
    addressed by their deterministic names (``infra.naming``), listed to the steps in
    ``FLYWHEEL_INFERENCE_FUNCTIONS`` and ``FLYWHEEL_CANARY_ALARMS`` (JSON, by model and
    by prompt of ``llm.prompts``; ``FLYWHEEL_CANARY_STEPS`` likewise).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        data: DataRefs,
        layers: Mapping[str, lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        inference = inference_functions(ctx)
        environment = {
            **serving_control_environment(ctx),
            "FLYWHEEL_CANARY_WEIGHT": str(cfg.canary_weight),
            "FLYWHEEL_CANARY_STEPS": canary_steps_environment(ctx),
            "FLYWHEEL_CANARY_PREDICTION_PSI": str(cfg.alarms.prediction_drift),
        }
        # check_canary may read every alarm it is told about (a prompt's too).
        alarms: dict[str, list[str]] = json.loads(environment["FLYWHEEL_CANARY_ALARMS"])
        self.steps: dict[str, FlywheelFunction] = {}
        for step in PROMOTION_STEPS:
            evaluating = step == EVALUATION_STEP
            fn = FlywheelFunction(
                self,
                "".join(part.title() for part in step.split("_")),
                ctx=ctx,
                spec=FUNCTIONS[promotion_function_key(step)],
                layers=layers,
                environment=evaluation_environment(ctx) if evaluating else environment,
            )
            self.steps[step] = fn
            grantee = fn.function
            if evaluating:
                self._grant_evaluation(fn, data)
            if step in REGISTRY_WRITERS:
                # record_failure cleans up after either workflow; the others only promote.
                capability = "workflows" if step == "record_failure" else "promotion-runs"
                data.grant_records_writer(grantee, capability)
            else:
                data.grant_registry_read(grantee)
            if step == "publish_version":
                fn.role.add_managed_policy(
                    iam.ManagedPolicy.from_managed_policy_name(
                        self, "PublishPolicy", ctx.naming.managed_policy(PUBLISH_POLICY)
                    )
                )
            if step in ALIAS_STEPS:
                iam.Grant.add_to_principal(
                    grantee=grantee,
                    actions=list(ALIAS_ACTIONS),
                    resource_arns=[
                        arn
                        for n in inference.values()
                        for arn in (function_arn(n), f"{function_arn(n)}:{LIVE_ALIAS}")
                    ],
                )
            if step == "check_canary":
                # A prompt canary's check reads the quality monitor's verdict (ADR 82) and
                # whether the prompt's monitor rolls a degraded canary back.
                grantee.add_environment("FLYWHEEL_PROMPT_MONITORS", cfg.llm.monitors_json())
                iam.Grant.add_to_principal(
                    grantee=grantee,
                    actions=["cloudwatch:DescribeAlarms"],
                    resource_arns=[alarm_arn(a) for names in alarms.values() for a in names],
                )
                iam.Grant.add_to_principal(
                    grantee=grantee, actions=["cloudwatch:GetMetricData"], resource_arns=["*"]
                )
                # The prediction checks read the captured predictions of both versions
                # and the canary version's reference profile (its holdout scores).
                data.features.grant_read(grantee, "capture/*")
                data.artifacts.grant_read(grantee, "models/*")

        timeouts = {step: fn.spec.timeout_seconds for step, fn in self.steps.items()}
        self._check_environment_size(self.steps[EVALUATION_STEP].environment)
        self.workflow = WorkflowStateMachine(
            self,
            "Workflow",
            ctx=ctx,
            key="promotion",
            definition=promotion_definition(
                {step: fn.function.function_arn for step, fn in self.steps.items()},
                PromotionSettings(
                    machine_timeout=cfg.promotion_workflow_timeout_seconds,
                    bake_seconds=cfg.bake_seconds,
                    canary_weight=cfg.canary_weight,
                    function_timeouts=timeouts,
                ),
            ),
            functions=[fn.function for fn in self.steps.values()],
        )
        self.machine = self.workflow.machine
        self.record_failure = self.steps["record_failure"].function

    def _grant_evaluation(self, fn: FlywheelFunction, data: DataRefs) -> None:
        """What the evaluation gate needs besides the registry (granted with the records
        writer's ``promotion-runs`` capability): the prompt specs and evaluation sets
        (``prompts/``), the usage table (its calls are budgeted and counted like the
        gateway's), and Converse on the price table's Bedrock models plus guardrails."""
        grantee = fn.function
        data.artifacts.grant_read(grantee, "prompts/*")
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(USAGE_ACTIONS), resource_arns=[data.llm_usage.table_arn]
        )
        data.key.grant_encrypt_decrypt(grantee)
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(CONVERSE_ACTIONS),
            resource_arns=[foundation_model_arn(m) for m in bedrock_model_ids()],
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=list(GUARDRAIL_ACTIONS), resource_arns=[guardrails_arn()]
        )

    def _check_environment_size(self, environment: Mapping[str, str]) -> None:
        """Refuse at synth an evaluation step environment Lambda would refuse (4 KB)."""
        size = len(json.dumps(Stack.of(self).resolve(dict(environment))))
        if size > ENVIRONMENT_LIMIT_BYTES:
            raise ProjectError(
                f"llm: the evaluation step's environment would be about {size} bytes, over "
                f"Lambda's {ENVIRONMENT_LIMIT_BYTES} (FLYWHEEL_LLM_POLICY and "
                "FLYWHEEL_PROMPT_GATES are the parts that grow: fewer prompts or limits)",
                field="llm",
            )
