"""API Gateway's IAM auth on the local runtime: SigV4 checked against moto's credentials.

A request to the local REST API must be signed (SigV4, service ``execute-api``) with
credentials the local runtime issued: an IAM user's access key or an assumed role's
temporary credentials from moto's IAM and STS. :class:`SigV4Verifier` looks the key up
in moto's backends, recomputes the signature with botocore's signer and names the caller
as API Gateway does (``userArn``, ``caller``, ``accountId``); :class:`ResourcePolicy`
applies the API's resource policy from the template. A refusal is a
:class:`GatewayRefusalError` naming API Gateway's response type (ADR 77).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "Caller",
    "GatewayRefusalError",
    "KeyStore",
    "MotoCredentials",
    "ResourcePolicy",
    "SigV4Verifier",
    "StoredKey",
]

#: How far a request's ``X-Amz-Date`` may be from the gateway's clock (API Gateway: 5 min).
MAX_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


class GatewayRefusalError(Exception):
    """API Gateway refuses the request: its gateway response type and message.

    Examples
    --------
    >>> refusal = GatewayRefusalError("EXPIRED_TOKEN", "The security token ... is expired")
    >>> refusal.status, refusal.error_type
    (403, 'ExpiredTokenException')
    """

    #: Default status of each response type this module raises (API Gateway's defaults).
    STATUS = {
        "MISSING_AUTHENTICATION_TOKEN": 403,
        "INVALID_SIGNATURE": 403,
        "EXPIRED_TOKEN": 403,
        "ACCESS_DENIED": 403,
        "UNAUTHORIZED": 401,
        "API_CONFIGURATION_ERROR": 500,
        "DEFAULT_5XX": 502,
    }

    def __init__(self, response_type: str, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.response_type = response_type
        self.message = message
        #: API Gateway's ``x-amzn-ErrorType`` header.
        self.error_type = (
            error_type or "".join(part.title() for part in response_type.split("_")) + "Exception"
        )

    @property
    def status(self) -> int:
        return self.STATUS.get(self.response_type, 403)


@dataclass(frozen=True)
class Caller:
    """Who signed a request, as API Gateway's IAM auth names them.

    ``principal_arn`` is what ``aws:PrincipalArn`` holds in a policy: the role's ARN for
    an assumed-role session, the user's otherwise.
    """

    access_key: str
    user_arn: str
    user_id: str
    account_id: str
    principal_arn: str

    def identity(self) -> dict[str, str | None]:
        """The IAM fields of the REST proxy event's ``requestContext.identity``.

        Examples
        --------
        >>> Caller("AKIA1", "arn:aws:iam::111111111111:user/ci", "AIDA1", "111111111111",
        ...        "arn:aws:iam::111111111111:user/ci").identity()["caller"]
        'AIDA1'
        """
        return {
            "accessKey": self.access_key,
            "accountId": self.account_id,
            "caller": self.user_id,
            "user": self.user_id,
            "userArn": self.user_arn,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
        }


@dataclass(frozen=True)
class StoredKey:
    """An access key as the issuer keeps it: its secret, session token and owner."""

    secret: str
    caller: Caller
    session_token: str | None = None
    active: bool = True
    expires: datetime | None = None


class KeyStore(Protocol):
    """Where the verifier looks up access keys."""

    def find(self, access_key_id: str) -> StoredKey | None: ...


class MotoCredentials:
    """The access keys moto's IAM (users' keys) and STS (assumed roles) issued.

    Read from moto's in-process backends: the local runtime runs in the moto server's
    process (or inside ``mock_aws``), so they are the very keys its clients were given.
    """

    def find(self, access_key_id: str) -> StoredKey | None:
        """The key ``access_key_id``, or ``None`` when moto never issued it."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account_id in list(sts_backends.keys()):
            for partition in list(sts_backends[account_id].keys()):
                for role in list(sts_backends[account_id][partition].assumed_roles):
                    if role.access_key_id != access_key_id:
                        continue
                    caller = Caller(
                        access_key=access_key_id,
                        user_arn=role.arn,
                        user_id=role.user_id,
                        account_id=role.account_id,
                        principal_arn=role.role_arn,
                    )
                    expires = role.expiration.replace(tzinfo=UTC)
                    return StoredKey(role.secret_access_key, caller, role.session_token,
                                     expires=expires)  # fmt: skip
        for account_id in list(iam_backends.keys()):
            for partition in list(iam_backends[account_id].keys()):
                backend = iam_backends[account_id][partition]
                for user in list(backend.users.values()):
                    for key in list(user.access_keys):
                        if key.access_key_id != access_key_id:
                            continue
                        caller = Caller(access_key_id, user.arn, user.id, account_id, user.arn)
                        return StoredKey(key.secret_access_key, caller,
                                         active=key.status == "Active")  # fmt: skip
        return None


