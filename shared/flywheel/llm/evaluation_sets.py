"""Evaluation sets: the questions a prompt version is judged on before it rolls out (ADR 81).

A set is JSON Lines, one item a line (see Notes). Registering a spec seals its set
(:func:`seal_evaluation`): the set is validated against the spec (a bad line is refused
naming the line and the field), stored as canonical JSON Lines next to the spec, and its
SHA-256 becomes part of the spec, so the version's digest covers the set.

Notes
-----
An item::

    {"id": "refund-1", "variables": {"question": "How do refunds work?"},
     "context": ["Refunds go back to the card within 5 days."],
     "must_include": ["5 days"]}

``variables`` (required) are the prompt's variables, checked as rendering checks them;
``context`` (a list of passages, or one string) is what a retrieval-augmented answer must
be grounded in; ``expected`` (a reference answer) or ``must_include`` (facts the answer
must state) give the answer something to be compared with; ``id`` names the item in the
gate's report. A prompt whose ``evaluation.context_variable`` names a variable gets the
item's passages there (joined by blank lines) when the item does not give that variable
itself, and an item without ``context`` is grounded in that variable's value.

Examples
--------
>>> from flywheel.llm.prompts import parse_prompt
>>> spec = parse_prompt({"name": "answer", "description": "d", "owner": "o",
...     "provider": "local", "model_id": "local.stand-in",
...     "template": "{{ question }}\\n\\n{{ passages }}",
...     "variables": {"question": {}, "passages": {}}, "parameters": {"max_tokens": 50},
...     "evaluation": {"set": "answer.eval.jsonl", "context_variable": "passages"}})
>>> found = parse_evaluation_set(
...     b'{"variables": {"question": "When?"}, "context": ["Refunds take 5 days."]}\\n',
...     spec)
>>> item = found.items[0]
>>> item.variables_for(spec), item.passages(spec)
({'question': 'When?', 'passages': 'Refunds take 5 days.'}, ('Refunds take 5 days.',))
>>> parse_evaluation_set(b'{"variables": {"question": 3}}', spec)
Traceback (most recent call last):
...
flywheel.errors.ConfigError: evaluation.set line 1: variables.question: must be a string
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, JsonValue, ValidationError, field_validator

from flywheel.errors import ConfigError, PromptVariablesError
from flywheel.llm.prompts import render
from flywheel.models import Frozen

if TYPE_CHECKING:
    from flywheel.llm.prompts import PromptSpec

__all__ = [
    "EVALUATION_SET_FILE",
    "MAX_ITEMS",
    "MAX_SET_BYTES",
    "EvaluationItem",
    "EvaluationSet",
    "parse_evaluation_set",
    "seal_evaluation",
]

#: The set's name next to the stored spec (``prompts/<name>/<registration>/``).
EVALUATION_SET_FILE = "evaluation.jsonl"
#: Items a set may hold: each is answered by the candidate and by the champion.
MAX_ITEMS = 500
#: Bytes a set's file may take.
MAX_SET_BYTES = 4 * 1024 * 1024
_FIELD = "evaluation.set"
_PARAGRAPHS = re.compile(r"\n\s*\n")


class EvaluationItem(Frozen):
    """One line of an evaluation set (see the module docstring)."""

    id: str | None = Field(default=None, min_length=1, max_length=128)
    variables: dict[str, JsonValue]
    #: Passages the answer must be grounded in (a string is one passage).
    context: tuple[str, ...] | None = Field(default=None, max_length=50)
    #: A reference answer.
    expected: str | None = Field(default=None, min_length=1, max_length=20_000)
    #: Facts the answer must state (matched case-insensitively, spaces normalized).
    must_include: tuple[str, ...] = Field(default=(), max_length=50)

    @field_validator("context", mode="before")
    @classmethod
    def _one_passage(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("context", "must_include")
    @classmethod
    def _not_blank(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for i, text in enumerate(values or ()):
            if not text.strip():
                raise ValueError(f"entry {i} is blank")
        return values

    def variables_for(self, spec: PromptSpec) -> dict[str, Any]:
        """The variables this item renders ``spec`` with: its own, plus its passages in
        the spec's context variable when it does not give that variable itself."""
        variables: dict[str, Any] = dict(self.variables)
        name = spec.evaluation.context_variable if spec.evaluation is not None else None
        if name is not None and name not in variables and self.context:
            variables[name] = "\n\n".join(self.context)
        return variables

    def passages(self, spec: PromptSpec) -> tuple[str, ...]:
        """What the answer must be grounded in: the item's ``context``, else the value of
        ``spec``'s context variable split into paragraphs (none: not judged)."""
        if self.context:
            return self.context
        name = spec.evaluation.context_variable if spec.evaluation is not None else None
        value = self.variables.get(name) if name is not None else None
        if not isinstance(value, str):
            return ()
        return tuple(p.strip() for p in _PARAGRAPHS.split(value) if p.strip())

    def label(self, index: int) -> str:
        """How the gate's report names the item: its ``id``, else its line number."""
        return self.id or f"line {index + 1}"


