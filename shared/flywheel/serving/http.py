"""HTTP edge of the inference API, free of any web framework: parsing and error bodies.

The Lambda handler (Powertools) and any other adapter share these so that every
client sees the same statuses and the same ``{"error": {...}}`` bodies:

- malformed JSON or a body that does not follow :class:`PredictRequest` → 400
  ``invalid_request``, each bad field listed;
- records that fail the model's input schema → 422 ``invalid_records``, each bad
  field listed;
- too many records → 413 ``payload_too_large``; an unknown model → 404;
- anything unexpected → 500 with a generic message.  Library exception text
  never reaches a client; statuses come from :data:`flywheel.errors.HTTP_STATUS_BY_CODE`.

Examples
--------
>>> status, body = error_response(PayloadTooLargeError("too many records"), request_id="r1")
>>> status, body["error"]["code"]
(413, 'payload_too_large')
"""

from __future__ import annotations

import binascii
import json
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from flywheel.errors import (
    FlywheelError,
    InvalidRequestError,
    PayloadTooLargeError,
    http_status_for,
)
from flywheel.llm.invocation import InvokeResponse
from flywheel.llm.registration import PromptVersionReceipt
from flywheel.serving.models import ErrorBody, PredictRequest, PredictResponse

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "ERROR_RESPONSES",
    "INTERNAL_ERROR_CODE",
    "INVOKE_RESPONSES",
    "MAX_BODY_BYTES",
    "OPENAPI_INFO",
    "PREDICT_RESPONSES",
    "PROMPT_VERSION_RESPONSES",
    "PUBLIC_SERVER_ERRORS",
    "dumps",
    "envelope_problems",
    "error_response",
    "internal_error_response",
    "parse_body",
    "parse_json_body",
    "parse_predict_request",
    "raised_before_service",
]

B = TypeVar("B", bound=BaseModel)

#: Lambda's synchronous payload limit; API Gateway refuses larger bodies anyway.
MAX_BODY_BYTES = 6 * 1024 * 1024
INTERNAL_ERROR_CODE = "internal_error"
#: 5xx codes whose message and problems are shown: they say what was wrong with an
#: answer (never library text), which the caller needs (the LLM gateway's schema check).
PUBLIC_SERVER_ERRORS = frozenset({"invalid_output"})
#: The ``info`` of the generated OpenAPI document (``docs/openapi.json``).
OPENAPI_INFO: dict[str, str] = {
    "title": "Flywheel inference API",
    "version": "1.0.0",
    "description": (
        "Predictions from registered ONNX models, and answers from registered prompts. "
        "Each model is served by a Lambda alias whose versions are pinned to one model "
        "version; every prompt is answered by the LLM gateway, with the stage's budgets "
        "and capture policies. Responses name the version and the variant (champion, "
        "canary, A/B arm) that answered. Prompt versions are registered through the API "
        "as the caller, and approved by someone else."
    ),
}
#: Documented error statuses of the predict route (the OpenAPI ``responses``).
ERROR_RESPONSES: dict[int, str] = {
    400: "Malformed JSON or a body that is not a PredictRequest (every bad field listed)",
    404: "No such model behind this endpoint, or no online features for the entity",
    413: "More records than the batch cap",
    422: (
        "Records that fail the model's input schema (every bad field listed), or an "
        "entity-only request to a deployment without a feature view, or explanations "
        "asked of a version registered without an explainer, or expanded ones of a "
        "version explained by sampling its input features (not_explainable)"
    ),
    500: "Internal error (no details)",
    503: "The model could not be loaded; retry later",
}
#: OpenAPI ``responses`` of the predict route: the answer and every documented error.
PREDICT_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "Predictions",
        "content": {"application/json": {"model": PredictResponse}},
    },
    **{
        status: {"description": text, "content": {"application/json": {"model": ErrorBody}}}
        for status, text in ERROR_RESPONSES.items()
    },
}

