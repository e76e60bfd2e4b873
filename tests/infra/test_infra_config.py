"""Stage configuration: validated before anything is synthesized."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config import STAGES, ApiConfig, ModelConfig, StageConfig, load_stage_config


def test_known_stages_load_and_unknown_ones_are_named() -> None:
    assert load_stage_config("dev").prefix == "flywheel-dev"
    with pytest.raises(KeyError, match="known: dev, prod"):
        load_stage_config("staging")


def test_api_auth_can_never_be_none() -> None:
    with pytest.raises(ValidationError):
        ApiConfig(auth="NONE")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cognito_user_pool_arn"):
        ApiConfig(auth="COGNITO")


def test_prod_is_protected_and_dev_is_disposable() -> None:
    prod, dev = STAGES["prod"], STAGES["dev"]
    assert (prod.deletion_protection, prod.retain_data, prod.termination_protection) == (
        True,
        True,
        True,
    )
    assert (dev.deletion_protection, dev.retain_data) == (False, False)
    assert prod.api.waf
    assert not dev.api.waf


def test_approval_heartbeat_is_below_the_timeout_in_every_stage() -> None:
    for config in STAGES.values():
        assert 0 < config.approval_heartbeat_seconds < config.approval_timeout_seconds
        # The machine outlives its longest state (the approval wait).
        assert config.training_workflow_timeout_seconds > config.approval_timeout_seconds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("canary_weight", 1.0),
        ("canary_weight", 0.0),
        ("log_retention_days", 10),
        ("bake_minutes", 0),
        ("stage", "Prod"),
    ],
)
def test_bad_values_are_rejected_with_the_field_name(field: str, value: object) -> None:
    base = STAGES["dev"].model_dump()
    base[field] = value
    with pytest.raises(ValidationError, match=field):
        StageConfig.model_validate(base)


def test_model_names_must_be_unique_and_dns_safe() -> None:
    with pytest.raises(ValidationError):
        ModelConfig(name="Breast_Cancer")
    base = STAGES["dev"].model_dump()
    base["models"] = [{"name": "a1"}, {"name": "a1"}]
    with pytest.raises(ValidationError, match="unique"):
        StageConfig.model_validate(base)


def test_approvers_default_to_the_approver_persona() -> None:
    assert all(config.approver_principals is None for config in STAGES.values())


@pytest.mark.parametrize(
    ("approvers", "extra", "message"),
    [
        ((), {}, "at least one principal"),
        (("ana",), {}, "approver_principals"),  # neither an ARN nor role/... or user/...
        (("role/*",), {}, "wildcard"),  # would admit every role
        (("arn:aws:iam::*:role/approver",), {}, "approver_principals"),  # any account
        (("arn:aws:iam::111111111111:role/approver",), {"account": "222222222222"}, "account"),
        (("role/approver",), {"api": {"auth": "COGNITO", "cognito_user_pool_arn": "arn:p"}},
         "api.auth=IAM"),
    ],
)  # fmt: skip
def test_approver_principals_are_validated(
    approvers: tuple[str, ...], extra: dict[str, object], message: str
) -> None:
    base = {**STAGES["dev"].model_dump(), **extra, "approver_principals": approvers}
    with pytest.raises(ValidationError, match=message):
        StageConfig.model_validate(base)


def test_approver_principals_take_arns_and_names_in_the_stages_account() -> None:
    base = {
        **STAGES["dev"].model_dump(),
        "account": "111111111111",
        "approver_principals": (
            "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_A_*",
            "user/ana",
        ),
    }
    assert len(StageConfig.model_validate(base).approver_principals or ()) == 2


@pytest.mark.parametrize(
    ("notifications", "field"),
    [
        ({"emails": ["ops@example"]}, "notifications.emails.0"),
        ({"emails": ["ops@example.com", "Ops@Example.com"]}, "emails must be unique"),
        (
            {"slack": {"workspace_id": "t01", "channel_id": "C01"}},
            "notifications.slack.workspace_id",
        ),
        (
            {"slack": {"workspace_id": "T01", "channel_id": "#ops"}},
            "notifications.slack.channel_id",
        ),
    ],
)
def test_bad_notification_targets_are_rejected_naming_the_field(
    notifications: dict[str, object], field: str
) -> None:
    base = STAGES["dev"].model_dump()
    base["notifications"] = notifications
    with pytest.raises(ValidationError, match=field):
        StageConfig.model_validate(base)
    base["notifications"] = {
        "emails": ["ops@example.com"],
        "slack": {"workspace_id": "T01", "channel_id": "C01"},
    }
    assert StageConfig.model_validate(base).notifications.emails == ("ops@example.com",)
