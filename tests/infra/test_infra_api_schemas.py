"""API Gateway body models: generated from the handlers' pydantic models, never stricter.

The gateway's draft-4 schema is a cheap first filter; the handler is the authority. The
property these tests hold the conversion to: every body the handler's model accepts,
the gateway's schema accepts too (checked with ``jsonschema``'s draft-4 validator on the
JSON samples in tests/events, hand-picked edge cases and hypothesis-generated bodies).
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pytest
from aws_cdk.assertions import Match
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator, exceptions, validators
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from flywheel.errors import FlywheelError
from flywheel.llm.invocation import InvokeRequest
from flywheel.llm.registration import PromptVersionRequest
from flywheel.monitoring.feedback import FeedbackRequest
from flywheel.serving import http
from flywheel.workflows.approvals import DecisionRequest
from flywheel.workflows.config import ConfigRequest
from flywheel.workflows.promotion_requests import PromotionRequest
from flywheel.workflows.retrain import RetrainRequest
from infra.api_schemas import REQUEST_MODELS, draft4, portable_pattern, request_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tests.infra.synth import Synth

SERVING = "FlywheelServing"
EVENTS = Path(__file__).parents[1] / "events"
PROFILE = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHA = "0123456789abcdef" * 4


# -- what the handlers accept -------------------------------------------------------------------
def _model_accepts(model: type[BaseModel]) -> Callable[[Any], bool]:
    """Powertools validates the parsed body in python mode; either mode counts here."""

    def accepts(body: Any) -> bool:
        for validate in (model.model_validate, lambda b: model.model_validate_json(json.dumps(b))):
            try:
                validate(body)
            except ValidationError:
                continue
            return True
        return False

    return accepts


def _predict_handler_accepts(body: Any) -> bool:
    """The predict handler's own parser (pydantic-core JSON mode, then the envelope)."""
    try:
        http.parse_predict_request(json.dumps(body))
    except FlywheelError:
        return False
    return True


#: API Gateway model name -> (does the handler accept this body?).
HANDLER_ACCEPTS: dict[str, Callable[[Any], bool]] = {
    "PredictRequest": _predict_handler_accepts,
    "ApprovalDecision": _model_accepts(DecisionRequest),
    "Feedback": _model_accepts(FeedbackRequest),
    "RetrainRequest": _model_accepts(RetrainRequest),
    "PromotionRequest": _model_accepts(PromotionRequest),
    "ConfigRequest": _model_accepts(ConfigRequest),
    "InvokePromptRequest": _model_accepts(InvokeRequest),
    "PromptVersionRequest": _model_accepts(PromptVersionRequest),
}
ROUTE_MODELS = {
    "predict": "PredictRequest",
    "{id}": "ApprovalDecision",
    "feedback": "Feedback",
    "retrain": "RetrainRequest",
    "promotions": "PromotionRequest",
    "config": "ConfigRequest",
    "invoke": "InvokePromptRequest",
    "versions": "PromptVersionRequest",
}


def _ascii_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    # A gateway on an ECMA 262 or Java engine reads \d, \w, \s and \b as ASCII; Python's
    # re (jsonschema's default) and pydantic's Rust engine read them as Unicode.
    if validator.is_type(instance, "string") and not re.search(pattern, instance, re.ASCII):
        yield exceptions.ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 4, with patterns read the way the stricter engines read them.
GatewayValidator = validators.extend(Draft4Validator, {"pattern": _ascii_pattern})


def gateway_accepts(name: str, body: Any) -> bool:
    return bool(GatewayValidator(request_schema(REQUEST_MODELS[name])).is_valid(body))


# -- the template -------------------------------------------------------------------------------
def test_every_body_model_in_the_template_is_the_generated_schema(synth: Synth) -> None:
    template = synth.template(SERVING)
    assert set(REQUEST_MODELS) == {
        m["Properties"]["Name"] for m in synth.resources("AWS::ApiGateway::Model", SERVING).values()
    }
    for name, model in REQUEST_MODELS.items():
        template.has_resource_properties(
            "AWS::ApiGateway::Model",
            {
                "Name": name,
                "ContentType": "application/json",
                "Schema": Match.exact(request_schema(model)),
            },
        )