#: Documented error statuses of the prompts route (``POST /v1/prompts/{name}/invoke``).
INVOKE_ERROR_RESPONSES: dict[int, str] = {
    400: "Malformed JSON or a body that is not an InvokeRequest (every bad field listed)",
    404: "No prompt of this name, or the prompt has no champion and no canary (no_champion)",
    422: (
        "Variables the answering version refuses (invalid_variables): missing, unknown, "
        "mistyped, out of range or too long, each named variables.<name>"
    ),
    429: (
        "A budget of the prompt or of one of its teams is spent for its day or month "
        "(the body names it; nothing is charged; Retry-After says when the period ends)"
    ),
    500: "Internal error (no details)",
    502: (
        "The provider failed, or its answer failed the version's output schema after the "
        "one repair retry (the validation error in the body)"
    ),
    503: (
        "The prompt's guardrail could not judge the input or the answer (its evaluator "
        "failed or throttled) and its policy blocks then (guardrail_unavailable); nothing "
        "unjudged is shown. A guardrail that blocks answers 200 with its message and a "
        "guardrail object instead"
    ),
    504: "The provider did not answer in time (only the usage it reported is charged)",
}
#: OpenAPI ``responses`` of the prompts route: the answer and every documented error.
INVOKE_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": (
            "The answer, the version and variant that gave it, and its cost; when a "
            "guardrail blocked the input or the answer, the prompt's message as text and "
            "the guardrail object"
        ),
        "content": {"application/json": {"model": InvokeResponse}},
    },
    **{
        status: {"description": text, "content": {"application/json": {"model": ErrorBody}}}
        for status, text in INVOKE_ERROR_RESPONSES.items()
    },
}

#: Documented error statuses of the prompt registration route
#: (``POST /v1/prompts/{name}/versions``).
PROMPT_VERSION_ERROR_RESPONSES: dict[int, str] = {
    400: (
        "Malformed JSON, a body that is not a PromptVersionRequest, or a spec a prompt file "
        "could not hold (the first bad field named spec.<field>, all of them listed), for "
        "another name, or whose model has no price; a spec naming an evaluation set without "
        "its lines in evaluation_set, or lines for a spec naming none"
    ),
    401: "The request carries no caller identity",
    409: "The name holds model versions (registry_kind_mismatch)",
    413: "An evaluation set of more than 1 MiB (payload_too_large)",
    422: (
        "An evaluation set line that is not an item of the set (invalid_evaluation_set): "
        "not JSON, a bad field, or variables the prompt refuses, naming the line and field"
    ),
    500: "Internal error (no details)",
    502: "The project bus did not take the approval's announcement; send the request again",
}
#: OpenAPI ``responses`` of the prompt registration route.
PROMPT_VERSION_RESPONSES: dict[int | str, Any] = {
    201: {
        "description": "A new version, registered as the caller, its approval asked for",
        "content": {"application/json": {"model": PromptVersionReceipt}},
    },
    200: {
        "description": "The latest version already holds this spec: nothing new was written",
        "content": {"application/json": {"model": PromptVersionReceipt}},
    },
    **{
        status: {"description": text, "content": {"application/json": {"model": ErrorBody}}}
        for status, text in PROMPT_VERSION_ERROR_RESPONSES.items()
    },
}

_REASONS = {
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
}


class _ProxyEvent(Protocol):
    @property
    def decoded_body(self) -> str | None: ...


def body_text(event: _ProxyEvent) -> str:
    """The request body as text; a body that is not UTF-8 (or not base64 when flagged so) is a 400.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> body_text(SimpleNamespace(decoded_body='{"record": {}}'))
    '{"record": {}}'
    """
    try:
        return event.decoded_body or ""
    except (UnicodeDecodeError, binascii.Error):
        raise InvalidRequestError("body: is not valid UTF-8 text", field="body") from None


