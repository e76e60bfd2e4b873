"""The target stage's promotion role: who may assume it and how little it may do (ADR 65)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.synth import Synth, actions_of, can, role_named, statements_of_role, synthesize
from tests.infra.test_infra_access import ACCOUNT, arn, artifact, persona, writer

DEV_ACCOUNT = "111111111111"
QA_ACCOUNT = "333333333333"
ROLE = "flywheel-prod-stage-promotion"


@pytest.fixture(scope="module")
def promoting(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Prod, promoted into from dev's and qa's accounts."""
    from infra.config import StageConfig, load_stage_config

    config = StageConfig.model_validate(
        {
            **load_stage_config("prod").model_dump(),
            "promotion_sources": [
                {"stage": "dev", "account": DEV_ACCOUNT},
                {"stage": "qa", "account": QA_ACCOUNT},
            ],
        }
    )
    return synthesize("prod", tmp_path_factory.mktemp("cdk-promoting"), config)


def _role(synth: Synth) -> dict[str, Any]:
    stack, logical_id = role_named(synth, ROLE)
    return dict(synth.templates[stack]["Resources"][logical_id]["Properties"])


def _statements(synth: Synth) -> list[dict[str, Any]]:
    return statements_of_role(synth, *role_named(synth, ROLE))


def test_only_each_source_stages_ml_engineer_role_may_assume_it(promoting: Synth) -> None:
    trust = _role(promoting)["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 2
    for statement, (account, stage) in zip(
        trust, ((DEV_ACCOUNT, "dev"), (QA_ACCOUNT, "qa")), strict=True
    ):
        assert statement["Effect"] == "Allow"
        assert statement["Action"] == "sts:AssumeRole"
        assert account in str(statement["Principal"]["AWS"])
        assert statement["Condition"] == {
            "ArnEquals": {
                "aws:PrincipalArn": {
                    "Fn::Join": [
                        "",
                        [
                            "arn:",
                            {"Ref": "AWS::Partition"},
                            f":iam::{account}:role/flywheel-{stage}-ml-engineer",
                        ],
                    ]
                }
            }
        }
    assert _role(promoting)["MaxSessionDuration"] == 3600


def test_it_puts_models_and_asks_the_writer_for_promotions_only(promoting: Synth) -> None:
    role = _statements(promoting)
    key = "models/iris/promoted-dev-v3/model.onnx"
    assert can(role, "s3:PutObject", artifact(promoting, key))
    assert can(role, "s3:GetObjectVersion", artifact(promoting, key))
    assert can(role, "lambda:InvokeFunction", writer(promoting, "promotions"))
    assert can(role, "ssm:GetParameter", arn("ssm", "parameter/flywheel/flywheel-prod/platform"))
    assert can(role, "dynamodb:Query", "arn:<AWS::Partition>:dynamodb:<AWS::Region>:"
               "<AWS::AccountId>:table/flywheel-prod-RegistryTable")  # fmt: skip


def test_it_can_do_nothing_else(promoting: Synth) -> None:
    role = _statements(promoting)
    for capability in ("operations", "approvals", "training", "promotion-runs", "workflows"):
        assert not can(role, "lambda:InvokeFunction", writer(promoting, capability))
    for key in ("reports/drift.html", "training-sets/x/data.parquet"):
        assert not can(role, "s3:PutObject", artifact(promoting, key))
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention",
                   "s3:PutObjectLegalHold", "s3:BypassGovernanceRetention"):  # fmt: skip
        assert not can(role, action, artifact(promoting, "models/iris/1/model.onnx"))
    actions = {a for s in role if s["Effect"] == "Allow" for a in actions_of(s)}
    writes = ("dynamodb:Put", "dynamodb:Update", "dynamodb:Delete", "dynamodb:BatchWrite")
    assert not {a for a in actions if a.startswith(writes)}
    assert "kms:GenerateMac" not in actions
    assert not {a for a in actions if a.startswith(("iam:", "sts:", "states:"))}
    events = [s for s in role if "events:PutEvents" in actions_of(s)]
    assert {a for a in actions if a.startswith("events:")} == {"events:PutEvents"}
    # only the approvers' announcement: no VersionApproved (which starts a promotion)
    assert [s["Condition"] for s in events] == [
        {"StringEquals": {"events:source": "flywheel.workflows",
                          "events:detail-type": "ApprovalRequested"}}
    ]  # fmt: skip
    assert not can(role, "execute-api:Invoke", arn("execute-api", "<Api>/prod/POST/v1/approvals/1"))


def test_the_ml_engineer_may_assume_other_stages_promotion_roles_only(synth: Synth) -> None:
    mle = persona(synth, "ml-engineer")
    assert can(mle, "sts:AssumeRole", f"arn:<AWS::Partition>:iam::222222222222:role/{ROLE}")
    assert not can(mle, "sts:AssumeRole", f"{ACCOUNT}:role/flywheel-prod-records-writer")
    for other in ("data-scientist", "approver"):
        assert not can(persona(synth, other), "sts:AssumeRole",
                       f"arn:<AWS::Partition>:iam::222222222222:role/{ROLE}")  # fmt: skip


def test_stages_without_sources_have_no_promotion_role(synth: Synth) -> None:
    with pytest.raises(KeyError):
        role_named(synth, f"{synth.prefix}-stage-promotion")


def test_the_role_passes_cdk_nag_and_cfn_lint(promoting: Synth) -> None:
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks
    from cfnlint.api import lint

    assert promoting.error is None, promoting.error
    for pack in (AwsSolutionsChecks(), ServerlessChecks()):
        report = pack.validate_scope(promoting.app)
        assert [
            (v.rule_name, r.construct_path)
            for v in report.violations
            for r in v.violating_resources
        ] == []
    import json

    matches = lint(json.dumps(promoting.templates["FlywheelGovernance"]), regions=["us-east-1"])
    assert [m.rule.id for m in matches if m.rule.id.startswith("E")] == []
