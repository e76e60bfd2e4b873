"""Read the state machine definitions back out of a synthesized template.

The local runtime runs exactly what the CDK app synthesized: it takes a template from
``cdk.out``, finds the state machine by name and substitutes its own Lambda ARNs for the
``Fn::GetAtt [<function>, "Arn"]`` parts of ``DefinitionString`` (the only intrinsics the
definitions contain, see :mod:`infra.workflows.asl`).

Examples
--------
>>> template = {"Resources": {
...     "Fn1": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f-one"}},
...     "Sm": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
...         "StateMachineName": "demo",
...         "DefinitionString": {"Fn::Join": ["", ['{"StartAt":"A","States":{"A":{"Type":"Task",'
...             '"Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"',
...             {"Fn::GetAtt": ["Fn1", "Arn"]}, '","Payload.$":"$"},"End":true}}}']]}}}}}
>>> definition = state_machine_definition(template, "demo", lambda name: f"arn:local:{name}")
>>> definition["States"]["A"]["Parameters"]["FunctionName"]
'arn:local:f-one'
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


def state_machines(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``StateMachineName`` -> resource, for every state machine in ``template``."""
    return {
        resource["Properties"]["StateMachineName"]: resource
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    }


def state_machine_definition(
    template: dict[str, Any],
    name: str,
    function_arn: Callable[[str], str],
) -> dict[str, Any]:
    """The definition of state machine ``name`` with every function ARN resolved.

    ``function_arn`` maps a Lambda ``FunctionName`` (the physical name in the template)
    to the ARN to use; intrinsics other than ``Fn::GetAtt <function> Arn`` are rejected.
    """
    resources = template["Resources"]
    definition = state_machines(template)[name]["Properties"]["DefinitionString"]
    if isinstance(definition, str):
        parsed: dict[str, Any] = json.loads(definition)
        return parsed
    delimiter, parts = definition["Fn::Join"]
    text = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
            continue
        logical_id, attribute = part["Fn::GetAtt"]
        resource = resources[logical_id]
        if resource["Type"] != "AWS::Lambda::Function" or attribute != "Arn":
            raise ValueError(f"unexpected intrinsic in the definition: {part}")
        text.append(function_arn(resource["Properties"]["FunctionName"]))
    resolved: dict[str, Any] = json.loads(delimiter.join(text))
    return resolved