def parse_json_body(text: str) -> Any:
    """Parse a request body; malformed, oversized or absurdly nested input is a 400/413.

    Python's parser raises ``RecursionError`` on deep nesting and ``ValueError``
    on integers of more than 4300 digits; both become our own errors here, so a
    hostile body can never turn into a 500.  ``NaN``/``Infinity`` literals parse
    (the record validator then refuses them by name).

    Raises
    ------
    InvalidRequestError
        Not JSON.
    PayloadTooLargeError
        More than :data:`MAX_BODY_BYTES`.

    Examples
    --------
    >>> parse_json_body('{"record": {"x": 1}}')
    {'record': {'x': 1}}
    >>> parse_json_body("[" * 100_000)
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidRequestError: the body is nested too deeply
    >>> parse_json_body('[{"record": {"x": 1}}]')
    Traceback (most recent call last):
    ...
    flywheel.errors.InvalidRequestError: the body must be a JSON object
    """
    _check_size(text)
    try:
        body = json.loads(text)
    except RecursionError:
        raise InvalidRequestError("the body is nested too deeply", field="body") from None
    except json.JSONDecodeError as err:
        raise InvalidRequestError(
            f"the body is not valid JSON (line {err.lineno}, column {err.colno})",
            field="body",
            details={"errors": [{"row": None, "field": "body", "reason": "is not valid JSON"}]},
        ) from None
    except ValueError:
        raise InvalidRequestError(
            "the body holds a number too long to parse", field="body"
        ) from None
    if not isinstance(body, dict):
        # Powertools would validate the first element of a list as the whole body.
        raise InvalidRequestError(
            "the body must be a JSON object",
            field="body",
            details={"errors": [{"row": None, "field": "body", "reason": "must be an object"}]},
        )
    return body


def _check_size(text: str) -> None:
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is larger than {MAX_BODY_BYTES} bytes",
            field="body",
            details={"max_bytes": MAX_BODY_BYTES, "source": "body"},
        )


def dumps(body: Mapping[str, Any]) -> str:
    """A response body as compact JSON.

    Examples
    --------
    >>> dumps({"error": {"code": "x"}})
    '{"error":{"code":"x"}}'
    """
    return json.dumps(body, separators=(",", ":"))


def parse_predict_request(text: str | None) -> PredictRequest:
    """Parse and validate a predict body in one pass (pydantic-core's JSON parser).

    The same rules as :func:`parse_json_body` followed by ``PredictRequest``
    validation, at a fifth of the cost: ``NaN``/``Infinity`` literals parse (the
    record validator refuses them by name), too-deep nesting and numbers too long
    to represent are 400s with their own reason, never a 500.

    Raises
    ------
    InvalidRequestError
        Not JSON, or not a ``PredictRequest``; every bad field listed.
    PayloadTooLargeError
        More than :data:`MAX_BODY_BYTES`.

    Examples
    --------
    >>> parse_predict_request('{"record": {"x": 1}}').rows()
    [{'x': 1}]
    >>> try:
    ...     parse_predict_request('{"records": []}')
    ... except InvalidRequestError as err:
    ...     err.details["errors"]
    [{'row': None, 'field': 'records', 'reason': 'must not be empty'}]
    """
    return parse_body(PredictRequest, text)


def parse_body(model: type[B], text: str | None) -> B:
    """Parse and validate a JSON body as ``model`` in one pass (pydantic-core's parser).

    Raises
    ------
    InvalidRequestError
        Not JSON (too deep, numbers too long to parse), or not a ``model``; every bad
        field listed.
    PayloadTooLargeError
        More than :data:`MAX_BODY_BYTES`.

    Examples
    --------
    >>> parse_body(PredictRequest, '{"record": {"x": 1}}').record
    {'x': 1}
    """
    text = text or ""
    _check_size(text)
    try:
        return model.model_validate_json(text)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_input=False)
    invalid_json = next((e for e in errors if e["type"] == "json_invalid"), None)
    if invalid_json is not None:
        message = str(invalid_json.get("msg", ""))
        if "recursion limit" in message:
            raise InvalidRequestError("the body is nested too deeply", field="body")
        if "number out of range" in message:
            raise InvalidRequestError("the body holds a number too long to parse", field="body")
        where = message.rsplit(" at ", 1)[-1] if " at line " in message else "its start"
        raise InvalidRequestError(
            f"the body is not valid JSON (at {where})",
            field="body",
            details={"errors": [{"row": None, "field": "body", "reason": "is not valid JSON"}]},
        )
    problems = envelope_problems(errors)
    raise InvalidRequestError("the request body is invalid", details={"errors": problems})


