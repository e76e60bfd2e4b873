"""The local REST API's IAM auth: who signed a request, and every way a signature is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from flywheel.local.iam_auth import (
    Caller,
    GatewayRefusalError,
    ResourcePolicy,
    SigV4Verifier,
    StoredKey,
)

HOST = "127.0.0.1:24557"
PATH = "/dev/v1/models/churn/retrain"
BODY = b'{"reason": "new labels"}'
USER = Caller(
    access_key="AKIAUSER0000000000001",
    user_arn="arn:aws:iam::123456789012:user/ci",
    user_id="AIDAUSER",
    account_id="123456789012",
    principal_arn="arn:aws:iam::123456789012:user/ci",
)
ROLE = Caller(
    access_key="ASIAROLE0000000000001",
    user_arn="arn:aws:sts::123456789012:assumed-role/flywheel-dev-approver/ana",
    user_id="AROAROLE:ana",
    account_id="123456789012",
    principal_arn="arn:aws:iam::123456789012:role/flywheel-dev-approver",
)


class Keys:
    """A key store holding the user's key and the role session's credentials."""

    def __init__(self, **changes: StoredKey) -> None:
        self.keys = {
            USER.access_key: StoredKey("user-secret", USER),
            ROLE.access_key: StoredKey(
                "role-secret", ROLE, "role-token", expires=datetime.now(UTC) + timedelta(hours=1)
            ),
            **changes,
        }

    def find(self, access_key_id: str) -> StoredKey | None:
        return self.keys.get(access_key_id)


def _signed(
    key: str = USER.access_key,
    secret: str = "user-secret",
    token: str | None = None,
    *,
    path: str = PATH,
    body: bytes = BODY,
    region: str = "us-east-1",
    service: str = "execute-api",
) -> dict[str, str]:
    request = AWSRequest(
        method="POST", url=f"http://{HOST}{path}", data=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return {"Host": HOST, **dict(request.headers.items())}


def _verify(
    headers: dict[str, str], *, path: str = PATH, body: bytes = BODY, keys: Keys | None = None,
    now: datetime | None = None,
) -> Caller:  # fmt: skip
    verifier = SigV4Verifier(
        keys or Keys(), region="us-east-1", now=lambda: now or datetime.now(UTC)
    )
    return verifier.verify("POST", path, headers, body)


def _refused(headers: dict[str, str], **kwargs: object) -> GatewayRefusalError:
    with pytest.raises(GatewayRefusalError) as refused:
        _verify(headers, **kwargs)  # type: ignore[arg-type]
    assert refused.value.status == 403
    return refused.value


def test_a_users_signature_names_the_user_as_api_gateway_does() -> None:
    caller = _verify(_signed())

    assert caller == USER
    identity = caller.identity()
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/ci"
    assert (identity["caller"], identity["accountId"]) == ("AIDAUSER", "123456789012")


def test_a_role_sessions_signature_names_the_session_and_its_role() -> None:
    caller = _verify(_signed(ROLE.access_key, "role-secret", "role-token"))

    assert caller.user_arn.endswith("assumed-role/flywheel-dev-approver/ana")
    assert caller.principal_arn == "arn:aws:iam::123456789012:role/flywheel-dev-approver"


def test_a_query_string_is_part_of_what_is_signed() -> None:
    target = PATH + "?b=2&a=1"
    assert _verify(_signed(path=target), path=target) == USER
    refusal = _refused(_signed(path=target), path=PATH + "?b=3&a=1")
    assert "signature we calculated does not match" in refusal.message


def test_an_unsigned_request_is_missing_its_token() -> None:
    refusal = _refused({"Host": HOST, "Content-Type": "application/json"})

    assert refusal.response_type == "MISSING_AUTHENTICATION_TOKEN"
    assert refusal.message == "Missing Authentication Token"


@pytest.mark.parametrize(
    ("change", "value"),
    [("body", b'{"reason": "another"}'), ("path", "/dev/v1/models/iris/retrain")],
)
def test_a_request_changed_after_signing_is_refused(change: str, value: object) -> None:
    refusal = _refused(_signed(), **{change: value})

    assert refusal.response_type == "INVALID_SIGNATURE"
    assert "signature we calculated does not match" in refusal.message


def test_a_wrong_secret_is_refused() -> None:
    refusal = _refused(_signed(secret="guessed"))
    assert refusal.response_type == "INVALID_SIGNATURE"


def test_a_declared_payload_hash_must_be_the_bodys() -> None:
    headers = {**_signed(), "X-Amz-Content-SHA256": "0" * 64}
    assert _refused(headers).response_type == "INVALID_SIGNATURE"


def test_a_signed_header_the_request_lacks_is_refused() -> None:
    headers = _signed()
    del headers["Content-Type"]
    assert _refused(headers).response_type == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    ("region", "service"), [("eu-west-1", "execute-api"), ("us-east-1", "lambda")]
)
def test_the_credential_scope_must_name_the_apis_region_and_service(
    region: str, service: str
) -> None:
    refusal = _refused(_signed(region=region, service=service))
    assert "Credential should be scoped" in refusal.message


def test_a_key_the_runtime_never_issued_is_unrecognized() -> None:
    refusal = _refused(_signed("AKIAUNKNOWN000000001", "whatever"))

    assert refusal.error_type == "UnrecognizedClientException"
    assert refusal.message == "The security token included in the request is invalid."


def test_an_inactive_key_is_refused() -> None:
    keys = Keys(**{USER.access_key: StoredKey("user-secret", USER, active=False)})
    assert _refused(_signed(), keys=keys).error_type == "UnrecognizedClientException"


@pytest.mark.parametrize("token", [None, "another-token"])
def test_a_role_session_needs_its_own_token(token: str | None) -> None:
    refusal = _refused(_signed(ROLE.access_key, "role-secret", token))
    assert refusal.error_type == "UnrecognizedClientException"


def test_expired_credentials_are_refused_as_expired() -> None:
    expired = StoredKey("role-secret", ROLE, "role-token", expires=datetime.now(UTC))
    keys = Keys(**{ROLE.access_key: expired})

    refusal = _refused(_signed(ROLE.access_key, "role-secret", "role-token"), keys=keys)

    assert refusal.response_type == "EXPIRED_TOKEN"


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_signature_more_than_five_minutes_off_the_gateways_clock_is_refused(
    minutes: int,
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=minutes)
    refusal = _refused(_signed(), now=later)
    assert refusal.message.startswith("Signature expired")


def test_a_malformed_authorization_header_is_incomplete() -> None:
    headers = {**_signed(), "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/x"}
    assert _refused(headers).error_type == "IncompleteSignatureException"


APPROVALS_ONLY = {
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "execute-api:Invoke",
            "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/v1/approvals/*",
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": [ROLE.principal_arn]}},
        },
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:*", "Resource": "*"},
    ]
}


@pytest.mark.parametrize(
    ("principal", "path", "denied"),
    [
        (USER.principal_arn, "/v1/approvals/a1", True),
        (ROLE.principal_arn, "/v1/approvals/a1", False),
        (USER.principal_arn, "/v1/models/churn/retrain", False),
    ],
)
def test_the_resource_policy_denies_the_approvals_route_to_all_but_approvers(
    principal: str, path: str, denied: bool
) -> None:
    policy = ResourcePolicy(APPROVALS_ONLY)
    assert policy.denies(principal, "123456789012", "dev", "POST", path) is denied


def test_a_deny_by_account_applies_to_other_accounts_only() -> None:
    policy = ResourcePolicy(
        {
            "Statement": {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "execute-api:Invoke",
                "Resource": "execute-api:/*",
                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "123456789012"}},
            }
        }
    )
    assert policy.denies(USER.principal_arn, "123456789012", "dev", "POST", "/v1/feedback") is False
    assert policy.denies("arn:aws:iam::999999999999:user/x", "999999999999", "dev", "POST",
                         "/v1/feedback") is True  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ({"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::1:root"}}, "Principal"),
        ({"Effect": "Deny", "Principal": "*", "NotAction": "x"}, "NotAction"),
        ({"Effect": "Deny", "Principal": "*", "Condition": {"IpAddress": {}}}, "IpAddress"),
        (
            {"Effect": "Deny", "Principal": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "v"}}},
            "aws:SourceVpce",
        ),
    ],
)  # fmt: skip
def test_a_policy_the_runtime_cannot_evaluate_is_refused_naming_what(
    statement: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        ResourcePolicy({"Statement": [statement]})
