"""cfn-lint on every template of a cloud assembly, with the few CDK-made findings allowed.

``python -m infra.template_lint cdk.out --regions eu-west-1 [...]`` lints the app's
templates and those of nested stage assemblies (``cdk.out/assembly-*``), prints each
problem on one line and exits 1 if there is any. CI runs it after ``cdk synth``.

Examples
--------
>>> allowed("W3005", "dependency already enforced", ("Resources", "Fn", "DependsOn", 1))
True
>>> allowed("E3012", "is not of type 'integer'", ("Resources", "Fn", "Properties"))
False
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def allowed(rule: str, message: str, path: Sequence[str | int]) -> bool:
    """Whether a finding is one CDK produces by design (see the comments)."""
    # CDK adds DependsOn on a function's role *and* its policy; the role edge is redundant
    # with the GetAtt, the policy edge is what matters.
    if rule == "W3005":
        return True
    # CDK Pipelines writes a deploy action's RoleArn as Fn::Join (partition + literal);
    # E3703's other check (TemplatePath names an input artifact) still applies.
    return (
        rule == "E3703"
        and "Fn::Sub over Fn::Join" in message
        and bool(path)
        and path[-1] == "RoleArn"
    )


def templates(assembly: Path) -> list[Path]:
    """Every template of the assembly and of its nested stage assemblies."""
    return sorted([*assembly.glob("*.template.json"), *assembly.glob("assembly-*/*.template.json")])


def lint(assembly: Path, *, regions: Iterable[str]) -> list[str]:
    """``<template>:<line>: <rule> <message>`` for every finding that is not allowed."""
    from cfnlint.api import lint as cfn_lint

    problems = []
    for template in templates(assembly):
        for match in cfn_lint(template.read_text(), regions=list(regions)):
            path = tuple(getattr(match, "path", ()) or ())
            if not allowed(match.rule.id, match.message, path):
                problems.append(
                    f"{template.relative_to(assembly)}:{match.linenumber}: "
                    f"{match.rule.id} {match.message}"
                )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("assembly", type=Path, help="the cloud assembly (cdk.out)")
    parser.add_argument("--regions", nargs="+", default=["us-east-1"])
    args = parser.parse_args(argv)
    found = templates(args.assembly)
    if not found:
        print(f"error: no templates in {args.assembly}", file=sys.stderr)
        return 1
    problems = lint(args.assembly, regions=args.regions)
    for problem in problems:
        print(problem)
    print(json.dumps({"templates": len(found), "problems": len(problems)}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