def envelope_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic-style errors (``loc``, ``type``, ``msg``) as ``{"row", "field", "reason"}``.

    Reasons are ours, chosen by error type; the location becomes a dotted path
    without the leading ``body``.

    Examples
    --------
    >>> envelope_problems([{"loc": ("body", "records", 0), "type": "dict_type", "msg": "..."}])
    [{'row': 0, 'field': 'records[0]', 'reason': 'must be an object'}]
    """
    problems = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part != "body"]
        field = ""
        row = None
        for part in loc:
            if isinstance(part, int):
                field += f"[{part}]"
                row = part if row is None else row
            else:
                field += f".{part}" if field else str(part)
        kind = str(error.get("type", ""))
        reason = _REASONS.get(kind)
        if reason is None and kind == "value_error":
            reason = _own_message(error)
        problems.append({"row": row, "field": field or "body", "reason": reason or "is invalid"})
    return problems


def error_response(error: FlywheelError, *, request_id: str | None) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error": ...}`` body for a domain error.

    4xx bodies carry our message and, when known, every bad field.  5xx bodies
    carry the code and a generic message only (details go to the logs), except the
    codes of :data:`PUBLIC_SERVER_ERRORS`, whose message and problems are ours to show.

    Examples
    --------
    >>> from flywheel.errors import ModelNotFoundError
    >>> error_response(ModelNotFoundError("model 'x' is not served here"), request_id="r")
    (404, {'error': {'code': 'model_not_found', 'message': "model 'x' is not served here", \
'request_id': 'r'}})
    """
    status = http_status_for(error)
    if status >= 500 and error.code not in PUBLIC_SERVER_ERRORS:
        return internal_error_response(request_id=request_id, status=status, code=error.code)
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if request_id is not None:
        body["request_id"] = request_id
    problems = error.details.get("errors")
    if problems:
        body["errors"] = problems
    elif error.field is not None and status in (400, 413, 422):
        body["errors"] = [
            {"row": error.details.get("row"), "field": error.field, "reason": error.message}
        ]
    return status, {"error": body}


def internal_error_response(
    *, request_id: str | None, status: int = 500, code: str = INTERNAL_ERROR_CODE
) -> tuple[int, dict[str, Any]]:
    """A 5xx body that says nothing about the cause.

    Examples
    --------
    >>> internal_error_response(request_id="r")
    (500, {'error': {'code': 'internal_error', 'message': 'internal error', 'request_id': 'r'}})
    """
    message = "the model is temporarily unavailable" if status == 503 else "internal error"
    body: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        body["request_id"] = request_id
    return status, {"error": body}


def raised_before_service(error: FlywheelError) -> bool:
    """Whether ``error`` was raised before the service saw the request.

    The service reports its own outcomes; errors about the request itself
    (:class:`InvalidRequestError`, or an oversized body from
    :func:`parse_json_body`) must be counted by the HTTP adapter.

    Examples
    --------
    >>> raised_before_service(InvalidRequestError("not JSON", field="body"))
    True
    >>> raised_before_service(PayloadTooLargeError("101 records", field="records"))
    False
    """
    return isinstance(error, InvalidRequestError) or error.details.get("source") == "body"


def _own_message(error: Mapping[str, Any]) -> str | None:
    # Our model validators raise ValueError with our text; pydantic prefixes it.
    message = str(error.get("msg", ""))
    prefix = "Value error, "
    return message.removeprefix(prefix) if message.startswith(prefix) else None
