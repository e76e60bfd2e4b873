"""The HTTP contract of ``POST /v1/prompts/{name}/versions``: a prompt spec to register as
a new version, and the receipt.

The body holds the spec as JSON, with the fields of a prompt file
(``examples/prompts/``). :func:`requested_spec` checks it as ``flywheel prompts register``
does (:func:`~flywheel.llm.prompts.parse_prompt`, and a price for its model), naming a
bad field by its place in the body (``spec.parameters.max_tokens``). The API Gateway
request model of the route is generated from :class:`PromptVersionRequest`
(``infra.api_schemas``), and the OpenAPI document describes both models.

Examples
--------
>>> from flywheel.llm.prices import default_prices
>>> spec = {"name": "greet", "description": "Greets", "owner": "ana", "provider": "local",
...         "model_id": "local.stand-in", "template": "Hi {{ who }}",
...         "variables": {"who": {}}, "parameters": {"max_tokens": 20}}
>>> body = PromptVersionRequest.model_validate({"spec": spec, "reason": "first cut"})
>>> requested_spec("greet", body, default_prices()).model_id
'local.stand-in'
>>> bad = {**spec, "parameters": {"max_tokens": 0}}
>>> requested_spec("greet", body.model_copy(update={"spec": bad}), default_prices())
Traceback (most recent call last):
...
flywheel.errors.ConfigError: spec.parameters.max_tokens: Input should be greater than or \
equal to 1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints

from flywheel.errors import ConfigError
from flywheel.llm.prompts import parse_prompt
from flywheel.models import Frozen
from flywheel.registry.models import VersionStatus

if TYPE_CHECKING:
    from flywheel.llm.prices import PriceTable
    from flywheel.llm.prompts import PromptSpec

__all__ = [
    "VERSIONS_ROUTE",
    "PromptVersionReceipt",
    "PromptVersionRequest",
    "requested_spec",
]

#: The route, in the Powertools resolvers' syntax.
VERSIONS_ROUTE = "/v1/prompts/<name>/versions"
#: Where the spec sits in the body: a bad field is named ``spec.<field>``.
_SPEC = "spec"


class PromptVersionRequest(Frozen):
    """The body of ``POST /v1/prompts/{name}/versions``: a prompt spec and why."""

    #: The prompt spec, with the fields of a prompt file (YAML's content as JSON).
    spec: dict[str, Any] = Field(
        description="The prompt spec: the fields of a prompt file (examples/prompts/) as JSON."
    )
    #: Why this version; audited with ``version_registered`` and ``approval_requested``.
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ] = Field(description="Why this version (recorded in the audit trail).")


class PromptVersionReceipt(Frozen):
    """The answer: the version that holds the spec, and its approval.

    ``created`` is ``False`` when the latest version already held this very spec: nothing
    new was written (an interrupted registration's approval request is finished).
    """

    prompt: str
    version: int = Field(ge=1)
    status: VersionStatus
    #: SHA-256 of the spec's canonical JSON: the version's artifact digest.
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: The version's approval (``None`` when none was asked for, e.g. registered otherwise).
    approval_id: str | None
    created: bool


def _in_body(field: str | None) -> str:
    return _SPEC if field in (None, "prompt") else f"{_SPEC}.{field}"


def _named_in_body(error: ConfigError) -> ConfigError:
    """``error`` with its fields named where they are in the body (``spec.<field>``)."""
    field = _in_body(error.field)
    message = error.message
    if error.field is not None and message.startswith(f"{error.field}: "):
        message = f"{field}: {message.removeprefix(f'{error.field}: ')}"
    details = dict(error.details)
    if isinstance(details.get("errors"), list):
        details["errors"] = [
            {**problem, "field": _in_body(problem.get("field"))} for problem in details["errors"]
        ]
    return ConfigError(message, field=field, details=details)


def requested_spec(name: str, request: PromptVersionRequest, prices: PriceTable) -> PromptSpec:
    """The spec of ``request``, checked as a prompt file is, for the route's prompt ``name``.

    Raises
    ------
    ConfigError
        400: the first bad field of the spec, named ``spec.<field>`` (all of them in
        ``details``); a spec for another name than the route's; a model with no price.
    """
    try:
        spec = parse_prompt(request.spec)
        prices.price(spec.model_id, spec.provider)
    except ConfigError as err:
        raise _named_in_body(err) from None
    if spec.name != name:
        raise ConfigError(
            f"spec.name: the spec is for {spec.name!r}, not {name!r}", field="spec.name"
        )
    return spec
