"""The HTTP contract of ``POST /v1/prompts/{name}/versions``: a prompt spec to register as
a new version, and the receipt.

The body holds the spec as JSON, with the fields of a prompt file. :func:`requested_spec`
checks it as ``flywheel prompts register`` does, naming a bad field by its place in the
body (``spec.parameters.max_tokens``). The route's API Gateway request model is generated
from :class:`PromptVersionRequest`.

A spec that names an evaluation set comes with the set's lines in ``evaluation_set``
(ADR 84): :func:`requested_evaluation_set` checks them as a local registration checks the
file (a bad line is a 422 naming the line and field), at most
:data:`MAX_ROUTE_SET_BYTES` (413 beyond), and the version seals the set's digest as a
local registration does.

Examples
--------
>>> from flywheel.llm.prices import default_prices
>>> spec = {"name": "greet", "description": "Greets", "owner": "ana", "provider": "local",
...         "model_id": "local.stand-in", "template": "Hi {{ who }}",
...         "variables": {"who": {}}, "parameters": {"max_tokens": 20}}
>>> body = PromptVersionRequest.model_validate({"spec": spec, "reason": "first cut"})
>>> requested_spec("greet", body, default_prices()).model_id
'local.stand-in'
>>> with_set = {**spec, "evaluation": {"set": "greet.eval.jsonl"}}
>>> asked = PromptVersionRequest.model_validate({"spec": with_set, "reason": "r",
...     "evaluation_set": ['{"variables": {"who": "Bo"}}', '{"variables": {}}']})
>>> requested_evaluation_set(requested_spec("greet", asked, default_prices()), asked)
Traceback (most recent call last):
...
flywheel.errors.InvalidEvaluationSetError: evaluation_set line 2: variables.who: required
>>> bad = {**spec, "parameters": {"max_tokens": 0}}
>>> requested_spec("greet", body.model_copy(update={"spec": bad}), default_prices())
Traceback (most recent call last):
...
flywheel.errors.ConfigError: spec.parameters.max_tokens: Input should be greater than or \
equal to 1
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, StringConstraints

from flywheel.errors import ConfigError, InvalidEvaluationSetError, PayloadTooLargeError
from flywheel.llm.evaluation_sets import MAX_ITEMS, parse_evaluation_set
from flywheel.llm.prompts import EvaluationSpec, parse_prompt
from flywheel.models import Frozen
from flywheel.registry.models import VersionStatus

if TYPE_CHECKING:
    from flywheel.llm.evaluation_sets import EvaluationSet
    from flywheel.llm.prices import PriceTable
    from flywheel.llm.prompts import PromptSpec

__all__ = [
    "MAX_ROUTE_SET_BYTES",
    "MAX_ROUTE_SET_LINES",
    "VERSIONS_ROUTE",
    "PromptVersionReceipt",
    "PromptVersionRequest",
    "request_body",
    "requested_evaluation_set",
    "requested_spec",
    "route_set_too_large",
]

#: The route, in the Powertools resolvers' syntax.
VERSIONS_ROUTE = "/v1/prompts/<name>/versions"
#: Where the spec sits in the body: a bad field is named ``spec.<field>``.
_SPEC = "spec"
#: Where the evaluation set's lines sit in the body.
_SET = "evaluation_set"
#: Bytes (UTF-8, the lines joined by newlines) of an evaluation set sent to the route:
#: Lambda takes 6 MB a synchronous request, the body's JSON escaped once more inside it.
MAX_ROUTE_SET_BYTES = 1024 * 1024
#: Lines (blank ones too) of an evaluation set sent to the route.
MAX_ROUTE_SET_LINES = 2 * MAX_ITEMS


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
    #: The evaluation set the spec names (``evaluation.set``), one string a line.
    evaluation_set: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ROUTE_SET_LINES,
        description=(
            "The lines of the evaluation set the spec names (evaluation.set), one string per "
            "line of its JSON Lines file; at most 1 MiB in all. Required when the spec names "
            "a set, refused when it names none."
        ),
    )


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
    #: The version's evaluation set as sealed in its spec (digest, size, items), if any.
    evaluation: EvaluationSpec | None = Field(
        description="The version's evaluation set as its spec seals it (sha256, size_bytes, "
        "items), or null when it has none."
    )


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


def route_set_too_large(size: int) -> PayloadTooLargeError:
    """The 413 of an evaluation set of ``size`` bytes, larger than the route takes.

    Examples
    --------
    >>> print(route_set_too_large(2_000_000))
    evaluation_set: 2000000 bytes; a set registered through a deployed stage's route \
takes at most 1048576 (split it, or shorten its contexts)
    """
    return PayloadTooLargeError(
        f"{_SET}: {size} bytes; a set registered through a deployed stage's route takes at "
        f"most {MAX_ROUTE_SET_BYTES} (split it, or shorten its contexts)",
        field=_SET,
        details={"size_bytes": size, "max_bytes": MAX_ROUTE_SET_BYTES},
    )


def requested_evaluation_set(
    spec: PromptSpec, request: PromptVersionRequest
) -> EvaluationSet | None:
    """The evaluation set of ``request``, checked against ``spec`` (its variables, its
    context variable) as a local registration checks the set's file.

    Raises
    ------
    ConfigError
        400: the spec names a set and the body sends none (the route never reads a
        path), or the body sends a set for a spec that names none.
    PayloadTooLargeError
        413: more than :data:`MAX_ROUTE_SET_BYTES`.
    InvalidEvaluationSetError
        422: a line that is not an item of the set, naming the line and the item's field;
        a set with no items.
    """
    lines = request.evaluation_set
    evaluation = spec.evaluation
    if lines is None:
        if evaluation is not None:
            named = evaluation.set or f"sha256 {evaluation.sha256}"
            raise ConfigError(
                f"{_SET}: the spec names an evaluation set ({named}); send its lines in {_SET}",
                field=_SET,
            )
        return None
    if evaluation is None:
        raise ConfigError(
            f"{_SET}: the spec names no evaluation set (spec.evaluation.set)", field=_SET
        )
    data = "\n".join(lines).encode("utf-8")
    if len(data) > MAX_ROUTE_SET_BYTES:
        raise route_set_too_large(len(data))
    try:
        return parse_evaluation_set(data, spec)
    except ConfigError as err:
        raise _set_error(err) from None


def _set_error(error: ConfigError) -> InvalidEvaluationSetError:
    """A set's error named where the set is in the body (``evaluation_set line 3: ...``)."""
    prefix = f"{error.field}"
    message = f"{_SET}{error.message.removeprefix(prefix)}"
    line = error.details.get("line")
    item_field = error.details.get("item_field")
    problem = {
        "row": line - 1 if isinstance(line, int) else None,
        "field": f"{_SET}.{item_field}" if item_field else _SET,
        "reason": message,
    }
    return InvalidEvaluationSetError(message, field=_SET, details={"errors": [problem]})


