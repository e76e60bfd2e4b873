"""API Gateway request models, generated from the pydantic models the handlers validate with.

API Gateway validates request bodies against JSON Schema draft 4 only; pydantic writes
JSON Schema 2020-12. :func:`draft4` converts one into the other for a gateway that is a
*first, cheap filter*: it may let through a body the handler then refuses (the handler
stays the authority and names every bad field), but it must never refuse a body the
handler accepts. So the conversion only ever loosens:

- ``$ref`` to ``$defs`` are inlined (recursive models are refused: they cannot be);
- pydantic validates in lax mode, so an ``integer``, ``number`` or ``boolean`` also
  accepts the JSON types pydantic coerces (``"3"``, ``3.0`` and ``true`` are all the
  integer 3 or 1 to it); a ``string`` that pydantic parses as a date, a time or a
  duration takes the same types (Unix timestamps, seconds);
- ``maxLength`` is dropped: pydantic may strip whitespace before measuring (invisible
  in the schema), and counts code points where a Java validator may count UTF-16 units;
- ``pattern`` is kept only when it means the same to pydantic's Rust engine and to an
  ECMA/Java one (ASCII literals, classes of ASCII ranges, anchors, quantifiers, groups);
- ``uniqueItems`` (sets de-duplicate), ``multipleOf`` (float arithmetic differs),
  ``format``, ``not`` (loosening under ``not`` would tighten) and every keyword newer
  than draft 4 are dropped; ``oneOf`` becomes ``anyOf``; ``const`` becomes ``enum``;
  ``enum`` is kept only for strings (other values may arrive as coercible strings);
- ``exclusiveMinimum``/``exclusiveMaximum`` numbers become draft 4's ``minimum`` +
  boolean; ``prefixItems`` becomes draft 4's ``items`` array;
- titles below the top and descriptions are dropped (the OpenAPI document carries them).

What stays is exact for pydantic too: the JSON type of objects, arrays, strings and
``null``; ``required``; ``additionalProperties: false`` (``extra="forbid"``);
``minLength``; ``minItems``/``maxItems``; ``minimum``/``maximum``; string enums.
Fields with aliases are not handled specially: the models here have none.

Examples
--------
>>> draft4({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})
{'$schema': 'http://json-schema.org/draft-04/schema#', 'type': 'object', \
'properties': {'n': {'type': ['boolean', 'number', 'string'], 'minimum': 1}}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import aws_apigateway as apigw

from flywheel.llm.invocation import InvokeRequest
from flywheel.llm.registration import PromptVersionRequest
from flywheel.monitoring.feedback import FeedbackRequest
from flywheel.serving.models import PredictRequest
from flywheel.workflows.approvals import DecisionRequest
from flywheel.workflows.config import ConfigRequest
from flywheel.workflows.promotion_requests import PromotionRequest
from flywheel.workflows.retrain import RetrainRequest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import BaseModel

__all__ = ["DRAFT4", "REQUEST_MODELS", "cdk_schema", "draft4", "request_schema"]

DRAFT4 = "http://json-schema.org/draft-04/schema#"

#: API Gateway model name -> the pydantic model its route's handler validates with.
REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "PredictRequest": PredictRequest,
    "ApprovalDecision": DecisionRequest,
    "Feedback": FeedbackRequest,
    "RetrainRequest": RetrainRequest,
    "PromotionRequest": PromotionRequest,
    "ConfigRequest": ConfigRequest,
    "InvokePromptRequest": InvokeRequest,
    "PromptVersionRequest": PromptVersionRequest,
}

#: The JSON types pydantic's lax mode turns into each scalar type.
_LAX_TYPES = {
    "integer": ("boolean", "number", "string"),
    "number": ("boolean", "number", "string"),
    "boolean": ("boolean", "number", "string"),
}
#: String formats pydantic also parses from numbers (timestamps, seconds) or booleans.
_NUMERIC_FORMATS = frozenset({"date-time", "date", "time", "duration"})
#: Kept as they are (values are numbers, booleans or lists of names).
_PLAIN = ("minimum", "maximum", "minLength", "minItems", "maxItems", "required")
#: Kept as they are when they are numbers; objects/arrays of schemas are converted.
_COUNTS = ("minProperties", "maxProperties")
#: Escapes that mean the same literal character in every engine.
_LITERAL_ESCAPES = frozenset(".-\\/+*?()[]{}^$|")


def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The draft-4 gateway schema of a pydantic request model."""
    return draft4(model.model_json_schema(mode="validation"))


