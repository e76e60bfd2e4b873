"""A synthesized stage, as the infra tests see it (see conftest.py for the fixtures)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import STACK_IDS

STACKS = STACK_IDS


@dataclass
class Synth:
    """One stage's synthesized cloud assembly."""

    stage: str
    prefix: str
    outdir: Path
    app: Any
    error: str | None
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    _assertions: dict[str, Any] = field(default_factory=dict)

    def template(self, stack: str) -> Any:
        """``aws_cdk.assertions.Template`` of one stack (built once, from the JSON)."""
        if stack not in self._assertions:
            from aws_cdk.assertions import Template

            self._assertions[stack] = Template.from_json(self.templates[stack])
        return self._assertions[stack]

    def resources(self, resource_type: str, stack: str | None = None) -> dict[str, dict[str, Any]]:
        """Raw resources of one type (all stacks unless ``stack``), keyed by ``stack/logical``."""
        found = {}
        for name, template in self.templates.items():
            if stack and name != stack:
                continue
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == resource_type:
                    found[f"{name}/{logical_id}"] = resource
        return found

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def synthesize(stage: str, outdir: Path, config: Any = None) -> Synth:
    """The stage as configured, or ``config`` (a ``StageConfig`` variant of it)."""
    from infra.app import STACK_IDS, build_app
    from infra.config import load_stage_config

    config = config or load_stage_config(stage)
    app = build_app(config=config, assets="stub", outdir=str(outdir))
    error = None
    try:
        app.synth()
    except Exception as exc:
        error = str(exc)
    synth = Synth(stage, config.prefix, outdir, app, error)
    for stack in STACK_IDS:
        path = outdir / f"{stack}.template.json"
        if path.exists():
            synth.templates[stack] = json.loads(path.read_text())
    return synth


def function_by_name(synth: Synth, function_name: str) -> tuple[str, dict[str, Any]]:
    """(stack, resource) of the Lambda function with this physical name."""
    for key, resource in synth.resources("AWS::Lambda::Function").items():
        if resource["Properties"]["FunctionName"] == function_name:
            return key.split("/")[0], resource
    raise KeyError(function_name)


def role_statements(synth: Synth, function_name: str) -> list[dict[str, Any]]:
    """Every IAM statement attached to the execution role of ``function_name``."""
    stack, function = function_by_name(synth, function_name)
    return statements_of_role(synth, stack, function["Properties"]["Role"]["Fn::GetAtt"][0])


def role_named(synth: Synth, role_name: str) -> tuple[str, str]:
    """(stack, logical id) of the role with this fixed name."""
    for key, resource in synth.resources("AWS::IAM::Role").items():
        if resource["Properties"].get("RoleName") == role_name:
            stack, logical_id = key.split("/")
            return stack, logical_id
    raise KeyError(role_name)


def statements_of_role(synth: Synth, stack: str, role_id: str) -> list[dict[str, Any]]:
    """The role's inline policies, the policies attached to it and its managed policies
    defined in any stack of the app (by ``Ref`` or by name)."""
    role = synth.templates[stack]["Resources"][role_id]
    statements = [
        s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
    ]
    for policy in synth.resources("AWS::IAM::Policy", stack).values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        statements.extend(_managed_policy(synth, stack, arn)["PolicyDocument"]["Statement"])
    return statements


def _managed_policy(synth: Synth, stack: str, arn: Any) -> dict[str, Any]:
    if isinstance(arn, dict) and set(arn) == {"Ref"}:
        properties: dict[str, Any] = synth.templates[stack]["Resources"][arn["Ref"]]["Properties"]
        return properties
    from infra.nag import flatten_reference

    name = flatten_reference(arn).rsplit(":policy/", 1)[1]
    for policy in synth.resources("AWS::IAM::ManagedPolicy").values():
        if policy["Properties"]["ManagedPolicyName"] == name:
            return dict(policy["Properties"])
    raise KeyError(f"managed policy {name} is defined in no stack of the app")


def actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def resources_text(statement: dict[str, Any]) -> str:
    """The statement's resources, intrinsics flattened the way cdk-nag does."""
    from infra.nag import flatten_reference

    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    return " ".join(flatten_reference(r) for r in resources)


def allowed(synth: Synth, function_name: str, action: str, resource_part: str = "") -> bool:
    """Whether the function's role allows ``action`` on a resource containing ``resource_part``."""
    import fnmatch

    for statement in role_statements(synth, function_name):
        if statement["Effect"] != "Allow":
            continue
        if any(
            fnmatch.fnmatchcase(action, pattern) for pattern in actions_of(statement)
        ) and resource_part in resources_text(statement):
            return True
    return False


def can(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether ``statements`` allow ``action`` on ``resource`` and deny neither.

    ``resource`` is a flattened ARN (``<AWS::Partition>``, ``<Api>`` ...) matched the way
    IAM matches ``*`` and ``?``; conditions are ignored, so an allow counts even if its
    condition would not hold (a conservative answer for "cannot" assertions).
    """
    import fnmatch

    def matches(statement: dict[str, Any]) -> bool:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        patterns = [_unhashed(flatten(r)) for r in resources]
        return any(fnmatch.fnmatchcase(action, a) for a in actions_of(statement)) and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in patterns
        )

    from infra.nag import flatten_reference as flatten

    if any(s["Effect"] == "Deny" and matches(s) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in statements)


def _unhashed(text: str) -> str:
    """``<ApiCD79AAA0>`` -> ``<Api>``: tests name resources without their hashes."""
    import re

    return re.sub(r"<([A-Za-z0-9]+?)[0-9A-F]{8}((?:\.[A-Za-z]+)?)>", r"<\1\2>", text)