def test_each_route_validates_its_body_with_its_own_handlers_model(synth: Synth) -> None:
    resources = synth.templates[SERVING]["Resources"]
    checked = set()
    for method in synth.resources("AWS::ApiGateway::Method", SERVING).values():
        props = method["Properties"]
        if props["Integration"]["Type"] != "AWS_PROXY":
            continue
        path_part = resources[props["ResourceId"]["Ref"]]["Properties"]["PathPart"]
        names = {
            resources[ref["Ref"]]["Properties"]["Name"] for ref in props["RequestModels"].values()
        }
        assert names == {ROUTE_MODELS[path_part]}, path_part
        checked.add(path_part)
    assert checked == set(ROUTE_MODELS)


def test_generated_schemas_are_draft4_schemas() -> None:
    for model in REQUEST_MODELS.values():
        schema = request_schema(model)
        Draft4Validator.check_schema(schema)
        assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
        assert "$defs" not in json.dumps(schema)
        assert "$ref" not in json.dumps(schema)


# -- never stricter than the handler ------------------------------------------------------------
def _event_bodies() -> list[tuple[str, Any]]:
    samples = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if isinstance(event, dict) and isinstance(event.get("body"), str):
            route = event["resource"].rsplit("/", 1)[-1]
            samples.append((ROUTE_MODELS[route], json.loads(event["body"])))
    return samples


EVENT_BODIES = _event_bodies()


def test_the_event_samples_cover_every_route() -> None:
    assert {name for name, _ in EVENT_BODIES} == set(REQUEST_MODELS)


@pytest.mark.parametrize(("name", "body"), EVENT_BODIES)
def test_the_sample_events_pass_the_gateway_and_the_handler(name: str, body: Any) -> None:
    assert HANDLER_ACCEPTS[name](body)
    assert gateway_accepts(name, body)