class SigV4Verifier:
    """Checks a request's SigV4 ``Authorization`` header as API Gateway's IAM auth does.

    Parameters
    ----------
    keys
        Looks up an access key id (:class:`MotoCredentials` on the local runtime).
    region
        The API's region: the credential scope must name it, and ``execute-api``.
    now
        The gateway's clock (wall time: clients sign with theirs).

    Examples
    --------
    >>> verifier = SigV4Verifier(MotoCredentials(), region="us-east-1")
    >>> verifier.verify("POST", "/dev/v1/feedback", {"Host": "localhost"}, b"{}")
    Traceback (most recent call last):
    ...
    flywheel.local.iam_auth.GatewayRefusalError: Missing Authentication Token
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        region: str,
        service: str = "execute-api",
        now: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._keys = keys
        self._region = region
        self._service = service
        self._now = now

    def verify(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Caller:
        """The caller who signed this request (``target``: path and query as received).

        Raises
        ------
        GatewayRefusalError
            Unsigned (``MISSING_AUTHENTICATION_TOKEN``); malformed, wrongly scoped, too old
            or new, unknown key, wrong session token or a signature that does not match
            (``INVALID_SIGNATURE``); expired credentials (``EXPIRED_TOKEN``).
        """
        lower = {k.lower(): v for k, v in headers.items()}
        authorization = lower.get("authorization")
        if not authorization:
            raise GatewayRefusalError(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
            )
        parsed = _AUTHORIZATION.match(authorization)
        if parsed is None:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                "parameters (AWS4-HMAC-SHA256).",
                error_type="IncompleteSignatureException",
            )
        key_id, date, region, service, terminal = (parsed["credential"].split("/") + [""] * 5)[:5]
        if terminal != "aws4_request" or region != self._region or service != self._service:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                f"Credential should be scoped to a valid region and service "
                f"('{self._region}', '{self._service}'), not '{region}', '{service}'.",
            )
        stamp = self._timestamp(lower, date)
        key = self._keys.find(key_id)
        if key is None or not key.active:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                "The security token included in the request is invalid.",
                error_type="UnrecognizedClientException",
            )
        token = lower.get("x-amz-security-token")
        if token != key.session_token:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                "The security token included in the request is invalid.",
                error_type="UnrecognizedClientException",
            )
        if key.expires is not None and self._now() >= key.expires:
            raise GatewayRefusalError(
                "EXPIRED_TOKEN", "The security token included in the request is expired"
            )
        declared = lower.get("x-amz-content-sha256")
        if declared is not None and declared != hashlib.sha256(body).hexdigest():
            raise GatewayRefusalError("INVALID_SIGNATURE", _MISMATCH)
        signed = parsed["signed"].split(";")
        if "host" not in signed or any(name not in lower for name in signed):
            raise GatewayRefusalError("INVALID_SIGNATURE", _MISMATCH)
        expected = self._signature(
            method, target, {name: lower[name] for name in signed}, body, stamp, key
        )
        if not hmac.compare_digest(expected, parsed["signature"]):
            raise GatewayRefusalError("INVALID_SIGNATURE", _MISMATCH)
        return key.caller

    def _timestamp(self, headers: Mapping[str, str], date: str) -> str:
        stamp = headers.get("x-amz-date", "")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                "Authorization header requires existence of a valid 'X-Amz-Date' header.",
                error_type="IncompleteSignatureException",
            ) from None
        if not stamp.startswith(date):
            raise GatewayRefusalError("INVALID_SIGNATURE", _MISMATCH)
        now = self._now()
        if abs(now - signed_at) > MAX_SKEW:
            raise GatewayRefusalError(
                "INVALID_SIGNATURE",
                f"Signature expired: {stamp} is outside 5 minutes of "
                f"{now.strftime('%Y%m%dT%H%M%SZ')}.",
            )
        return stamp

    def _signature(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        stamp: str,
        key: StoredKey,
    ) -> str:
        request = AWSRequest(
            method=method, url=f"http://{headers['host']}{target}", data=body, headers=headers
        )
        request.context["timestamp"] = stamp
        signer = SigV4Auth(
            Credentials(key.caller.access_key, key.secret, key.session_token),
            self._service,
            self._region,
        )
        canonical = signer.canonical_request(request)
        signature: str = signer.signature(signer.string_to_sign(request, canonical), request)
        return signature


#: Condition operators :class:`ResourcePolicy` evaluates (the rest refuse to load).
_OPERATORS: dict[str, tuple[bool, bool]] = {
    # operator -> (pattern matching, negated)
    "StringEquals": (False, False),
    "StringNotEquals": (False, True),
    "StringLike": (True, False),
    "StringNotLike": (True, True),
    "ArnEquals": (False, False),
    "ArnNotEquals": (False, True),
    "ArnLike": (True, False),
    "ArnNotLike": (True, True),
}
_KEYS = frozenset({"aws:principalarn", "aws:principalaccount"})


class ResourcePolicy:
    """An API's resource policy, evaluated for IAM callers of the same account.

    An explicit ``Deny`` that matches the request refuses it (``ACCESS_DENIED``);
    anything else passes, as it does in AWS for a same-account caller whose own IAM
    policy allows the call (identity policies are not evaluated locally: ADR 77).

    Raises
    ------
    ValueError
        At construction, for a statement this evaluator cannot read (naming it).

    Examples
    --------
    >>> policy = ResourcePolicy({"Statement": [{
    ...     "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "execute-api:Invoke",
    ...     "Resource": "execute-api:/*/POST/v1/approvals/*",
    ...     "Condition": {"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::1:role/app"]}}}]})
    >>> policy.denies("arn:aws:iam::1:user/ci", "1", "dev", "POST", "/v1/approvals/x")
    True
    >>> policy.denies("arn:aws:iam::1:role/app", "1", "dev", "POST", "/v1/approvals/x")
    False
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        statements = document.get("Statement", [])
        self._statements = [statements] if isinstance(statements, dict) else list(statements)
        for index, statement in enumerate(self._statements):
            _check_statement(index, statement)

    def denies(self, principal_arn: str, account: str, stage: str, method: str, path: str) -> bool:
        """Whether an explicit ``Deny`` applies to this caller and route."""
        route = f"execute-api:/{stage}/{method}{path}"
        context = {"aws:principalarn": principal_arn, "aws:principalaccount": account}
        return any(
            statement.get("Effect") == "Deny"
            and _actions_match(statement.get("Action", []))
            and _resources_match(statement.get("Resource", []), route)
            and _conditions_hold(statement.get("Condition", {}), context)
            for statement in self._statements
        )


