"""A prompt spec: template, system prompt, provider and model, inference parameters,
variables, optional output schema and guardrail, owner (ADR 78).

Templates are text with ``{{ name }}`` placeholders and nothing else: no expressions,
filters or code, so rendering cannot run anything. Every placeholder names a declared
variable and every declared variable is used; rendering refuses a missing, unknown or
oversized variable, naming it, and never substitutes an empty string. A ``{{`` that does
not open a placeholder is an error (a literal ``{{`` belongs in a variable's value, which
is inserted as it is and never rendered again); ``}}`` outside a placeholder is text.

Examples
--------
>>> spec = parse_prompt({
...     "name": "greeting", "description": "Greets someone", "owner": "ana",
...     "provider": "local", "model_id": "local.stand-in",
...     "template": "Say hello to {{ who }}.", "variables": {"who": {"max_length": 40}},
...     "parameters": {"max_tokens": 50},
... })
>>> render(spec, {"who": "Bo"}).user
'Say hello to Bo.'
>>> render(spec, {})
Traceback (most recent call last):
...
flywheel.errors.PromptVariablesError: variables.who: required
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, JsonValue, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from flywheel.errors import ConfigError, PromptVariablesError, config_error
from flywheel.models import Frozen
from flywheel.registry.models import validate_model_name

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "JSON_INSTRUCTION",
    "EvaluationSpec",
    "Guardrail",
    "InferenceParameters",
    "PromptSpec",
    "Provider",
    "RenderedPrompt",
    "Variable",
    "VariableType",
    "canonical_bytes",
    "load_prompt_file",
    "parse_prompt",
    "parse_template",
    "render",
]

#: Placeholder names: a letter or underscore, then letters, digits, underscores.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
#: Appended to the system prompt of a prompt with an output schema, before the schema.
JSON_INSTRUCTION = "Answer with one JSON value only, no other text, matching this JSON Schema:"
#: What a string variable may hold unless its ``max_length`` says otherwise.
DEFAULT_MAX_LENGTH = 10_000
#: JSON Schema types an output schema may name.
_SCHEMA_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_MAX_SCHEMA_BYTES = 16_384


def _error(field: str, message: str) -> PydanticCustomError:
    """A validation error naming its (nested) field; see :func:`parse_prompt`."""
    return PydanticCustomError("flywheel", "{message}", {"message": message, "subfield": field})


class Provider(StrEnum):
    """Who answers a prompt: Amazon Bedrock (Converse), an OpenAI-compatible endpoint, or
    the local stand-in (a deterministic program, not a model)."""

    BEDROCK = "bedrock"
    OPENAI_COMPATIBLE = "openai_compatible"
    LOCAL = "local"


class VariableType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class Variable(Frozen):
    """One variable of a prompt: its type, whether it is required, and its limits.

    An optional variable (``required: false``) has a ``default``, which renders when the
    variable is not given. ``max_length`` and ``enum`` apply to strings, ``minimum`` and
    ``maximum`` to numbers.

    Examples
    --------
    >>> Variable(max_length=20).problem("Bo") is None
    True
    >>> Variable(type="integer", minimum=1).problem(0)
    'must be at least 1'
    """

    type: VariableType = VariableType.STRING
    description: str = Field(default="", max_length=2000)
    required: bool = True
    default: str | int | float | bool | None = None
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1, le=1_000_000)
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Variable:
        string = self.type is VariableType.STRING
        numeric = self.type in (VariableType.INTEGER, VariableType.NUMBER)
        if self.enum and not string:
            raise _error("enum", "only string variables list allowed values")
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise _error("minimum", "only integer and number variables have a range")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise _error("maximum", f"{self.maximum:g} is below minimum {self.minimum:g}")
        if self.required and self.default is not None:
            raise _error("default", "a required variable has no default (set required: false)")
        if not self.required:
            if self.default is None:
                raise _error("default", "an optional variable renders its default: give one")
            problem = self.problem(self.default)
            if problem is not None:
                raise _error("default", problem)
        return self

    def problem(self, value: object) -> str | None:
        """Why ``value`` does not fit this variable, or ``None`` when it does."""
        kind = self.type
        if kind is VariableType.STRING:
            if not isinstance(value, str):
                return "must be a string"
            if len(value) > self.max_length:
                return f"longer than {self.max_length} characters ({len(value)})"
            if "\x00" in value:
                return "must not contain NUL characters"
            if self.enum and value not in self.enum:
                return f"must be one of {', '.join(self.enum)}"
            return None
        if kind is VariableType.BOOLEAN:
            return None if isinstance(value, bool) else "must be true or false"
        wanted = "an integer" if kind is VariableType.INTEGER else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {wanted}"
        if kind is VariableType.INTEGER and not isinstance(value, int):
            return "must be an integer"
        if not math.isfinite(value):
            return "must be a finite number"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        return None

    @staticmethod
    def text(value: object) -> str:
        """``value`` as a template shows it: strings as they are, the rest as JSON.

        Examples
        --------
        >>> Variable.text("hi"), Variable.text(3), Variable.text(True)
        ('hi', '3', 'true')
        """
        return value if isinstance(value, str) else json.dumps(value)


class InferenceParameters(Frozen):
    """How the provider samples: ``max_tokens`` (required: it bounds a call's cost),
    ``temperature`` and ``top_p`` (``None``: the provider's default), ``stop_sequences``.

    Examples
    --------
    >>> InferenceParameters(max_tokens=200, temperature=0.2).top_p is None
    True
    """

    max_tokens: int = Field(ge=1, le=200_000)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    #: At most 4 (what OpenAI-compatible servers accept), each 1-100 characters.
    stop_sequences: tuple[str, ...] = Field(default=(), max_length=4)

    @field_validator("stop_sequences")
    @classmethod
    def _sequences(cls, sequences: tuple[str, ...]) -> tuple[str, ...]:
        for i, sequence in enumerate(sequences):
            if not 1 <= len(sequence) <= 100:
                raise _error(str(i), "a stop sequence has 1 to 100 characters")
        if len(set(sequences)) != len(sequences):
            raise ValueError("stop sequences repeat")
        return sequences


class Guardrail(Frozen):
    """An Amazon Bedrock guardrail applied to every call (``guardrailConfig``).

    Examples
    --------
    >>> Guardrail(id="gr1abc", version="2").version
    '2'
    """

    id: str = Field(
        pattern=r"^([a-z0-9]+|arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+)$",
        max_length=2048,
    )
    version: str = Field(pattern=r"^([1-9][0-9]{0,7}|DRAFT)$")
    trace: Literal["enabled", "disabled"] = "disabled"


class EvaluationSpec(Frozen):
    """A prompt version's evaluation set (``evaluation:`` in the spec; ADR 81).

    An author names the set's file (``set``, JSON Lines, relative to the spec's file);
    registering it validates the set, stores it next to the spec and seals it here: the
    stored spec holds the set's ``sha256``, ``size_bytes`` and ``items`` instead of the
    path, so the version's digest covers the set. ``context_variable`` names the
    variable that holds a retrieval-augmented prompt's context.

    Examples
    --------
    >>> EvaluationSpec(set="ticket-summary.eval.jsonl").sealed
    False
    >>> EvaluationSpec(sha256="0" * 64, size_bytes=10, items=2).sealed
    True
    """

    #: The set's file as the author names it (never stored: the digest is).
    set: str | None = Field(default=None, min_length=1, max_length=1024)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int | None = Field(default=None, ge=1)
    items: int | None = Field(default=None, ge=1)
    context_variable: str | None = Field(default=None, pattern=VARIABLE_NAME.pattern)

    @model_validator(mode="after")
    def _path_or_seal(self) -> EvaluationSpec:
        sealed = (self.sha256, self.size_bytes, self.items)
        if self.set is None and None in sealed:
            raise _error("set", "name the evaluation set's file (JSON Lines)")
        if self.set is not None and sealed != (None, None, None):
            raise _error("sha256", "a spec names its set's file or its sealed digest, not both")
        return self

    @property
    def sealed(self) -> bool:
        """Whether this is the stored form (digest, size and item count; no path)."""
        return self.sha256 is not None


class _Slot(str):
    """A placeholder's variable name (a ``str`` subclass, to tell it from text)."""

    __slots__ = ()


def parse_template(text: str) -> tuple[str, ...]:
    """``text`` split into literal pieces and placeholder names (see :func:`placeholders`).

    Raises
    ------
    ValueError
        A ``{{`` that does not open a ``{{ name }}`` placeholder, naming its line and column.

    Examples
    --------
    >>> parse_template("Hi {{ who }}!")
    ('Hi ', 'who', '!')
    >>> parse_template("{{ 1 + 1 }}")
    Traceback (most recent call last):
    ...
    ValueError: '{{' at line 1, column 1 does not open a {{ name }} placeholder
    """
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            if position < len(text):
                pieces.append(text[position:])
            return tuple(pieces)
        match = _PLACEHOLDER.match(text, start)
        if match is None:
            line = text.count("\n", 0, start) + 1
            column = start - (text.rfind("\n", 0, start) + 1) + 1
            raise ValueError(
                f"'{{{{' at line {line}, column {column} does not open a {{{{ name }}}} placeholder"
            )
        if start > position:
            pieces.append(text[position:start])
        pieces.append(_Slot(match.group(1)))
        position = match.end()


def placeholders(text: str) -> list[str]:
    """The variable names ``text`` uses, in order of first use.

    Examples
    --------
    >>> placeholders("{{ a }} and {{b}} and {{ a }}")
    ['a', 'b']
    """
    return list(dict.fromkeys(p for p in parse_template(text) if isinstance(p, _Slot)))


def _fill(pieces: tuple[str, ...], values: Mapping[str, str]) -> str:
    return "".join(values[p] if isinstance(p, _Slot) else p for p in pieces)


class PromptSpec(Frozen):
    """One prompt version as its author writes it (YAML or JSON); see :func:`parse_prompt`.

    ``structured_output: true`` asks the provider itself for JSON matching
    ``output_schema`` (Converse ``outputConfig``, OpenAI ``response_format``); either way
    the schema is appended to the system prompt after :data:`JSON_INSTRUCTION`.
    """

    name: str
    description: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=256)
    provider: Provider
    model_id: str = Field(min_length=1, max_length=2048, pattern=r"^\S+$")
    system: str = Field(default="", max_length=100_000)
    template: str = Field(min_length=1, max_length=100_000)
    variables: dict[str, Variable] = Field(min_length=1, max_length=50)
    parameters: InferenceParameters
    output_schema: dict[str, JsonValue] | None = None
    structured_output: bool = False
    guardrail: Guardrail | None = None
    #: The version's evaluation set (ADR 81); the promotion workflow's gate runs it.
    evaluation: EvaluationSpec | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_model_name(name)

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, variables: dict[str, Variable]) -> dict[str, Variable]:
        for name in variables:
            if not VARIABLE_NAME.fullmatch(name):
                raise _error(
                    name, "a variable name is a letter or _, then letters, digits or _ (<= 64)"
                )
        return variables

    @field_validator("template", "system")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse_template(text)
        return text

    @field_validator("output_schema")
    @classmethod
    def _schema(cls, schema: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        if schema is None:
            return None
        if len(json.dumps(schema)) > _MAX_SCHEMA_BYTES:
            raise ValueError(f"larger than {_MAX_SCHEMA_BYTES} bytes")
        _check_schema(schema, "")
        return schema

    @model_validator(mode="after")
    def _consistent(self) -> PromptSpec:
        used = placeholders(self.system) + placeholders(self.template)
        for name in used:
            if name not in self.variables:
                raise _error("template", f"{{{{ {name} }}}} is not a declared variable")
        for name in self.variables:
            if name not in used:
                raise _error(f"variables.{name}", "neither the template nor the system uses it")
        if self.structured_output and self.output_schema is None:
            raise _error("structured_output", "needs an output_schema")
        if self.guardrail is not None and self.provider is Provider.OPENAI_COMPATIBLE:
            raise _error("guardrail", "guardrails are Amazon Bedrock's (provider: bedrock)")
        context = self.evaluation.context_variable if self.evaluation is not None else None
        if context is not None:
            variable = self.variables.get(context)
            if variable is None:
                raise _error("evaluation.context_variable", f"{context} is not a declared variable")
            if variable.type is not VariableType.STRING:
                raise _error("evaluation.context_variable", f"{context} is not a string variable")
        return self

    def system_text(self, system: str) -> str:
        """The rendered system prompt ``system`` as sent: with the output schema, if any
        (appended after rendering, so the schema's text is never read as a template)."""
        if self.output_schema is None:
            return system
        schema = json.dumps(self.output_schema, sort_keys=True, separators=(",", ":"))
        lead = f"{system.rstrip()}\n\n" if system.strip() else ""
        return f"{lead}{JSON_INSTRUCTION}\n{schema}"


def _check_schema(schema: JsonValue, where: str) -> None:
    """A structural check of the JSON Schema subset prompts use (types, nesting)."""

    def at(key: str) -> str:
        return f"{where}.{key}" if where else key

    if not isinstance(schema, dict):
        raise ValueError(f"{where or 'the schema'} must be a JSON Schema object")
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [] if kinds is None else [kinds]:
        if kind not in _SCHEMA_TYPES:
            raise ValueError(f"{at('type')}: unknown type {kind!r}")
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise ValueError(f"{at('properties')} must be an object")
        for key, sub in properties.items():
            _check_schema(sub, at(f"properties.{key}"))
    required = schema.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise ValueError(f"{at('required')} must list property names")
    items = schema.get("items")
    if items is not None:
        _check_schema(items, at("items"))


class RenderedPrompt(Frozen):
    """What a provider is sent for one call: system text, the user message, and the
    SHA-256 of both (what capture records instead of the text, where it must)."""

    system: str
    user: str
    sha256: str


def render(spec: PromptSpec, variables: Mapping[str, object]) -> RenderedPrompt:
    """Fill ``spec``'s system prompt and template with ``variables``, strictly.

    Raises
    ------
    PromptVariablesError
        A required variable missing, one the prompt does not take, or a value that does
        not fit its variable (type, length, allowed values, range); ``field`` names the
        first (``variables.<name>``), ``details["errors"]`` lists all.
    """
    problems: list[tuple[str, str]] = []
    for name in variables:
        if name not in spec.variables:
            known = ", ".join(sorted(spec.variables))
            problems.append((name, f"not a variable of this prompt (it takes: {known})"))
    values: dict[str, str] = {}
    for name, variable in spec.variables.items():
        if name not in variables:
            if variable.required:
                problems.append((name, "required"))
            else:
                values[name] = Variable.text(variable.default)
            continue
        value = variables[name]
        problem = variable.problem(value)
        if problem is not None:
            problems.append((name, problem))
        else:
            values[name] = Variable.text(value)
    if problems:
        field, reason = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PromptVariablesError(
            f"variables.{field}: {reason}{more}",
            field=f"variables.{field}",
            details={"errors": [{"field": f"variables.{f}", "reason": r} for f, r in problems]},
        )
    system = spec.system_text(_fill(parse_template(spec.system), values))
    user = _fill(parse_template(spec.template), values)
    digest = hashlib.sha256(
        json.dumps({"system": system, "user": user}, sort_keys=True).encode("utf-8")
    ).hexdigest()
    return RenderedPrompt(system=system, user=user, sha256=digest)


def canonical_bytes(spec: PromptSpec) -> bytes:
    """The spec as canonical JSON (sorted keys, compact, UTF-8): what the registry stores
    and hashes, so the same spec always has the same SHA-256.

    Examples
    --------
    A spec without an evaluation set leaves the field out, so specs registered before
    evaluation sets existed keep their digests. The path of an unsealed set is never
    part of it (:class:`EvaluationSpec`).

    >>> canonical_bytes(parse_prompt({
    ...     "name": "p", "description": "d", "owner": "o", "provider": "local",
    ...     "model_id": "m", "template": "{{ x }}", "variables": {"x": {}},
    ...     "parameters": {"max_tokens": 5},
    ... }))[:31]
    b'{"description":"d","guardrail":'
    """
    data = spec.model_dump(mode="json")
    if spec.evaluation is None:
        del data["evaluation"]
    else:
        del data["evaluation"]["set"]
    return json.dumps(
        data,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


def spec_error(error: ValidationError) -> ConfigError:
    """One :class:`ConfigError` naming the first bad field of a prompt spec."""
    return config_error(error, subject="prompt")


def parse_prompt(data: Mapping[str, Any]) -> PromptSpec:
    """Validate a prompt spec mapping.

    Raises
    ------
    ConfigError
        Naming the first bad field (``parameters.max_tokens: ...``); ``details["errors"]``
        lists all of them.
    """
    if not isinstance(data, dict):
        raise ConfigError("prompt: a prompt spec is a mapping of fields", field="prompt")
    try:
        return PromptSpec.model_validate(data)
    except ValidationError as err:
        raise spec_error(err) from None


def load_prompt_file(path: str | Path) -> PromptSpec:
    """Read and validate a prompt spec from a YAML or JSON file.

    A relative ``evaluation.set`` is read relative to the spec's own directory.

    Raises
    ------
    ConfigError
        Unreadable file, bad syntax, or a field that fails validation.
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"prompt: {path.name} is not .yaml, .yml or .json", field="prompt")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt: file not found: {path}", field="prompt") from None
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"prompt: could not read {path}", field="prompt") from None
    data: Any
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"prompt: invalid JSON at line {err.lineno}, column {err.colno}", field="prompt"
            ) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            line = f" at line {err.problem_mark.line + 1}" if err.problem_mark else ""
            raise ConfigError(f"prompt: invalid YAML{line}", field="prompt") from None
        except yaml.YAMLError:
            raise ConfigError("prompt: invalid YAML", field="prompt") from None
    spec = parse_prompt(data)
    evaluation = spec.evaluation
    if evaluation is not None and evaluation.set is not None:
        located = path.parent / evaluation.set
        spec = spec.model_copy(
            update={"evaluation": evaluation.model_copy(update={"set": str(located)})}
        )
    return spec