#: Bodies the handler accepts that a hand-written or naively converted schema refused.
HANDLER_ACCEPTS_THESE = [
    ("PredictRequest", {"records": [{"x": 1}] * 101}),  # the batch cap is the service's (413)
    ("PredictRequest", {"entity_id": "c" * 256, "assignment_key": "😀" * 256}),
    ("PredictRequest", {"record": {"x": None}, "records": None, "entity_id": None}),
    ("ApprovalDecision", {"decision": "approve", "reason": "  " + "r" * 2000 + "\n"}),  # stripped
    ("ApprovalDecision", {"decision": "reject", "reason": "é" * 2000, "artifact_sha256": SHA}),
    ("ApprovalDecision", {"decision": "approve", "reason": "ok", "artifact_sha256": None}),
    ("Feedback", {"model": "churn", "request_id": "r-1", "row": "3", "label": "yes"}),
    ("Feedback", {"model": "churn", "request_id": "r-1", "row": 3.0, "label": 0}),
    ("Feedback", {"model": "churn", "request_id": "r-1", "row": True, "label": 2.5}),
    ("Feedback", {"model": "churn", "labels": [{"request_id": "r.1:a", "row": " 7 ", "label": 1}]}),
    ("Feedback", {"model": "churn", "labels": []}),  # the service refuses it, with its reason
    ("RetrainRequest", {"reason": "  " + "r" * 2000 + "\t"}),  # stripped before measuring
    ("PromotionRequest", {"version": "4", "reason": " won "}),
    ("PromotionRequest", {"version": 4.0, "reason": "r" * 2000}),
    ("InvokePromptRequest", {"variables": {}}),  # a prompt whose variables all have defaults
    ("InvokePromptRequest", {"variables": {"ticket": "t" * 9000}, "assignment_key": "😀" * 256}),
    ("InvokePromptRequest", {"variables": {"n": [1]}, "assignment_key": None, "request_id": None}),
    # The spec is the handler's to check (400 naming spec.<field>), any object passes here.
    ("PromptVersionRequest", {"spec": {}, "reason": "  " + "r" * 2000 + "\n"}),
    (
        "PromptVersionRequest",
        {"spec": {"name": "x", "parameters": {"max_tokens": "3"}}, "reason": "é"},
    ),
    # An evaluation set's lines are the handler's to check (422 naming the line), blank too.
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": ["{", "", "😀"]}),
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": None}),
]
#: Bodies both refuse: the gateway filter is not vacuous.
BOTH_REFUSE = [
    ("PredictRequest", []),
    ("PredictRequest", "record"),
    ("PredictRequest", {"records": []}),
    ("PredictRequest", {"records": [1, 2]}),
    ("PredictRequest", {"record": {"x": 1}, "model": "churn"}),
    ("PredictRequest", {"entity_id": ""}),
    ("PredictRequest", {"entity_id": 42}),
    ("ApprovalDecision", {"decision": "approve"}),
    ("ApprovalDecision", {"decision": "APPROVE", "reason": "ok"}),
    ("ApprovalDecision", {"decision": "approve", "reason": ""}),
    ("ApprovalDecision", {"decision": "approve", "reason": "ok", "approver": "me"}),
    ("ApprovalDecision", {"decision": "approve", "reason": "ok", "artifact_sha256": "abc"}),
    ("Feedback", {"request_id": "r-1", "label": "yes"}),
    ("Feedback", {"model": "churn", "labels": [{"request_id": "-bad", "label": "yes"}]}),
    ("Feedback", {"model": "churn", "labels": [{"request_id": "r-1", "row": -1, "label": 1}]}),
    ("Feedback", {"model": "churn", "request_id": "r-1", "label": [1]}),
    ("RetrainRequest", {}),
    ("RetrainRequest", {"reason": ""}),
    ("RetrainRequest", {"reason": 7}),
    ("RetrainRequest", {"reason": "drift", "requested_by": "someone-else"}),
    ("PromotionRequest", {"version": 4}),
    ("PromotionRequest", {"version": 0, "reason": "won"}),
    ("InvokePromptRequest", {}),
    ("InvokePromptRequest", {"variables": ["ticket"]}),
    ("InvokePromptRequest", {"variables": "ticket=x"}),
    ("InvokePromptRequest", {"variables": {}, "version": 2}),
    ("InvokePromptRequest", {"variables": {}, "assignment_key": 42}),
    ("PromotionRequest", {"reason": "won"}),
    ("PromotionRequest", {"version": 4, "reason": "won", "requested_by": "someone-else"}),
    ("PromptVersionRequest", {"spec": {"name": "x"}}),
    ("PromptVersionRequest", {"spec": "name: x", "reason": "yaml"}),
    ("PromptVersionRequest", {"spec": {}, "reason": ""}),
    ("PromptVersionRequest", {"spec": {}, "reason": "mine", "requested_by": "someone-else"}),
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": []}),
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": "{}\n{}"}),
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": [{"variables": {}}]}),
    ("PromptVersionRequest", {"spec": {}, "reason": "r", "evaluation_set": ["{}"] * 1001}),
]


@pytest.mark.parametrize(("name", "body"), HANDLER_ACCEPTS_THESE)
def test_the_gateway_never_refuses_what_the_handler_accepts(name: str, body: Any) -> None:
    assert HANDLER_ACCEPTS[name](body)
    assert gateway_accepts(name, body)


@pytest.mark.parametrize(("name", "body"), BOTH_REFUSE)
def test_the_gateway_refuses_bodies_the_handler_would_refuse(name: str, body: Any) -> None:
    assert not HANDLER_ACCEPTS[name](body)
    assert not gateway_accepts(name, body)


# Bodies guided by the pydantic schema, then bent: coercible representations of numbers
# and booleans, whitespace-padded and multi-byte strings around the length bounds,
# missing and unknown keys, and any JSON value anywhere.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
WORDS = st.sampled_from(
    ["churn", "breast-cancer", "r-1", "8d2f6a4e-1c3b-4e5f-9a7d-2b4c6e8f0a1c", "yes", "approve",
     "reject", "Approve", "holdout metrics reviewed", SHA, SHA.upper(), "2024-01-01T00:00:00Z",
     "P1D", "12:30:00", "true", "off", "1", "0", "3.0", " 4 "]
)  # fmt: skip


def _mostly(valid: st.SearchStrategy[Any], bent: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid-looking values most of the time, bent ones often, now and then any scalar.

    (Weighted by a drawn number: ``one_of`` would not weigh a strategy listed twice.)
    """
    return st.integers(0, 9).flatmap(
        lambda n: valid if n < 7 else (bent if n < 9 else JSON_SCALARS)
    )


def _numbers(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    low = int(schema.get("minimum", schema.get("exclusiveMinimum", -100)))
    high = int(schema.get("maximum", schema.get("exclusiveMaximum", 100)))
    inside = st.one_of(st.integers(low, high), st.sampled_from([low, high]))
    near = st.integers(low - 2, high + 2)
    # Every JSON spelling pydantic's lax mode reads as a number in range counts as valid.
    spelled = [str, float, lambda n: f" {n} ", lambda n: f"{n}.0"]
    return _mostly(
        st.one_of(inside, *(inside.map(spell) for spell in spelled), st.booleans()),
        st.one_of(
            *(near.map(spell) for spell in spelled),
            st.floats(low - 1, high + 1),
            st.sampled_from(["true", "off", "yes", "1e3"]),
        ),
    )


def _strings(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", low + 8)
    # Around both length bounds, in 1-, 2- and 4-byte characters, maybe padded with
    # whitespace (which pydantic may strip before it measures).
    lengths = st.one_of(st.integers(max(low - 1, 0), low + 2), st.integers(high - 2, high + 1))
    bounded = st.tuples(lengths, st.sampled_from(["a", "é", "😀"]), st.integers(0, 3)).map(
        lambda t: " " * t[2] + t[1] * t[0] + "\n" * t[2]
    )
    if "enum" in schema or "const" in schema:
        valid: st.SearchStrategy[Any] = st.sampled_from(schema.get("enum", [schema.get("const")]))
    elif "pattern" in schema:
        valid = st.from_regex(schema["pattern"], fullmatch=True)
    else:
        valid = st.one_of(WORDS, st.text(min_size=max(low, 1), max_size=min(high, 12)), bounded)
    bent = st.one_of(WORDS, st.text(max_size=12), bounded, st.integers(0, 2 * 10**9))
    return _mostly(valid, bent)


def _objects(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    fields = {key: bodies(sub, defs) for key, sub in schema["properties"].items()}
    required = [key for key in schema.get("required", []) if key in fields]
    shaped = st.fixed_dictionaries(
        {key: fields[key] for key in required},
        optional={key: f for key, f in fields.items() if key not in required},
    )
    return _mostly(
        shaped,
        st.one_of(
            st.tuples(shaped, st.text(max_size=5), JSON_SCALARS).map(
                lambda t: {**t[0], t[1]: t[2]}
            ),
            st.tuples(shaped, st.sampled_from(required or [""])).map(
                lambda t: {k: v for k, v in t[0].items() if k != t[1]}
            ),
            st.lists(shaped, min_size=1, max_size=2),
        ),
    )


def bodies(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """JSON values near what ``schema`` (pydantic's own) describes, and some far from it."""
    if "$ref" in schema:
        return bodies(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    branches = schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", [])
    if branches:
        return st.one_of([bodies(branch, defs) for branch in branches])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([bodies({**schema, "type": k}, defs) for k in kind])
    if kind == "object" and schema.get("properties"):
        return _objects(schema, defs)
    if kind == "object":
        return _mostly(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3), JSON_VALUES)
    if kind == "array":
        if "prefixItems" in schema:
            items = st.tuples(*(bodies(s, defs) for s in schema["prefixItems"])).map(list)
            return _mostly(items, st.lists(JSON_SCALARS, max_size=3))
        inner = bodies(schema["items"], defs) if "items" in schema else JSON_VALUES
        low = schema.get("minItems", 0)
        return _mostly(
            st.lists(inner, min_size=low, max_size=low + 3),
            st.lists(inner, max_size=max(low - 1, 0)),
        )
    if kind in ("integer", "number", "boolean"):
        return _numbers(schema)
    if kind == "string":
        return _strings(schema)
    if "enum" in schema or "const" in schema:
        return _mostly(st.sampled_from(schema.get("enum", [schema.get("const")])), JSON_SCALARS)
    return JSON_VALUES


def _model_bodies(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    schema = model.model_json_schema(mode="validation")
    return bodies(schema, schema.get("$defs", {}))


@pytest.mark.parametrize("name", list(REQUEST_MODELS))
def test_generated_bodies_the_handler_accepts_pass_the_gateway(name: str) -> None:
    validator = GatewayValidator(request_schema(REQUEST_MODELS[name]))
    accepted: list[Any] = []

    @PROFILE
    @given(body=_model_bodies(REQUEST_MODELS[name]))
    def check(body: Any) -> None:
        if HANDLER_ACCEPTS[name](body):
            accepted.append(body)
            assert validator.is_valid(body), body

    check()
    assert len(accepted) >= 10, "the generator hardly ever produced a valid body"


# -- the conversion, on kinds of fields the request models do not use (yet) ---------------------
class Colour(enum.IntEnum):
    RED = 1
    BLUE = 2


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: Annotated[int, Field(gt=0, le=9)]


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool = True


class Everything(BaseModel):
    """Field kinds a future request model might use, each with its own lax rules."""

    model_config = ConfigDict(extra="forbid")

    when: datetime.datetime | None = None
    day: datetime.date | None = None
    at: datetime.time | None = None
    wait: datetime.timedelta | None = None
    amount: decimal.Decimal | None = None
    ratio: Annotated[float, Field(gt=0, lt=1, multiple_of=0.05)] | None = None
    ident: uuid.UUID | None = None
    colour: Colour | None = None
    flag: Literal[True] | None = None
    pair: tuple[int, str] | None = None
    tags: set[int] | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=3)] | None = None
    code: Annotated[str, Field(pattern=r"^\d{2}$")] | None = None
    pet: Annotated[Cat | Dog, Field(discriminator="kind")] | None = None
    counts: dict[str, int] | None = None


def test_conversion_of_other_field_kinds_is_never_stricter_than_pydantic() -> None:
    accepts = _model_accepts(Everything)
    validator = GatewayValidator(request_schema(Everything))
    Draft4Validator.check_schema(request_schema(Everything))
    accepted: list[Any] = []

    @PROFILE
    @given(body=_model_bodies(Everything))
    def check(body: Any) -> None:
        if accepts(body):
            accepted.append(body)
            assert validator.is_valid(body), body

    check()
    assert len(accepted) >= 10
    for body in (
        {"when": 1_700_000_000, "day": 0, "at": 5, "wait": True, "amount": "1.5"},
        {"ratio": 0.15, "colour": "2", "flag": 1, "pair": ["3", "x"], "tags": [1, 1]},
        {"name": "  abc  ", "code": "٣٤", "pet": {"kind": "cat", "lives": "9"}},
    ):
        assert accepts(body), body
        assert validator.is_valid(body), body
    assert not validator.is_valid({"pet": {"kind": "cow"}})
    assert not validator.is_valid({"pair": [1]})


def test_exclusive_bounds_become_draft4_booleans() -> None:
    schema = draft4({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1})
    assert (schema["minimum"], schema["exclusiveMinimum"]) == (0, True)
    assert (schema["maximum"], schema["exclusiveMaximum"]) == (1, True)
    stricter_inclusive = draft4({"type": "number", "minimum": 5, "exclusiveMinimum": 0})
    assert stricter_inclusive["minimum"] == 5
    assert "exclusiveMinimum" not in stricter_inclusive


def test_recursive_models_are_refused_rather_than_cut() -> None:
    class Node(BaseModel):
        children: list[Node] = []

    with pytest.raises(ValueError, match="recursive"):
        request_schema(Node)


@pytest.mark.parametrize(
    ("pattern", "portable"),
    [
        (r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", True),
        (r"^[0-9a-fA-F]{64}$", True),
        (r"^(ab|cd)+\.x$", True),
        (r"^\d+$", False),  # Unicode digits in Rust, ASCII in ECMA
        (r"^a.b$", False),  # "." and line terminators differ
        (r"(?i)abc", False),
        (r"^[[:alpha:]]$", False),
        (r"^é$", False),
        ("[abc", False),
    ],
)
def test_patterns_are_kept_only_when_every_engine_reads_them_alike(
    pattern: str, portable: bool
) -> None:
    assert portable_pattern(pattern) is portable
    kept = draft4({"type": "string", "pattern": pattern})
    assert ("pattern" in kept) is portable