def draft4(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic (2020-12) JSON schema as a draft-4 schema that never refuses more.

    Raises
    ------
    ValueError
        The schema refers to itself (a recursive model): draft 4 as API Gateway takes
        it cannot express that without ``$ref``.
    """
    defs = dict(schema.get("$defs", {}))
    converted = _convert(schema, defs, ())
    out: dict[str, Any] = {"$schema": DRAFT4}
    if isinstance(schema.get("title"), str):
        out["title"] = schema["title"]
    out.update(converted)
    return out


def _convert(
    schema: Mapping[str, Any], defs: Mapping[str, Any], seen: tuple[str, ...]
) -> dict[str, Any]:
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        if name in seen:
            raise ValueError(f"recursive schema {name!r} cannot be inlined for draft 4")
        resolved = _convert(defs[name], defs, (*seen, name))
        rest = _convert({k: v for k, v in schema.items() if k != "$ref"}, defs, seen)
        return {"allOf": [resolved, rest]} if rest else resolved

    out: dict[str, Any] = {}
    if "type" in schema:
        out["type"] = _lax_type(schema["type"], schema.get("format"))
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if values is not None and all(isinstance(v, str) or v is None for v in values):
        out["enum"] = list(values)
    for key in _PLAIN:
        if key in schema:
            out[key] = schema[key]
    for key in _COUNTS:
        if isinstance(schema.get(key), int):
            out[key] = schema[key]
    for key, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            out.update(_exclusive(flag, bound, schema.get(flag)))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and portable_pattern(pattern):
        out["pattern"] = pattern

    for key in ("properties", "patternProperties"):
        if key in schema:
            out[key] = {name: _convert(sub, defs, seen) for name, sub in schema[key].items()}
    additional = schema.get("additionalProperties")
    if isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif isinstance(additional, dict):
        out["additionalProperties"] = _convert(additional, defs, seen)
    out.update(_items(schema, defs, seen))
    # oneOf becomes anyOf: widened branches may overlap where pydantic picks one.
    unions = [
        [_convert(s, defs, seen) for s in schema[key]]
        for key in ("anyOf", "oneOf")
        if key in schema
    ]
    every = [_convert(s, defs, seen) for s in schema.get("allOf", [])]
    if len(unions) == 1:
        out["anyOf"] = unions[0]
    else:
        every.extend({"anyOf": union} for union in unions)
    if every:
        out["allOf"] = every
    return out


def _ref_name(ref: str) -> str:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    raise ValueError(f"only local definitions can be inlined, not {ref!r}")


def _lax_type(declared: str | list[str], fmt: object) -> str | list[str]:
    types: list[str] = []
    for name in [declared] if isinstance(declared, str) else declared:
        accepted: tuple[str, ...] = _LAX_TYPES.get(name, (name,))
        if name == "string" and fmt in _NUMERIC_FORMATS:
            accepted = _LAX_TYPES["number"]
        types.extend(t for t in accepted if t not in types)
    if "number" in types and "integer" in types:
        types.remove("integer")
    return types[0] if len(types) == 1 else types


def _exclusive(flag: str, bound: float, inclusive: object) -> dict[str, Any]:
    """Draft 2020's numeric exclusive bound as draft 4's ``minimum`` + boolean."""
    if isinstance(inclusive, int | float) and not isinstance(inclusive, bool):
        # Both given: keep whichever is stricter (draft 4 has one bound per side).
        inclusive_is_stricter = inclusive > bound if flag == "minimum" else inclusive < bound
        if inclusive_is_stricter:
            return {}
    return {flag: bound, f"exclusive{flag.title()}": True}


def _items(
    schema: Mapping[str, Any], defs: Mapping[str, Any], seen: tuple[str, ...]
) -> dict[str, Any]:
    items = schema.get("items")
    if "prefixItems" in schema:
        out: dict[str, Any] = {"items": [_convert(s, defs, seen) for s in schema["prefixItems"]]}
        if items is False:
            out["additionalItems"] = False
        elif isinstance(items, dict):
            out["additionalItems"] = _convert(items, defs, seen)
        return out
    if isinstance(items, dict):
        return {"items": _convert(items, defs, seen)}
    return {}


def portable_pattern(pattern: str) -> bool:
    """Whether ``pattern`` matches the same strings in Rust, ECMA 262 and Java regex.

    Only printable ASCII literals, bracket classes of literals and ranges, anchors,
    quantifiers, plain groups and alternation; no ``.``, no ``\\d``/``\\w``/``\\s``
    (Unicode-aware in Rust, ASCII in ECMA), no ``(?...)`` constructs.

    Examples
    --------
    >>> portable_pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    True
    >>> portable_pattern(r"^\\d+$"), portable_pattern(r"^a.b$"), portable_pattern(r"(?i)x")
    (False, False, False)
    """
    if not pattern.isascii():
        return False
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if not char.isprintable():
            return False
        if char == "\\":
            if pattern[i + 1 : i + 2] not in _LITERAL_ESCAPES:
                return False  # a class shorthand, a backreference, or a trailing "\\"
            i += 2
            continue
        if in_class:
            if char == "[":
                return False  # POSIX classes, set operations
            in_class = char != "]"
        elif char == "[":
            if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                return False  # an empty class in ECMA, a literal "]" elsewhere
            in_class = True
        elif char == "." or (char == "(" and pattern[i + 1 : i + 2] == "?"):
            return False
        i += 1
    return not in_class


# -- to CDK -------------------------------------------------------------------------------------
_CDK_NAMES = {
    "$schema": "schema",
    "$ref": "ref",
    "additionalItems": "additional_items",
    "additionalProperties": "additional_properties",
    "allOf": "all_of",
    "anyOf": "any_of",
    "oneOf": "one_of",
    "not": "not_",
    "exclusiveMaximum": "exclusive_maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "maxItems": "max_items",
    "maxLength": "max_length",
    "maxProperties": "max_properties",
    "minItems": "min_items",
    "minLength": "min_length",
    "minProperties": "min_properties",
    "multipleOf": "multiple_of",
    "patternProperties": "pattern_properties",
    "uniqueItems": "unique_items",
}
#: jsii enums carry their member names as values; CDK writes the URI and the lowercase type.
_CDK_VERSIONS = {DRAFT4: apigw.JsonSchemaVersion.DRAFT4}
_CDK_TYPES = {kind.name.lower(): kind for kind in apigw.JsonSchemaType}


def cdk_schema(schema: Mapping[str, Any]) -> apigw.JsonSchema:
    """A draft-4 schema dict as CDK's :class:`~aws_cdk.aws_apigateway.JsonSchema`.

    CDK renders it back key for key (``schema`` -> ``$schema``), so the template holds
    exactly ``schema``.
    """
    kwargs: dict[str, Any] = {}
    for key, value in schema.items():
        name = _CDK_NAMES.get(key, key)
        if key == "$schema":
            kwargs[name] = _CDK_VERSIONS[value]
        elif key == "type":
            kwargs[name] = (
                _CDK_TYPES[value] if isinstance(value, str) else [_CDK_TYPES[v] for v in value]
            )
        elif key in ("properties", "patternProperties"):
            kwargs[name] = {prop: cdk_schema(sub) for prop, sub in value.items()}
        elif key in ("allOf", "anyOf", "oneOf") or (key == "items" and isinstance(value, list)):
            kwargs[name] = [cdk_schema(sub) for sub in value]
        elif isinstance(value, dict):
            kwargs[name] = cdk_schema(value)
        else:
            kwargs[name] = value
    return apigw.JsonSchema(**kwargs)