def _check_statement(index: int, statement: Mapping[str, Any]) -> None:
    where = f"the API's resource policy, statement {index}"
    principal = statement.get("Principal")
    if principal not in ("*", {"AWS": "*"}):
        raise ValueError(f"{where}: only Principal '*' is evaluated locally, not {principal!r}")
    if "NotAction" in statement or "NotResource" in statement:
        raise ValueError(f"{where}: NotAction and NotResource are not evaluated locally")
    for operator, keys in (statement.get("Condition") or {}).items():
        if operator not in _OPERATORS:
            raise ValueError(f"{where}: condition operator {operator} is not evaluated locally")
        unknown = sorted(k for k in keys if k.lower() not in _KEYS)
        if unknown:
            raise ValueError(f"{where}: condition key(s) {unknown} are not evaluated locally")


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _like(value: str, pattern: str) -> bool:
    """IAM's wildcard match: ``*`` any run of characters, ``?`` any one (case-sensitive)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch("".join(parts), value, flags=re.DOTALL) is not None


def _actions_match(actions: Any) -> bool:
    return any(_like("execute-api:Invoke", a) for a in _listed(actions))


def _resources_match(resources: Any, route: str) -> bool:
    for resource in _listed(resources):
        # arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<METHOD>/<path> names the
        # same route as the short form execute-api:/<stage>/<METHOD>/<path>.
        short = re.sub(r"^arn:[^:]+:execute-api:[^:]*:[^:]*:[^/]*", "execute-api:", resource)
        if _like(route, short):
            return True
    return False


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        pattern, negated = _OPERATORS[operator]
        for key, expected in tests.items():
            value = context[key.lower()]
            matched = any(_like(value, e) if pattern else value == e for e in _listed(expected))
            if matched == negated:
                return False
    return True
