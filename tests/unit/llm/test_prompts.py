"""Prompt specs and their strict templates: bad specs name the field, rendering never
substitutes an empty string, and a variable's value is never read as a template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.errors import ConfigError, PromptVariablesError
from flywheel.llm.prompts import (
    JSON_INSTRUCTION,
    canonical_bytes,
    load_prompt_file,
    parse_prompt,
    parse_template,
    render,
)
from tests.factories import prompt_data, prompt_spec

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "prompts").glob("*.yaml"))


def _field(overrides: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_prompt(prompt_data(**overrides))
    return str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"name": "Ticket Summary"}, "name: invalid model name"),
        ({"provider": "openai"}, "provider:"),
        ({"parameters": {"max_tokens": 0}}, "parameters.max_tokens:"),
        ({"parameters": {"temperature": 0.2}}, "parameters.max_tokens: Field required"),
        ({"parameters": {"max_tokens": 5, "temperature": 1.5}}, "parameters.temperature:"),
        ({"parameters": {"max_tokens": 5, "stop_sequences": ["a"] * 5}}, "stop_sequences"),
        ({"template": "Hi {{ who }}"}, "template: {{ who }} is not a declared variable"),
        ({"template": "{{ customer | upper }} {{ ticket }}"}, "template: '{{' at line 1"),
        ({"template": "{{ ticket }}"}, "variables.customer: neither the template nor the"),
        ({"variables": {"customer": {}, "ticket": {}, "bad-name": {}}}, "variables.bad-name"),
        (
            {"variables": {"customer": {"type": "integer", "enum": ["a"]}, "ticket": {}}},
            "variables.customer.enum:",
        ),
        (
            {"variables": {"customer": {"required": False}, "ticket": {}}},
            "variables.customer.default: an optional variable renders its default",
        ),
        (
            {"variables": {"customer": {"default": "x"}, "ticket": {}}},
            "variables.customer.default: a required variable has no default",
        ),
        ({"output_schema": {"type": "objekt"}}, "output_schema: type: unknown type 'objekt'"),
        ({"structured_output": True}, "structured_output: needs an output_schema"),
        (
            {"provider": "openai_compatible", "guardrail": {"id": "abc", "version": "1"}},
            "guardrail: guardrails are Amazon Bedrock's",
        ),
        ({"guardrail": {"id": "abc", "version": "v1"}}, "guardrail.version:"),
        ({"owner": ""}, "owner:"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(overrides: dict[str, object], named: str) -> None:
    assert named in _field(overrides)


def test_rendering_fills_every_placeholder_and_defaults() -> None:
    spec = prompt_spec(
        template="{{ customer }} ({{ tier }}, {{ seats }} seats, vip={{ vip }}): {{ ticket }}",
        variables={
            "customer": {},
            "ticket": {},
            "tier": {"enum": ["free", "pro"], "required": False, "default": "free"},
            "seats": {"type": "integer", "minimum": 1},
            "vip": {"type": "boolean"},
        },
    )

    rendered = render(spec, {"customer": "ACME", "ticket": "down", "seats": 3, "vip": True})

    assert rendered.user == "ACME (free, 3 seats, vip=true): down"
    assert rendered.system == "You are brief."
    assert len(rendered.sha256) == 64


@pytest.mark.parametrize(
    ("variables", "field", "reason"),
    [
        ({"ticket": "t"}, "variables.customer", "required"),
        ({"customer": "c", "ticket": "t", "tone": "x"}, "variables.tone", "not a variable"),
        ({"customer": "c" * 51, "ticket": "t"}, "variables.customer", "longer than 50"),
        ({"customer": 7, "ticket": "t"}, "variables.customer", "must be a string"),
        ({"customer": None, "ticket": "t"}, "variables.customer", "must be a string"),
        ({"customer": "a\x00b", "ticket": "t"}, "variables.customer", "NUL"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(
    variables: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(PromptVariablesError) as caught:
        render(prompt_spec(), variables)

    assert caught.value.field == field
    assert reason in str(caught.value)
    assert caught.value.code == "invalid_variables"


def test_every_problem_is_listed_not_only_the_first() -> None:
    with pytest.raises(PromptVariablesError) as caught:
        render(prompt_spec(), {"extra": 1})

    fields = sorted(e["field"] for e in caught.value.details["errors"])
    assert fields == ["variables.customer", "variables.extra", "variables.ticket"]
    assert "(and 2 more)" in str(caught.value)


def test_numbers_booleans_and_enums_are_checked() -> None:
    spec = prompt_spec(
        template="{{ n }} {{ x }} {{ b }} {{ e }}",
        variables={
            "n": {"type": "integer", "minimum": 1, "maximum": 5},
            "x": {"type": "number"},
            "b": {"type": "boolean"},
            "e": {"enum": ["a", "b"]},
        },
    )
    good = {"n": 2, "x": 0.5, "b": False, "e": "a"}
    assert render(spec, good).user == "2 0.5 false a"
    for name, value, reason in [
        ("n", 6, "at most 5"),
        ("n", 2.5, "must be an integer"),
        ("n", True, "must be an integer"),
        ("x", float("nan"), "finite"),
        ("x", "1", "must be a number"),
        ("b", 1, "true or false"),
        ("e", "c", "one of a, b"),
    ]:
        with pytest.raises(PromptVariablesError, match=reason) as caught:
            render(spec, {**good, name: value})
        assert caught.value.field == f"variables.{name}"


@settings(max_examples=200, deadline=None)
@given(customer=st.text(max_size=50), ticket=st.text(max_size=300))
def test_values_are_inserted_as_they_are_and_never_rendered_again(
    customer: str, ticket: str
) -> None:
    spec = prompt_spec()
    if "\x00" in customer + ticket:
        with pytest.raises(PromptVariablesError):
            render(spec, {"customer": customer, "ticket": ticket})
        return

    rendered = render(spec, {"customer": customer, "ticket": ticket})

    # Even a value holding "{{ ticket }}" stays literal text.
    assert rendered.user == f"Customer {customer} wrote:\n\n{ticket}"


@settings(max_examples=100, deadline=None)
@given(extra=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True))
def test_any_unknown_variable_is_named(extra: str) -> None:
    if extra in ("customer", "ticket"):
        return
    with pytest.raises(PromptVariablesError) as caught:
        render(prompt_spec(), {"customer": "c", "ticket": "t", extra: "x"})
    assert f"variables.{extra}" in [e["field"] for e in caught.value.details["errors"]]


def test_a_literal_double_brace_that_opens_no_placeholder_is_an_error_with_its_place() -> None:
    with pytest.raises(ValueError, match="line 2, column 5"):
        parse_template("ok\nsee {{not valid}}")
    # Closing braces alone are text (JSON examples end with them).
    assert parse_template('{"a": {"b": 1}}') == ('{"a": {"b": 1}}',)


def test_the_output_schema_is_appended_to_the_system_prompt_and_never_rendered() -> None:
    schema = {"type": "object", "description": "{{ not a placeholder", "required": ["s"]}
    spec = prompt_spec(output_schema=schema)

    rendered = render(spec, {"customer": "c", "ticket": "t"})

    head, tail = rendered.system.split(JSON_INSTRUCTION)
    assert head == "You are brief.\n\n"
    assert json.loads(tail) == schema


def test_the_same_spec_always_has_the_same_bytes() -> None:
    a = prompt_spec()
    b = parse_prompt(dict(reversed(list(prompt_data().items()))))

    assert canonical_bytes(a) == canonical_bytes(b)
    assert parse_prompt(json.loads(canonical_bytes(a))) == a


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_example_prompts_are_valid(path: Path) -> None:
    from flywheel.llm.evaluation_sets import seal_evaluation

    spec = load_prompt_file(path)
    assert spec.name == path.name.split(".")[0]  # <name>.v<N>.yaml, <name>.<variant>.yaml
    # The evaluation set a version names fits it (every line renders)
    sealed, stored = seal_evaluation(spec)
    assert (stored is None) == (spec.evaluation is None)
    assert sealed.evaluation is None or sealed.evaluation.items == 8


def test_a_bad_file_is_one_error_naming_the_problem(tmp_path: Path) -> None:
    broken = tmp_path / "p.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_prompt_file(broken)
    with pytest.raises(ConfigError, match="file not found"):
        load_prompt_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"not \.yaml"):
        load_prompt_file(tmp_path / "p.txt")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a prompt spec is a mapping"):
        load_prompt_file(listed)
