"""cdk-nag (AwsSolutions + Serverless) and cfn-lint on the real app, every stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.synth import STACKS, Synth

ACKNOWLEDGEMENTS = Path(__file__).with_name("nag_acknowledgements.json")
#: cfn-lint warnings CDK itself produces, each with why it is harmless.
ALLOWED_CFN_LINT_WARNINGS = {
    # CDK adds DependsOn on a function's role *and* its policy; the role edge is redundant
    # with the GetAtt, the policy edge is what matters (the function must not start
    # before its permissions exist).
    "W3005",
}


def test_synthesis_passes_with_the_rule_packs_registered(synth: Synth) -> None:
    # Given the real app with AwsSolutions and Serverless registered through
    # Validations.of(app); When it synthesizes; Then no finding interrupts synthesis.
    assert synth.error is None, synth.error
    assert set(synth.templates) == set(STACKS)


def test_validation_report_has_no_findings(synth: Synth) -> None:
    # cdk-nag, CDK's own CloudFormation validation and construct annotations (warnings
    # included) all report here.
    report = synth.validation_report()
    findings = [
        (plugin["pluginName"], violation["ruleName"], violation["description"][:200])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
    ]
    assert findings == []


def test_rule_packs_find_nothing_unacknowledged(synth: Synth) -> None:
    # The same packs, run directly on the construct tree: nothing left to report.
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        report = pack.validate_scope(synth.app)
        unacknowledged = [
            (violation.rule_name, resource.construct_path)
            for violation in report.violations
            for resource in violation.violating_resources
        ]
        assert unacknowledged == [], pack.name


def test_rule_packs_do_report_an_insecure_resource() -> None:
    # Control: the packs are live, so "no findings" above means something.
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = App()
    stack = Stack(app, "Control")
    s3.Bucket(stack, "Plain", enforce_ssl=False)
    report = AwsSolutionsChecks().validate_scope(app)
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= {v.rule_name for v in report.violations}


def test_acknowledgements_match_the_reviewed_list(synth: Synth) -> None:
    from infra.nag import collect_acknowledgements

    expected = json.loads(ACKNOWLEDGEMENTS.read_text())["stages"][synth.stage]
    actual = collect_acknowledgements(synth.app, prefix=synth.prefix)
    key = lambda a: (a["path"], a["id"], a["reason"])  # noqa: E731
    missing = sorted(set(map(key, expected)) - set(map(key, actual)))
    unreviewed = sorted(set(map(key, actual)) - set(map(key, expected)))
    assert not unreviewed, (
        "acknowledged in code but not in nag_acknowledgements.json "
        f"(review, then `python -m infra.nag_report --write`): {unreviewed[:5]}"
    )
    assert not missing, f"listed but no longer acknowledged: {missing[:5]}"


def test_each_acknowledgement_names_one_finding_on_one_resource(synth: Synth) -> None:
    from infra.nag import collect_acknowledgements

    for ack in collect_acknowledgements(synth.app, prefix=synth.prefix):
        stack, _, inner = ack["path"].partition("/")
        assert stack in STACKS, ack
        assert inner, f"stack-wide acknowledgement: {ack}"
        assert ack["id"].startswith(("AwsSolutions-", "Serverless-")), ack
        if ack["id"].startswith(("AwsSolutions-IAM5", "AwsSolutions-IAM4")):
            assert re.search(r"\[.+\]$", ack["id"]), f"not per finding: {ack}"
        assert len(ack["reason"]) >= 60, f"reason too thin: {ack}"


@pytest.mark.parametrize("stack", STACKS)
def test_cfn_lint_reports_no_errors(synth: Synth, stack: str) -> None:
    from cfnlint.api import lint

    matches = lint(
        json.dumps(synth.templates[stack]), regions=["us-east-1", "eu-west-1", "eu-central-1"]
    )
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    other = [
        f"{m.rule.id} {m.message}"
        for m in matches
        if not m.rule.id.startswith("E") and m.rule.id not in ALLOWED_CFN_LINT_WARNINGS
    ]
    assert errors == []
    assert other == []
