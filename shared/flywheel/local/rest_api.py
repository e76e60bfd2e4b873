"""The stage's REST API on the local runtime: every route the CDK app defines, over HTTP.

:class:`RestApiDefinition` reads the synthesized template's API Gateway resources: the
resource tree, each method's authorization and integration, the gateway responses, the
resource policy and the stage name. :class:`LocalRestApi` answers a request as API
Gateway does: route (an unknown route or method is a 403 ``Missing Authentication
Token``), IAM auth (SigV4 against the credentials moto issued,
:mod:`flywheel.local.iam_auth`), the resource policy, then the integration: a Lambda
proxy integration invokes the function or alias ARN of the template through moto, so the
bridge runs the real handler with the REST proxy event and alias ``live``'s weights
apply; a mock integration renders its template. What differs from API Gateway is in
ADR 77.

Examples
--------
>>> from flywheel.local.deployment import LocalDeployment
>>> RestApiDefinition.from_deployment(LocalDeployment({})) is None
True
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flywheel.local.api_gateway import rest_proxy_event
from flywheel.local.iam_auth import GatewayRefusalError, ResourcePolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.local.api_gateway import Response
    from flywheel.local.deployment import LocalDeployment, Resource
    from flywheel.local.iam_auth import Caller, SigV4Verifier

    #: Invoke a function (ARN, maybe qualified) with an event: its payload, and whether
    #: the function failed (Lambda's ``FunctionError``).
    Invoke = Callable[[str, dict[str, Any]], tuple[bytes, bool]]

__all__ = ["Integration", "LocalRestApi", "Method", "RestApiDefinition", "lambda_invoker"]

_FUNCTION_URI = re.compile(r":lambda:path/2015-03-31/functions/(?P<arn>.+)/invocations$")
_CONTEXT = re.compile(r"\$context\.(?:error\.)?[A-Za-z]+")
#: What API Gateway answers when a Lambda proxy integration fails or answers nonsense.
_BAD_GATEWAY = "Internal server error"


@dataclass(frozen=True)
class Integration:
    """A method's integration: a Lambda proxy (``function_arn``) or a mock (``status`` and
    the response ``template``)."""

    function_arn: str | None = None
    status: int = 200
    template: str | None = None


@dataclass(frozen=True)
class Method:
    """One route: HTTP method on a resource path (``/v1/approvals/{id}``)."""

    http_method: str
    resource: str
    authorization: str
    integration: Integration


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    variable: tuple[str, _Node] | None = None
    methods: dict[str, Method] = field(default_factory=dict)


@dataclass
class RestApiDefinition:
    """The REST API of a synthesized app (one ``AWS::ApiGateway::RestApi``)."""

    name: str
    stage: str
    methods: list[Method]
    #: Response type -> (status code or ``None`` for the type's default, JSON template).
    gateway_responses: dict[str, tuple[int | None, str | None]]
    policy: ResourcePolicy | None = None
    _tree: _Node = field(default_factory=_Node, repr=False)

    def __post_init__(self) -> None:
        for method in self.methods:
            node = self._tree
            for part in filter(None, method.resource.split("/")):
                if part.startswith("{") and part.endswith("}"):
                    if node.variable is None:
                        node.variable = (part[1:-1].rstrip("+"), _Node())
                    node = node.variable[1]
                else:
                    node = node.children.setdefault(part, _Node())
            node.methods[method.http_method] = method

    @classmethod
    def from_deployment(cls, deployment: LocalDeployment) -> RestApiDefinition | None:
        """The app's REST API, or ``None`` when it defines none.

        Raises
        ------
        ValueError
            Its resource policy has a statement the local evaluator cannot read.
        """
        apis = deployment.of_type("AWS::ApiGateway::RestApi")
        if not apis:
            return None
        if len(apis) > 1:
            raise ValueError(f"the local runtime serves one REST API; the app defines {len(apis)}")
        api = apis[0]
        paths = _resource_paths(deployment, api)
        methods = []
        for resource in deployment.of_type("AWS::ApiGateway::Method"):
            if resource.stack != api.stack:
                continue
            props = resource.properties
            path = paths[_logical(props["ResourceId"], api.logical_id)]
            methods.append(
                Method(
                    http_method=str(props["HttpMethod"]).upper(),
                    resource=path,
                    authorization=str(props.get("AuthorizationType", "NONE")),
                    integration=_integration(deployment, resource),
                )
            )
        responses: dict[str, tuple[int | None, str | None]] = {}
        for resource in deployment.of_type("AWS::ApiGateway::GatewayResponse"):
            props = resource.properties
            status = props.get("StatusCode")
            template = (props.get("ResponseTemplates") or {}).get("application/json")
            responses[str(props["ResponseType"])] = (int(status) if status else None, template)
        stages = [
            str(s.properties["StageName"])
            for s in deployment.of_type("AWS::ApiGateway::Stage")
            if s.stack == api.stack
        ]
        policy = api.properties.get("Policy")
        return cls(
            name=str(api.properties.get("Name", api.logical_id)),
            stage=stages[0] if stages else "prod",
            methods=sorted(methods, key=lambda m: (m.resource, m.http_method)),
            gateway_responses=responses,
            policy=ResourcePolicy(deployment.resolve(policy, api.stack)) if policy else None,
        )

    def route(self, method: str, path: str) -> tuple[Method, dict[str, str]] | None:
        """The method serving ``method`` on ``path`` and its path parameters (decoded):
        a static path part wins over a variable one, as in API Gateway.

        Examples
        --------
        >>> api = RestApiDefinition("api", "dev", [
        ...     Method("POST", "/v1/models/{name}/retrain", "AWS_IAM", Integration("arn:f")),
        ...     Method("POST", "/v1/models/churn/retrain", "AWS_IAM", Integration("arn:g"))],
        ...     {})
        >>> found, params = api.route("POST", "/v1/models/iris/retrain")
        >>> found.integration.function_arn, params
        ('arn:f', {'name': 'iris'})
        >>> api.route("POST", "/v1/models/churn/retrain")[0].integration.function_arn
        'arn:g'
        >>> api.route("GET", "/v1/models/churn/retrain") is None
        True
        """
        found = _walk(self._tree, [p for p in path.split("/") if p], {})
        if found is None or method not in found[0].methods:
            return None
        return found[0].methods[method], found[1]


def _walk(
    node: _Node, parts: list[str], params: dict[str, str]
) -> tuple[_Node, dict[str, str]] | None:
    if not parts:
        return node, params
    head, rest = parts[0], parts[1:]
    static = node.children.get(head)
    if static is not None:
        found = _walk(static, rest, params)
        if found is not None and found[0].methods:
            return found
    if node.variable is not None:
        name, child = node.variable
        return _walk(child, rest, {**params, name: urllib.parse.unquote(head)})
    return None


def _logical(reference: Any, api_id: str) -> str:
    """The logical id a ``ParentId``/``ResourceId`` names (``""``: the API's root)."""
    if isinstance(reference, dict) and "Ref" in reference:
        return str(reference["Ref"])
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        logical, attribute = reference["Fn::GetAtt"]
        if logical == api_id and attribute == "RootResourceId":
            return ""
    raise ValueError(f"the local runtime cannot follow the API resource reference {reference!r}")


def _resource_paths(deployment: LocalDeployment, api: Resource) -> dict[str, str]:
    parents: dict[str, tuple[str, str]] = {}
    for resource in deployment.of_type("AWS::ApiGateway::Resource"):
        if resource.stack == api.stack:
            props = resource.properties
            parents[resource.logical_id] = (
                _logical(props["ParentId"], api.logical_id),
                str(props["PathPart"]),
            )
    paths = {"": "/"}

    def path(logical: str) -> str:
        if logical not in paths:
            parent, part = parents[logical]
            paths[logical] = path(parent).rstrip("/") + "/" + part
        return paths[logical]

    for logical in parents:
        path(logical)
    return paths


def _integration(deployment: LocalDeployment, method: Resource) -> Integration:
    spec = method.properties.get("Integration") or {}
    kind = spec.get("Type")
    if kind == "AWS_PROXY":
        uri = str(deployment.resolve(spec["Uri"], method.stack))
        match = _FUNCTION_URI.search(uri)
        if match is None:
            raise ValueError(f"{method.logical_id}: not a Lambda proxy integration URI: {uri}")
        return Integration(function_arn=match.group("arn"))
    if kind == "MOCK":
        request = (spec.get("RequestTemplates") or {}).get("application/json") or "{}"
        status = int(json.loads(request).get("statusCode", 200))
        for response in spec.get("IntegrationResponses") or []:
            if int(response["StatusCode"]) == status:
                template = (response.get("ResponseTemplates") or {}).get("application/json")
                return Integration(status=status, template=template)
        return Integration(status=status)
    raise ValueError(f"{method.logical_id}: integration type {kind} is not served locally")


def lambda_invoker(client: Any) -> Invoke:
    """Invoke through a boto3 Lambda client (moto: the bridge runs the handler)."""

    def invoke(function_arn: str, event: dict[str, Any]) -> tuple[bytes, bool]:
        answer = client.invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
        payload: bytes = answer["Payload"].read()
        return payload, bool(answer.get("FunctionError"))

    return invoke


class LocalRestApi:
    """Answers HTTP requests as the deployed REST API does (routing, IAM auth, resource
    policy, integrations, gateway responses).

    Parameters
    ----------
    definition
        The API, from the synthesized template.
    invoke
        Runs a Lambda proxy integration (:func:`lambda_invoker`).
    verifier
        IAM auth (:class:`~flywheel.local.iam_auth.SigV4Verifier`).
    account, region
        The API's account and region (its ARNs and the event's ``accountId``).
    """

    def __init__(
        self,
        definition: RestApiDefinition,
        *,
        invoke: Invoke,
        verifier: SigV4Verifier,
        account: str,
        region: str,
    ) -> None:
        self.definition = definition
        self._invoke = invoke
        self._verifier = verifier
        self._account = account
        self._region = region

    @property
    def stage(self) -> str:
        return self.definition.stage

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request; ``path`` is the request target (``/<stage>/...?query``)."""
        request_id = str(uuid.uuid4())
        try:
            return self._answer(method.upper(), path, headers, body, request_id)
        except GatewayRefusalError as refusal:
            return self.gateway_response(refusal, request_id)

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, request_id: str
    ) -> Response:
        raw_path, _, query = target.partition("?")
        prefix = f"/{self.stage}"
        if not raw_path.startswith(prefix + "/"):
            raise GatewayRefusalError(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
            )
        path = raw_path[len(prefix) :]
        found = self.definition.route(method, path)
        if found is None:
            raise GatewayRefusalError(
                "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
            )
        route, parameters = found
        caller = self._authenticate(route, method, target, headers, body)
        policy = self.definition.policy
        if (
            caller is not None
            and policy is not None
            and policy.denies(caller.principal_arn, caller.account_id, self.stage, method, path)
        ):
            arn = (
                f"arn:aws:execute-api:{self._region}:{self._account}:local/{self.stage}/"
                f"{method}{path}"
            )
            raise GatewayRefusalError(
                "ACCESS_DENIED",
                f"User: {caller.user_arn} is not authorized to perform: execute-api:Invoke on "
                f"resource: {arn} with an explicit deny",
            )
        integration = route.integration
        if integration.function_arn is None:
            rendered = _render(integration.template or "", {"$context.requestId": request_id})
            return integration.status, self._headers(request_id), rendered.encode()
        event = rest_proxy_event(
            method,
            path,
            query,
            headers,
            body,
            path_parameters=parameters,
            stage=self.stage,
            request_id=request_id,
            resource=route.resource,
            identity=caller.identity() if caller is not None else None,
            account_id=self._account,
        )
        try:
            payload, failed = self._invoke(integration.function_arn, event)
        except Exception as err:  # the integration could not be called: API Gateway's 5xx
            raise GatewayRefusalError("DEFAULT_5XX", _BAD_GATEWAY) from err
        return self._proxy_answer(payload, failed, request_id)

    def _authenticate(
        self, route: Method, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Caller | None:
        if route.authorization == "AWS_IAM":
            return self._verifier.verify(method, target, headers, body)
        if route.authorization == "NONE":
            return None
        raise GatewayRefusalError(
            "API_CONFIGURATION_ERROR",
            f"{route.authorization} authorization is not emulated by the local runtime",
        )

    def _proxy_answer(self, payload: bytes, failed: bool, request_id: str) -> Response:
        try:
            result = json.loads(payload or b"null")
        except ValueError:
            result = None
        if failed or not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
            raise GatewayRefusalError("DEFAULT_5XX", _BAD_GATEWAY)
        headers = {"x-amzn-RequestId": request_id}
        headers.update({str(k): str(v) for k, v in (result.get("headers") or {}).items()})
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[str(key)] = ", ".join(str(v) for v in values)
        headers.setdefault("Content-Type", "application/json")
        raw = result.get("body") or ""
        data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return int(result["statusCode"]), headers, data

    def gateway_response(self, refusal: GatewayRefusalError, request_id: str) -> Response:
        """API Gateway's own answer: the API's gateway response for the type (else its
        ``DEFAULT_4XX``/``DEFAULT_5XX``, else ``{"message": ...}``), variables filled in."""
        status = refusal.status
        fallback = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        responses = self.definition.gateway_responses
        own_status, template = responses.get(refusal.response_type, (None, None))
        if template is None:
            default_status, template = responses.get(fallback, (None, None))
            own_status = own_status or default_status
        body = _render(
            template or '{"message": $context.error.messageString}',
            {
                "$context.error.messageString": json.dumps(refusal.message),
                "$context.error.message": refusal.message,
                "$context.error.responseType": refusal.response_type,
                "$context.requestId": request_id,
            },
        )
        headers = self._headers(request_id)
        headers["x-amzn-ErrorType"] = refusal.error_type
        return own_status or status, headers, body.encode()

    @staticmethod
    def _headers(request_id: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-amzn-RequestId": request_id}


def _render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``$context...`` variable of ``values`` replaced (others left
    as written: gateway response templates substitute variables, nothing else)."""
    return _CONTEXT.sub(lambda m: values.get(m.group(0), m.group(0)), template)