class EvaluationSet(Frozen):
    """A parsed set: its items and the SHA-256 of its canonical bytes."""

    items: tuple[EvaluationItem, ...] = Field(min_length=1, max_length=MAX_ITEMS)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def canonical_bytes(self) -> bytes:
        """The set as stored: one canonical JSON object a line (unset fields left out)."""
        return _canonical(self.items)


def _canonical(items: tuple[EvaluationItem, ...]) -> bytes:
    lines = [
        json.dumps(
            item.model_dump(mode="json", exclude_defaults=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
        for item in items
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _line_error(line: int, field: str, reason: str) -> ConfigError:
    return ConfigError(
        f"{_FIELD} line {line}: {field}: {reason}",
        field=_FIELD,
        details={"line": line, "item_field": field},
    )


def parse_evaluation_set(data: bytes, spec: PromptSpec) -> EvaluationSet:
    """Validate an evaluation set against ``spec`` (its variables, its context variable).

    Blank lines are skipped; every other line is one item.

    Raises
    ------
    ConfigError
        ``field`` ``evaluation.set``; the message names the line and the item's field
        (``evaluation.set line 3: variables.ticket: required``), ``details`` the same.
    """
    from flywheel.artifacts.ports import sha256_hex

    if len(data) > MAX_SET_BYTES:
        raise ConfigError(
            f"{_FIELD}: larger than {MAX_SET_BYTES} bytes ({len(data)})", field=_FIELD
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{_FIELD}: not UTF-8 text", field=_FIELD) from None
    items: list[EvaluationItem] = []
    # JSON Lines ends lines with \n only (a U+2028 inside a string is text, not a line end).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(items) == MAX_ITEMS:
            raise _line_error(number, "(item)", f"a set holds at most {MAX_ITEMS} items")
        items.append(_item(number, line, spec))
    if not items:
        raise ConfigError(f"{_FIELD}: the set holds no items", field=_FIELD)
    found = tuple(items)
    return EvaluationSet(items=found, sha256=sha256_hex(_canonical(found)))


def _item(number: int, line: str, spec: PromptSpec) -> EvaluationItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as err:
        raise _line_error(number, "(line)", f"not JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(raw, dict):
        raise _line_error(number, "(line)", "an item is a JSON object")
    try:
        item = EvaluationItem.model_validate(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(item)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise _line_error(number, field, message) from None
    try:
        render(spec, item.variables_for(spec))
    except PromptVariablesError as err:
        reason = str(err.details["errors"][0]["reason"])
        raise _line_error(number, err.field or "variables", reason) from None
    return item


def seal_evaluation(
    spec: PromptSpec, given: EvaluationSet | None = None
) -> tuple[PromptSpec, bytes | None]:
    """``spec`` with its evaluation set sealed (digest, size, items), and the set's
    canonical bytes to store; a spec without a set comes back as it is, with ``None``.

    The set is ``given`` (already parsed against ``spec``: what the registration route
    received in its body), else read from the file ``evaluation.set`` names.

    Raises
    ------
    ConfigError
        The set's file cannot be read or is invalid (naming the line and field), the
        spec holds a sealed set whose file is not given (``evaluation.set``), or a set is
        given for a spec that declares none or whose sealed digest is another set's.
    """
    evaluation = spec.evaluation
    if evaluation is None:
        if given is not None:
            raise ConfigError(
                f"{_FIELD}: an evaluation set is given but the spec declares none (evaluation.set)",
                field=_FIELD,
            )
        return spec, None
    if given is None and evaluation.set is None:
        raise ConfigError(
            f"{_FIELD}: the spec holds a sealed set (sha256 {evaluation.sha256}); name the "
            "set's file to register it",
            field=_FIELD,
        )
    parsed = given if given is not None else _read(spec, Path(str(evaluation.set)))
    if evaluation.sha256 is not None and evaluation.sha256 != parsed.sha256:
        raise ConfigError(
            f"{_FIELD}: the spec holds a sealed set (sha256 {evaluation.sha256}) that is not "
            f"the set given (sha256 {parsed.sha256})",
            field=_FIELD,
        )
    stored = parsed.canonical_bytes()
    sealed = evaluation.model_copy(
        update={
            "set": None,
            "sha256": parsed.sha256,
            "size_bytes": len(stored),
            "items": len(parsed.items),
        }
    )
    return spec.model_copy(update={"evaluation": sealed}), stored


def _read(spec: PromptSpec, path: Path) -> EvaluationSet:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{_FIELD}: file not found: {path}", field=_FIELD) from None
    except OSError:
        raise ConfigError(f"{_FIELD}: could not read {path}", field=_FIELD) from None
    return parse_evaluation_set(data, spec)
