"""Prompt versions registered by people in a deployed stage: ``POST
/v1/prompts/{name}/versions`` (body ``{"spec", "reason", "evaluation_set"}``).

The spec is checked as ``flywheel prompts register`` checks a prompt file (400 naming
``spec.<field>``; a model with no price; a spec for another name), and the evaluation set
it names as a local registration checks the set's file (its lines in the body: 422 naming
a bad line and its field, 413 beyond 1 MiB; ADR 84). The set's canonical JSON Lines and
the spec's canonical JSON, which seals the set's digest, are stored under ``prompts/`` in
the artifacts bucket (where the promotion workflow's evaluation gate reads the set), and
the version is registered and its
approval asked for (and announced, ``ApprovalRequested``) as the authenticated caller
(IAM ``userArn`` or Cognito claims), never a field of the body: the caller is the
version's registrant, so someone else must approve it. Registering the spec the latest
version already holds writes nothing new and answers that version (200); a new version
answers 201. Errors: 400 invalid body or spec, 401 no identity, 409 the name holds model
versions, 413 an evaluation set too large, 422 a bad line of the set, 502 bus unavailable.

A function of its own, not another route of the retrain API: registering takes rights
the retrain API's role must not hold, and this role holds nothing else. It may put
objects under ``prompts/`` of the artifacts bucket only, change the registry only
through the records writer's ``prompts`` capability (a prompt version's registration and
its approval request, nothing else), and put ``ApprovalRequested`` only, with the
workflows' source. The retrain API's role is the only producer of ``flywheel.operator``
events and the route CI's deploy role invokes; with these rights too, a fault in any of
its routes could write specs or send approvers announcements.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from flywheel.adapters.lambda_entry import caller_identity, rest_handler
from flywheel.composition import AwsPlatform, check_environment

# Runtime imports: Powertools reads the route's annotations to validate the body.
from flywheel.llm.registration import (
    VERSIONS_ROUTE,
    PromptVersionReceipt,
    PromptVersionRequest,
)
from flywheel.serving import http
from flywheel.settings import Settings
from flywheel.training.lineage import dependency_lock_hash
from flywheel.workflows.prompt_registration import register_requested_prompt

if TYPE_CHECKING:
    from flywheel.workflows.prompt_registration import PromptRegistrations

app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=http.parse_json_body)
logger = Logger()
tracer = Tracer()
metrics = Metrics()
PromptName = Annotated[str, Path(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


check_environment(Settings)


@functools.cache
def _registrations() -> PromptRegistrations:
    """Composition root: writes through the records writer's ``prompts`` capability."""
    return AwsPlatform(Settings()).prompt_registrations()


@functools.cache
def _environment() -> str:
    """SHA-256 of this function's packages: the registering environment of the lineage."""
    return dependency_lock_hash()


@app.post(VERSIONS_ROUTE, summary="Register a prompt version")
def register(name: PromptName, body: PromptVersionRequest) -> tuple[PromptVersionReceipt, int]:
    requested_by = caller_identity(app)
    receipt = register_requested_prompt(
        _registrations(), name, body, requested_by=requested_by, environment=_environment()
    )
    metrics.add_dimension("Prompt", receipt.prompt)
    metrics.add_metric("PromptVersionsRegistered", MetricUnit.Count, int(receipt.created))
    logger.info(
        "prompt version registered" if receipt.created else "prompt version unchanged",
        extra={"prompt": receipt.prompt, "version": receipt.version, "by": requested_by},
    )
    return receipt, 201 if receipt.created else 200


handler = rest_handler(app, logger=logger, tracer=tracer, metrics=metrics, route="prompt-versions")
