"""Reading a prompt's answer as JSON of its output schema: every problem named by where it
is, none quoting the answer."""

from __future__ import annotations

import json

import pytest

from flywheel.llm.output import MAX_PROBLEMS, read_output

TICKET = {
    "type": "object",
    "required": ["summary", "urgency", "tags"],
    "additionalProperties": False,
    "properties": {
        "summary": {"type": "string", "minLength": 3, "maxLength": 20},
        "urgency": {"enum": ["low", "normal", "high"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
        "score": {"type": ["number", "null"], "minimum": 0, "exclusiveMaximum": 1},
        "count": {"type": "integer"},
    },
}


@pytest.mark.parametrize(
    "text",
    [
        '{"summary": "Export fails", "urgency": "high", "tags": ["csv"]}',
        ' \n```json\n{"summary": "abc", "urgency": "low", "tags": ["a", "b"], "score": null}'
        "\n```\n",
        '```\n{"summary": "abc", "urgency": "low", "tags": ["a"], "score": 0.5, "count": 2.0}\n```',
    ],
)
def test_answers_that_match_the_schema_have_no_problems(text: str) -> None:
    value, problems = read_output(text, TICKET)

    assert problems == []
    assert value["urgency"] in {"low", "high"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"summary": 3, "urgency": "low", "tags": ["a"]}, [("output.summary", "must be a string")]),
        ({"summary": "ab", "urgency": "low", "tags": ["a"]},
         [("output.summary", "must hold at least 3 characters")]),
        ({"summary": "abc", "urgency": "urgent", "tags": ["a"]},
         [("output.urgency", 'must be one of "low", "normal", "high"')]),
        ({"summary": "abc", "urgency": "low", "tags": []},
         [("output.tags", "must hold at least 1 items")]),
        ({"summary": "abc", "urgency": "low", "tags": ["a", 2]},
         [("output.tags[1]", "must be a string")]),
        ({"summary": "abc", "urgency": "low", "tags": ["a"], "score": 1},
         [("output.score", "must be below 1")]),
        ({"summary": "abc", "urgency": "low", "tags": ["a"], "count": True},
         [("output.count", "must be an integer")]),
        ({"summary": "abc", "urgency": "low", "tags": ["a"], "mood": "x"},
         [("output.mood", "is not a property of the schema")]),
        ({"urgency": "low"}, [("output.summary", "is required"), ("output.tags", "is required")]),
        (["a list"], [("output", "must be an object")]),
    ],
)  # fmt: skip
def test_each_problem_names_where_it_is(answer: object, expected: list[tuple[str, str]]) -> None:
    _, problems = read_output(json.dumps(answer), TICKET)

    assert problems == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Sure! Here is the summary.", "is not JSON (line 1, column 1)"),
        ('{"summary": "abc",', "is not JSON (line 1, column 19)"),
        ("[" * 100_000 + "]" * 100_000, "is not JSON this gateway can read (too deep or too long)"),
        ("", "is not JSON (line 1, column 1)"),
    ],
)
def test_text_that_is_not_json_is_one_problem_without_the_text(text: str, reason: str) -> None:
    value, problems = read_output(text, TICKET)

    assert (value, problems) == (None, [("output", reason)])


def test_problems_are_capped() -> None:
    schema = {"type": "array", "items": {"type": "string"}}

    _, problems = read_output(json.dumps(list(range(100))), schema)

    assert len(problems) == MAX_PROBLEMS
    assert problems[0] == ("output[0]", "must be a string")


def test_problems_never_quote_the_answer() -> None:
    secret = "card 4111 1111 1111 1111"
    _, problems = read_output(json.dumps({"summary": secret * 3, "urgency": secret}), TICKET)

    assert problems
    assert all("4111" not in reason for _, reason in problems)
