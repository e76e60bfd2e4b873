"""Evaluation sets: parsed and checked against the prompt, sealed into its digest, stored
next to the spec and read back verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from flywheel.composition import InMemoryPlatform
from flywheel.errors import ArtifactIntegrityError, ConfigError
from flywheel.llm.evaluation_sets import MAX_ITEMS, parse_evaluation_set
from flywheel.llm.prompts import EvaluationSpec, canonical_bytes, load_prompt_file, parse_prompt
from flywheel.sdk import Flywheel
from tests.factories import prompt_data

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"


def rag_spec(**evaluation: Any) -> Any:
    return parse_prompt(
        prompt_data(
            "faq",
            template="Question: {{ question }}\n\n{{ passages }}",
            variables={
                "question": {"max_length": 200},
                "passages": {"required": False, "default": ""},
            },
            evaluation={"set": "faq.jsonl", "context_variable": "passages", **evaluation},
        )
    )


def lines(*items: dict[str, Any] | str) -> bytes:
    return "\n".join(i if isinstance(i, str) else json.dumps(i) for i in items).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lines({"variables": {"question": "q"}}, "{not json"),
         "evaluation.set line 2: (line): not JSON (Expecting property name enclosed in double "
         "quotes, column 2)"),
        (lines('["a list"]'), "evaluation.set line 1: (line): an item is a JSON object"),
        (lines({"context": ["p"]}), "evaluation.set line 1: variables: Field required"),
        (lines({"variables": {"question": "q"}}, {"variables": {}}),
         "evaluation.set line 2: variables.question: required"),
        (lines({"variables": {"question": "q"}, "must_includ": ["x"]}),
         "evaluation.set line 1: must_includ: Extra inputs are not permitted"),
        (lines({"variables": {"question": "q" * 201}}),
         "evaluation.set line 1: variables.question: longer than 200 characters (201)"),
        (lines({"variables": {"question": "q", "tone": "warm"}}),
         "evaluation.set line 1: variables.tone: not a variable of this prompt (it takes: "
         "passages, question)"),
        (lines({"variables": {"question": "q"}, "context": ["ok", "  "]}),
         "evaluation.set line 1: context: Value error, entry 1 is blank"),
        (b"\n\n", "evaluation.set: the set holds no items"),
        (b"\xff\xfe", "evaluation.set: not UTF-8 text"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_refused_naming_the_line_and_the_field(
    content: bytes, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_evaluation_set(content, rag_spec())

    assert caught.value.message == message.replace("Value error, ", "")
    assert caught.value.field == "evaluation.set"


def test_an_item_gets_its_passages_in_the_context_variable() -> None:
    spec = rag_spec()
    found = parse_evaluation_set(
        lines(
            {"id": "a", "variables": {"question": "When?"}, "context": ["One.", "Two."]},
            "",
            {"variables": {"question": "Who?"}, "context": "Just one."},
            {"variables": {"question": "Own?", "passages": "First.\n\n  Second.  "}},
        ),
        spec,
    )

    first, second, third = found.items
    assert first.variables_for(spec)["passages"] == "One.\n\nTwo."
    assert (first.label(0), second.label(1)) == ("a", "line 2")
    assert second.passages(spec) == ("Just one.",)
    # Without a context, the variable's value is the context, paragraph by paragraph
    assert third.passages(spec) == ("First.", "Second.")


def test_a_set_larger_than_the_limit_is_refused() -> None:
    content = lines(*[{"variables": {"question": "q"}}] * (MAX_ITEMS + 1))

    with pytest.raises(ConfigError, match=f"line {MAX_ITEMS + 1}: .*at most {MAX_ITEMS} items"):
        parse_evaluation_set(content, rag_spec())


def test_the_context_variable_must_be_a_declared_string_variable() -> None:
    with pytest.raises(ConfigError, match=r"^evaluation.context_variable: docs is not a declared"):
        rag_spec(context_variable="docs")
    with pytest.raises(ConfigError, match=r"^evaluation.set: name the evaluation set's file"):
        parse_prompt(prompt_data(evaluation={"context_variable": "ticket"}))


def test_a_spec_without_a_set_keeps_the_digest_it_always_had() -> None:
    spec = load_prompt_file(EXAMPLES / "ticket-summary.v1.yaml")

    assert b"evaluation" not in canonical_bytes(spec)


def test_registering_seals_the_set_into_the_versions_digest(tmp_path: Path) -> None:
    (tmp_path / "faq.jsonl").write_text(
        json.dumps({"variables": {"question": "How long?"}, "context": ["Five days."]}) + "\n"
    )
    spec_file = tmp_path / "faq.yaml"
    spec_file.write_text(json.dumps(prompt_data(
        "faq", template="Question: {{ question }}\n\n{{ passages }}",
        variables={"question": {}, "passages": {}},
        evaluation={"set": "faq.jsonl", "context_variable": "passages"},
    )))  # fmt: skip
    fw = Flywheel.in_memory(actor="ana")

    first = fw.register_prompt(spec_file)

    evaluation = first.spec.evaluation
    assert evaluation is not None
    assert evaluation.sealed
    assert (evaluation.items, evaluation.set, evaluation.context_variable) == (1, None, "passages")
    stored = fw.prompt("faq", 1)
    assert stored.spec == first.spec
    assert stored.spec.evaluation == evaluation
    found = fw.prompts.evaluation_set(stored)
    assert found is not None
    assert found.sha256 == evaluation.sha256
    assert found.items[0].context == ("Five days.",)
    # The same set written differently is the same set: nothing new is registered
    (tmp_path / "faq.jsonl").write_text(
        '\n{ "context" : ["Five days."], "variables": {"question":"How long?"} }\n\n'
    )
    assert not fw.register_prompt(spec_file).created
    # Another set is another version, with another digest
    (tmp_path / "faq.jsonl").write_text(
        json.dumps({"variables": {"question": "How long?"}, "context": ["Six days."]}) + "\n"
    )
    second = fw.register_prompt(spec_file)
    assert second.created
    assert second.version.version == 2
    assert second.version.artifact.sha256 != first.version.artifact.sha256
    diff = fw.diff_prompts("faq", 1, 2)
    assert [c.field for c in diff.changes] == ["evaluation.sha256", "evaluation.size_bytes"]


def test_a_set_with_a_bad_line_registers_nothing(tmp_path: Path) -> None:
    (tmp_path / "faq.jsonl").write_text('{"variables": {"question": "q"}}\n{"variables": 3}\n')
    spec_file = tmp_path / "faq.yaml"
    spec_file.write_text(json.dumps(prompt_data(
        "faq", template="{{ question }}", variables={"question": {}},
        evaluation={"set": "faq.jsonl"},
    )))  # fmt: skip
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ConfigError, match=r"evaluation\.set line 2: variables: Input should be"):
        fw.register_prompt(spec_file)

    assert fw.list_prompts().items == []


def test_a_missing_set_file_is_named(tmp_path: Path) -> None:
    spec_file = tmp_path / "faq.yaml"
    spec_file.write_text(json.dumps(prompt_data(evaluation={"set": "nowhere.jsonl"})))
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ConfigError, match=r"evaluation.set: file not found: .*nowhere.jsonl"):
        fw.register_prompt(spec_file)


def test_a_sealed_spec_cannot_be_registered_without_its_set() -> None:
    sealed = parse_prompt(
        prompt_data(evaluation={"sha256": "0" * 64, "size_bytes": 10, "items": 1})
    )
    fw = Flywheel.in_memory(actor="ana")

    with pytest.raises(ConfigError, match="the spec holds a sealed set"):
        fw.register_prompt(sealed)
    with pytest.raises(ValidationError, match="names its set's file or its sealed digest, not"):
        EvaluationSpec.model_validate({"set": "a.jsonl", "sha256": "0" * 64})


def test_a_stored_set_that_changed_is_refused_on_reading() -> None:
    platform = InMemoryPlatform()
    fw = Flywheel(platform, actor="ana")
    fw.register_prompt(EXAMPLES / "support-answer.v1.yaml")
    found = fw.prompt("support-answer", 1)
    # Someone overwrites the stored set (a new object version under the same key)
    key = found.version.artifact.uri.removeprefix("memory://").rsplit("/", 1)[0]
    platform.artifacts.put(f"{key}/evaluation.jsonl", b'{"variables": {"question": "x"}}\n')

    with pytest.raises(ArtifactIntegrityError):
        fw.prompts.evaluation_set(found)


#: Text a variable may hold (no NUL characters).
TEXT = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"variables": st.fixed_dictionaries({"question": st.text(TEXT, max_size=50)})},
            optional={
                "context": st.lists(st.text(TEXT, min_size=1).filter(str.strip), min_size=1,
                                    max_size=3),
                "expected": st.text(TEXT, min_size=1, max_size=40),
            },
        ),
        min_size=1,
        max_size=8,
    )
)  # fmt: skip
def test_a_sealed_set_reads_back_as_the_same_items(items: list[dict[str, Any]]) -> None:
    spec = rag_spec()
    found = parse_evaluation_set(lines(*items), spec)

    again = parse_evaluation_set(found.canonical_bytes(), spec)

    assert again == found
    assert len(again.items) == len(items)


def test_line_separators_inside_strings_stay_text() -> None:
    spec = rag_spec()
    found = parse_evaluation_set(
        lines({"variables": {"question": "a\u2028b"}, "context": ["c\x1cd\u0085"]}), spec
    )

    assert parse_evaluation_set(found.canonical_bytes(), spec) == found


# -- a set given, as the registration route receives it (ADR 84) -------------------------------
def test_a_given_set_is_sealed_as_the_file_it_came_from(tmp_path: Path) -> None:
    from flywheel.llm.evaluation_sets import seal_evaluation

    data = lines({"variables": {"question": "When?"}, "context": ["Refunds take 5 days."]})
    (tmp_path / "faq.jsonl").write_bytes(data)
    from_file = rag_spec(set=str(tmp_path / "faq.jsonl"))
    named = rag_spec()  # names the set by its file's name only: never read here

    sealed, stored = seal_evaluation(named, parse_evaluation_set(data, named))

    assert (sealed, stored) == seal_evaluation(from_file)
    assert sealed.evaluation is not None
    assert sealed.evaluation.set is None
    assert canonical_bytes(sealed) == canonical_bytes(seal_evaluation(from_file)[0])


def test_a_given_set_the_spec_does_not_declare_or_seal_is_refused() -> None:
    from flywheel.llm.evaluation_sets import seal_evaluation

    spec = rag_spec()
    found = parse_evaluation_set(lines({"variables": {"question": "When?"}}), spec)
    bare = spec.model_copy(update={"evaluation": None})
    with pytest.raises(ConfigError, match="an evaluation set is given but the spec declares none"):
        seal_evaluation(bare, found)
    other = EvaluationSpec(sha256="0" * 64, size_bytes=10, items=1, context_variable="passages")
    with pytest.raises(ConfigError, match="that is not the set given"):
        seal_evaluation(spec.model_copy(update={"evaluation": other}), found)
    # The same set's seal is accepted again (the digest matches).
    sealed, _ = seal_evaluation(spec, found)
    assert seal_evaluation(sealed, found)[0] == sealed
