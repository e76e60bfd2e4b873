"""The REST API: predictions on each model's alias ``live``, prompts through the LLM
gateway, approvals, feedback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from flywheel.serving.http import MAX_BODY_BYTES
from infra.api_schemas import REQUEST_MODELS, cdk_schema, request_schema
from infra.constructs.personas import approver_principals
from infra.nag import acknowledge

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from infra.context import StageContext


def gateway_error_body(code: str, message: str | None = None) -> str:
    """A gateway response template: the Lambda error shape, valid JSON for any message.

    Gateway response templates are not VTL: API Gateway substitutes ``$context``
    variables as text, nothing else (no ``$util``). So the only message taken from API
    Gateway is ``$context.error.messageString``, which it substitutes already quoted;
    ``$context.error.message`` and ``validationErrorString`` may hold double quotes
    (``[object has missing required properties (["reason"])]``) and never appear.
    ``message`` (ours, static) replaces it when given.

    Examples
    --------
    >>> gateway_error_body("throttled")
    '{"error": {"code": "throttled", "message": $context.error.messageString, \
"request_id": "$context.requestId"}}'
    """
    text = "$context.error.messageString" if message is None else json.dumps(message)
    return (
        f'{{"error": {{"code": {json.dumps(code)}, "message": {text}, '
        '"request_id": "$context.requestId"}}'
    )


#: Error bodies API Gateway itself returns (response type -> status, template): the
#: ``{"error": {"code", "message", "request_id"}}`` shape of the handlers' errors, no
#: internals. A body the gateway's model refuses gets the handler's message for an
#: invalid body; the handler itself names every bad field (the models are lenient so
#: that it sees most bad bodies, see infra.api_schemas).
GATEWAY_RESPONSES: dict[str, tuple[str | None, str]] = {
    "BAD_REQUEST_BODY": (
        "400",
        gateway_error_body("invalid_request", "the request body is invalid"),
    ),
    "BAD_REQUEST_PARAMETERS": (
        "400",
        gateway_error_body("invalid_request", "missing required parameters"),
    ),
    "REQUEST_TOO_LARGE": ("413", gateway_error_body("payload_too_large")),
    "THROTTLED": ("429", gateway_error_body("throttled")),
    "DEFAULT_4XX": (None, gateway_error_body("request_error")),
    "DEFAULT_5XX": (None, gateway_error_body("internal_error", "internal error")),
}

#: ``POST /v1/approvals/{id}`` in every stage of the API, as resource policies name routes.
APPROVALS_ROUTE = "execute-api:/*/POST/v1/approvals/*"

#: The WAF's answer to a body over the documented limit: the handler's 413, without a
#: request id (WAF custom response bodies are static text).
PAYLOAD_TOO_LARGE_BODY = json.dumps(
    {
        "error": {
            "code": "payload_too_large",
            "message": f"the body is larger than {MAX_BODY_BYTES} bytes",
        }
    }
)


def decimal_above(limit: int) -> str:
    """A regex matching exactly the decimal integers greater than ``limit`` (leading zeros too).

    For a header such as ``Content-Length``: WAF compares text, not numbers. Only anchors,
    groups, classes and counted repeats: the subset every engine (WAF's included) reads
    alike.

    Examples
    --------
    >>> decimal_above(6_291_456)
    '^0*([1-9][0-9]{7,}|[7-9][0-9]{6}|6[3-9][0-9]{5}|629[2-9][0-9]{3}|6291[5-9][0-9]{2}|\
62914[6-9][0-9]|629145[7-9])$'
    """
    digits = str(limit)
    longer = f"[1-9][0-9]{{{len(digits)},}}"
    same_length = []
    for i, digit in enumerate(digits):
        if digit == "9":
            continue
        rest = len(digits) - i - 1
        tail = "[0-9]" * min(rest, 1) + (f"{{{rest}}}" if rest > 1 else "")
        higher = str(int(digit) + 1) if digit == "8" else f"[{int(digit) + 1}-9]"
        same_length.append(f"{digits[:i]}{higher}{tail}")
    return f"^0*({'|'.join([longer, *same_length])})$"


class InferenceApi(Construct):
    """A regional REST API; every method authenticated (IAM by default, never NONE).

    - ``POST /v1/models/<name>/predict`` -> that model's alias ``live`` (one resource per
      configured model; any other name gets a 404 from a mock integration);
    - ``POST /v1/models/{name}/retrain`` -> the retrain function (for any name: it answers
      404 for models without a workflow config);
    - ``POST /v1/models/{name}/promotions`` -> the same function (the operator's requests):
      the promotion workflow for an approved version;
    - ``POST /v1/prompts/{name}/invoke`` -> the LLM gateway (one function for every
      prompt: it answers 404 for names that are not prompts);
    - ``POST /v1/prompts/{name}/versions`` -> the prompt registration function (a new
      version of a prompt, registered as the caller; 409 for a model's name);
    - ``POST /v1/approvals/{id}`` -> the approval function; with IAM auth the API's
      resource policy denies it to every principal but the stage's approvers;
    - ``POST /v1/feedback`` -> the feedback function.

    Request validator on body and parameters, JSON-schema models registered for every
    content type (``$default``, so a different Content-Type cannot skip validation) and
    generated from the handlers' pydantic models (:mod:`infra.api_schemas`),
    stage throttling, JSON access logs (no bodies; data trace off), X-Ray, a TLS 1.2+
    security policy on the endpoint, optional WAF.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: StageContext,
        predictors: Mapping[str, lambda_.IFunction],
        approvals: lambda_.IFunction,
        feedback: lambda_.IFunction,
        retrain: lambda_.IFunction,
        gateway: lambda_.IFunction,
        prompt_versions: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = ctx.config
        api_cfg = cfg.api
        name = f"{cfg.prefix}-api"

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=ctx.naming.log_group("apigateway", f"{name}/access"),
            retention=ctx.log_retention,
            removal_policy=ctx.removal_policy,
        )
        authorizer: apigw.IAuthorizer | None = None
        if api_cfg.auth == "COGNITO":
            assert api_cfg.cognito_user_pool_arn is not None
            pool = cognito.UserPool.from_user_pool_arn(
                self, "UserPool", api_cfg.cognito_user_pool_arn
            )
            authorizer = apigw.CognitoUserPoolsAuthorizer(
                self, "Authorizer", cognito_user_pools=[pool]
            )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description=f"{cfg.prefix}: predictions, prompts, approvals and feedback",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            cloud_watch_role=api_cfg.manage_cloudwatch_role,
            deploy_options=apigw.StageOptions(
                stage_name=cfg.stage,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel[api_cfg.logging_level],
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=api_cfg.throttle_rate_limit,
                throttling_burst_limit=api_cfg.throttle_burst_limit,
            ),
            default_method_options=apigw.MethodOptions(
                authorization_type=(
                    apigw.AuthorizationType.COGNITO if authorizer else apigw.AuthorizationType.IAM
                ),
                authorizer=authorizer,
            ),
            policy=self._resource_policy(ctx) if api_cfg.auth == "IAM" else None,
        )
        cfn_api: apigw.CfnRestApi = self.api.node.default_child  # type: ignore[assignment]
        cfn_api.security_policy = api_cfg.tls_security_policy
        cfn_api.endpoint_access_mode = "STRICT"

        for response_type, (status, template) in GATEWAY_RESPONSES.items():
            self.api.add_gateway_response(
                "".join(part.title() for part in response_type.split("_")),
                type=apigw.ResponseType.of(response_type),
                status_code=status,
                templates={"application/json": template},
            )

        validator = self.api.add_request_validator(
            "BodyAndParameters",
            request_validator_name=f"{name}-body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )

        def model(key: str) -> dict[str, apigw.IModel]:
            """The body model ``key``: generated from the handler's pydantic model."""
            created = self.api.add_model(
                key,
                content_type="application/json",
                model_name=key,
                schema=cdk_schema(request_schema(REQUEST_MODELS[key])),
            )
            return {"application/json": created, "$default": created}

        predict_models = model("PredictRequest")
        retrain_models = model("RetrainRequest")
        promotion_models = model("PromotionRequest")
        config_models = model("ConfigRequest")
        v1 = self.api.root.add_resource("v1")
        models = v1.add_resource("models")
        self.methods: list[apigw.Method] = []

        def add_retrain(resource: apigw.IResource) -> None:
            """The operator's routes on a model resource: retrain, promotions, config."""
            operator_routes = (
                ("retrain", retrain_models),
                ("promotions", promotion_models),
                ("config", config_models),
            )
            for path, models_ in operator_routes:
                self.methods.append(
                    resource.add_resource(path).add_method(
                        "POST",
                        apigw.LambdaIntegration(retrain),
                        request_validator=validator,
                        request_models=models_,
                    )
                )

        for model_name, target in predictors.items():
            served = models.add_resource(model_name)
            self.methods.append(
                served.add_resource("predict").add_method(
                    "POST",
                    apigw.LambdaIntegration(target),
                    request_validator=validator,
                    request_models=predict_models,
                )
            )
            # A served name is a static resource: API Gateway would not fall back to {name}.
            add_retrain(served)
        any_model = models.add_resource("{name}")
        self.methods.append(self._unknown_model(any_model, validator))
        add_retrain(any_model)
        self.methods.append(
            v1.add_resource("approvals")
            .add_resource("{id}")
            .add_method(
                "POST",
                apigw.LambdaIntegration(approvals),
                request_validator=validator,
                request_parameters={"method.request.path.id": True},
                request_models=model("ApprovalDecision"),
            )
        )
        any_prompt = v1.add_resource("prompts").add_resource("{name}")
        self.methods.append(
            any_prompt.add_resource("invoke").add_method(
                "POST",
                apigw.LambdaIntegration(gateway),
                request_validator=validator,
                request_models=model("InvokePromptRequest"),
            )
        )
        self.methods.append(
            any_prompt.add_resource("versions").add_method(
                "POST",
                apigw.LambdaIntegration(prompt_versions),
                request_validator=validator,
                request_models=model("PromptVersionRequest"),
            )
        )
        self.methods.append(
            v1.add_resource("feedback").add_method(
                "POST",
                apigw.LambdaIntegration(feedback),
                request_validator=validator,
                request_models=model("Feedback"),
            )
        )
        if api_cfg.auth == "IAM":
            for method in self.methods:
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    "IAM (SigV4) authorization by design: callers are AWS principals (CI, "
                    "services, approvers with IAM identities), and the approver identity "
                    "is the authenticated caller ARN. Cognito is a per-stage option.",
                )
        if api_cfg.waf:
            self._web_acl(ctx, name)
        else:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "No WAF in this stage to keep its cost at rest near zero: every method "
                "requires IAM authentication and the stage is throttled. Prod enables WAF "
                "(infra/config.py, api.waf).",
            )
        if api_cfg.manage_cloudwatch_role:
            role = self.api.node.find_child("CloudWatchRole")
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "The AWS-managed policy is the documented way to let API Gateway write "
                "execution logs (account-level setting, CloudWatch Logs actions only).",
            )

    @staticmethod
    def _resource_policy(ctx: StageContext) -> iam.PolicyDocument:
        """Deny ``POST /v1/approvals/*`` to every principal but the stage's approvers.

        Only a Deny: with IAM auth, same-account callers need an IAM allow and no deny,
        so every other route stays as reachable as the callers' IAM policies make it.
        """
        return iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="OnlyApproversDecideApprovals",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["execute-api:Invoke"],
                    resources=[APPROVALS_ROUTE],
                    conditions={"ArnNotLike": {"aws:PrincipalArn": approver_principals(ctx)}},
                )
            ]
        )

    def _unknown_model(
        self, any_model: apigw.Resource, validator: apigw.RequestValidator
    ) -> apigw.Method:
        """``POST /v1/models/{name}/predict`` for names that are not served: 404, no Lambda."""
        return any_model.add_resource("predict").add_method(
            "POST",
            apigw.MockIntegration(
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_templates={"application/json": '{"statusCode": 404}'},
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code="404",
                        response_templates={
                            # A VTL template, with nothing to evaluate but the id.
                            "application/json": gateway_error_body(
                                "model_not_found", "no model is served under this name"
                            )
                        },
                    )
                ],
            ),
            method_responses=[apigw.MethodResponse(status_code="404")],
            request_validator=validator,
            request_parameters={"method.request.path.name": True},
        )

    def _web_acl(self, ctx: StageContext, name: str) -> None:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=metric,
                sampled_requests_enabled=True,
            )

        def managed(
            priority: int, group: str, *, count: Sequence[str] = ()
        ) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=group,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in count
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(group),
            )

        # Body size. WAF sees only the first 16 KB of a REST API body (64 KB at most, for
        # a fee), so it cannot measure one: the common rule set's SizeRestrictions_BODY
        # would block every body over 8 KB (a predict batch of 10 records). It only
        # counts here, and the documented limit (MAX_BODY_BYTES, Lambda's own) is
        # enforced on the declared Content-Length with the handler's 413 answer. A body
        # without Content-Length still meets API Gateway's 10 MB and Lambda's 6 MB
        # payload limits, and the handlers' 100-record/100-label caps. The body rules of
        # the common set inspect the first 16 KB of larger bodies only; bodies are
        # validated JSON, never executed or rendered.
        too_large = "payload-too-large"
        body_limit = wafv2.CfnWebACL.RuleProperty(
            name="BodyOverApiLimit",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(
                block=wafv2.CfnWebACL.BlockActionProperty(
                    custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                        response_code=413, custom_response_body_key=too_large
                    )
                )
            ),
            statement=wafv2.CfnWebACL.StatementProperty(
                regex_match_statement=wafv2.CfnWebACL.RegexMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(
                        single_header={"Name": "content-length"}
                    ),
                    regex_string=decimal_above(MAX_BODY_BYTES),
                    text_transformations=[
                        wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")
                    ],
                )
            ),
            visibility_config=visibility("BodyOverApiLimit"),
        )
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{name}-acl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"{name}-acl"),
            custom_response_bodies={
                too_large: wafv2.CfnWebACL.CustomResponseBodyProperty(
                    content_type="APPLICATION_JSON", content=PAYLOAD_TOO_LARGE_BODY
                )
            },
            rules=[
                body_limit,
                managed(1, "AWSManagedRulesCommonRuleSet", count=["SizeRestrictions_BODY"]),
                managed(2, "AWSManagedRulesKnownBadInputsRuleSet"),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=3,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=ctx.config.api.waf_rate_limit_per_5min,
                        )
                    ),
                    visibility_config=visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
