"""A prompt's answer as JSON of its output schema: parsing, checking, and the repair request.

The gateway reads an answer of a prompt with an ``output_schema`` as one JSON value
(surrounding white space and one Markdown code fence are tolerated, nothing else) and
checks it against the schema's keywords that prompts use: ``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``, ``const``,
``minItems``/``maxItems``, ``minLength``/``maxLength``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum`` (other keywords are not checked). Problems
name where they are (``output``, ``output.urgency``, ``output.items[2]``) and never
quote the answer, so they can be shown to the caller and sent back to the model.

Examples
--------
>>> schema = {"type": "object", "required": ["summary", "urgency"],
...           "properties": {"summary": {"type": "string"},
...                          "urgency": {"enum": ["low", "high"]}}}
>>> read_output('```json\\n{"summary": "ok", "urgency": "low"}\\n```', schema)
({'summary': 'ok', 'urgency': 'low'}, [])
>>> read_output('{"summary": 3}', schema)[1]
[('output.summary', 'must be a string'), ('output.urgency', 'is required')]
>>> read_output("Sure! Here it is", schema)[1]
[('output', 'is not JSON (line 1, column 1)')]
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_PROBLEMS", "check_output", "read_output", "repair_message"]

#: Problems reported at most (the rest are counted, not listed).
MAX_PROBLEMS = 20
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```") and text.endswith("```") and len(text) >= 6:
        body = text[3:-3]
        first_line, _, rest = body.partition("\n")
        # ```json\n...\n``` or ```\n...\n```: the first line names the language, if any.
        return (rest if first_line.strip().isalpha() or not first_line.strip() else body).strip()
    return text


def read_output(text: str, schema: Mapping[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    """The answer ``text`` parsed as JSON, and its problems against ``schema`` (none: valid).

    Examples
    --------
    >>> read_output("[1, 2]", {"type": "array", "items": {"type": "integer"}, "maxItems": 1})
    ([1, 2], [('output', 'must hold at most 1 items')])
    """
    try:
        value = json.loads(_strip_fence(text))
    except json.JSONDecodeError as err:
        return None, [("output", f"is not JSON (line {err.lineno}, column {err.colno})")]
    except (RecursionError, ValueError):
        return None, [("output", "is not JSON this gateway can read (too deep or too long)")]
    return value, check_output(value, schema)


def check_output(
    value: Any, schema: Mapping[str, Any], where: str = "output"
) -> list[tuple[str, str]]:
    """Every problem of ``value`` against ``schema`` as ``(field, reason)``, at most
    :data:`MAX_PROBLEMS`.

    Examples
    --------
    >>> check_output(1.0, {"type": "integer"}), check_output(True, {"type": "integer"})
    ([], [('output', 'must be an integer')])
    """
    problems: list[tuple[str, str]] = []
    _check(value, schema, where, problems, 0)
    return problems[:MAX_PROBLEMS]


def _is(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "integer":
        return isinstance(value, int) or (math.isfinite(value) and value == int(value))
    return kind == "number"


def _check(
    value: Any, schema: Any, where: str, problems: list[tuple[str, str]], depth: int
) -> None:
    if not isinstance(schema, dict) or len(problems) >= MAX_PROBLEMS:
        return
    if depth > 32:
        problems.append((where, "is nested deeper than the gateway checks"))
        return
    kinds = schema.get("type")
    wanted = kinds if isinstance(kinds, list) else [] if kinds is None else [kinds]
    if wanted and not any(_is(value, str(k)) for k in wanted):
        names = " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in wanted)
        problems.append((where, f"must be {names}"))
        return
    if "const" in schema and value != schema["const"]:
        problems.append((where, f"must be {json.dumps(schema['const'])}"))
    options = schema.get("enum")
    if isinstance(options, list) and value not in options:
        problems.append((where, f"must be one of {', '.join(json.dumps(o) for o in options)}"))
    if isinstance(value, str):
        _bounds(len(value), schema, "minLength", "maxLength", "characters", where, problems)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _range(value, schema, where, problems)
    elif isinstance(value, list):
        _bounds(len(value), schema, "minItems", "maxItems", "items", where, problems)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _check(item, items, f"{where}[{i}]", problems, depth + 1)
    elif isinstance(value, dict):
        _object(value, schema, where, problems, depth)


def _bounds(
    size: int,
    schema: Mapping[str, Any],
    low: str,
    high: str,
    unit: str,
    where: str,
    problems: list[tuple[str, str]],
) -> None:
    least, most = schema.get(low), schema.get(high)
    if isinstance(least, int) and size < least:
        problems.append((where, f"must hold at least {least} {unit}"))
    if isinstance(most, int) and size > most:
        problems.append((where, f"must hold at most {most} {unit}"))


def _range(
    value: float, schema: Mapping[str, Any], where: str, problems: list[tuple[str, str]]
) -> None:
    def limit(key: str) -> float | None:
        found = schema.get(key)
        return found if isinstance(found, int | float) and not isinstance(found, bool) else None

    if (low := limit("minimum")) is not None and value < low:
        problems.append((where, f"must be at least {low:g}"))
    if (high := limit("maximum")) is not None and value > high:
        problems.append((where, f"must be at most {high:g}"))
    if (low := limit("exclusiveMinimum")) is not None and value <= low:
        problems.append((where, f"must be above {low:g}"))
    if (high := limit("exclusiveMaximum")) is not None and value >= high:
        problems.append((where, f"must be below {high:g}"))


def _object(
    value: dict[str, Any],
    schema: Mapping[str, Any],
    where: str,
    problems: list[tuple[str, str]],
    depth: int,
) -> None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    for key, sub in properties.items():
        if key in value:
            _check(value[key], sub, f"{where}.{key}", problems, depth + 1)
    required = schema.get("required")
    for key in required if isinstance(required, list) else []:
        if key not in value:
            problems.append((f"{where}.{key}", "is required"))
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            continue
        if extra is False:
            problems.append((f"{where}.{key}", "is not a property of the schema"))
        elif isinstance(extra, dict):
            _check(item, extra, f"{where}.{key}", problems, depth + 1)


def repair_message(problems: list[tuple[str, str]]) -> str:
    """The user message of the one repair retry: what was wrong, and what to answer.

    Examples
    --------
    >>> print(repair_message([("output.urgency", "must be one of \\"low\\", \\"high\\"")]))
    Your answer does not match the JSON Schema in the instructions:
    - output.urgency: must be one of "low", "high"
    Answer again with one JSON value only, no other text, that matches the schema.
    """
    listed = "\n".join(f"- {field}: {reason}" for field, reason in problems)
    return (
        "Your answer does not match the JSON Schema in the instructions:\n"
        f"{listed}\n"
        "Answer again with one JSON value only, no other text, that matches the schema."
    )
