"""A Flywheel state machine: ASL from ``infra/workflows``, logs at ALL, X-Ray, least privilege."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

if TYPE_CHECKING:
    from collections.abc import Sequence

    from infra.context import StageContext


class WorkflowStateMachine(Construct):
    """A STANDARD state machine whose ``DefinitionString`` is the builder's ASL.

    The definition is serialized with ``Stack.to_json_string``: in the template it is an
    ``Fn::Join`` whose only intrinsics are the task functions' ARNs, so the local runtime
    can take it from ``cdk.out`` and substitute its own ARNs.
    The role may invoke exactly the given functions (unqualified ARNs).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        key: str,
        definition: dict[str, Any],
        functions: Sequence[lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        name = ctx.naming.state_machine(key)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=ctx.naming.log_group("states", name),
            retention=ctx.log_retention,
            removal_policy=ctx.removal_policy,
        )
        self.definition = definition
        self.machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                Stack.of(self).to_json_string(definition)
            ),
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=ctx.config.sfn_include_execution_data,
            ),
            tracing_enabled=True,
        )
        self.machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="InvokeTaskFunctions",
                actions=["lambda:InvokeFunction"],
                resources=[fn.function_arn for fn in functions],
            )
        )