def request_body(spec: PromptSpec) -> tuple[dict[str, Any], list[str] | None]:
    """What a client sends the route for ``spec``: the spec as JSON, and the lines of the
    evaluation set file it names (``None``: it names none). The body names the set by its
    file's name only; a path on the client's machine means nothing to the route.

    Raises
    ------
    ConfigError
        The set's file cannot be read or is not UTF-8 (``evaluation.set``).
    PayloadTooLargeError
        The set is larger than the route takes (:data:`MAX_ROUTE_SET_BYTES`).

    Examples
    --------
    >>> spec = parse_prompt({"name": "greet", "description": "d", "owner": "o",
    ...     "provider": "local", "model_id": "local.stand-in", "template": "Hi {{ who }}",
    ...     "variables": {"who": {}}, "parameters": {"max_tokens": 20}})
    >>> body, lines = request_body(spec)
    >>> body["name"], lines
    ('greet', None)
    """
    body = spec.model_dump(mode="json")
    evaluation = spec.evaluation
    if evaluation is None or evaluation.set is None:
        return body, None
    path = Path(evaluation.set)
    field = "evaluation.set"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{field}: file not found: {path}", field=field) from None
    except OSError:
        raise ConfigError(f"{field}: could not read {path}", field=field) from None
    if len(data) > MAX_ROUTE_SET_BYTES:
        raise route_set_too_large(len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{field}: not UTF-8 text", field=field) from None
    body["evaluation"]["set"] = path.name
    return body, text.split("\n")
