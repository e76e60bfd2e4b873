"""RecordValidator: every bad field named with a reason; the fast path agrees with the slow one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.errors import InvalidRecordsError, PayloadTooLargeError
from flywheel.registry.models import FeatureSpec, InputSchema
from flywheel.serving.validation import MAX_LISTED_PROBLEMS, RecordValidator

SCHEMA = InputSchema(
    features=(
        FeatureSpec(name="age", dtype="int", minimum=0, maximum=130),
        FeatureSpec(name="income", dtype="float", minimum=0),
        FeatureSpec(name="member", dtype="bool"),
        FeatureSpec(name="score", dtype="float", nullable=True, minimum=-1, maximum=1),
    )
)
ROW = {"age": 42, "income": 51000.5, "member": True, "score": 0.25}
VALIDATOR = RecordValidator(SCHEMA, max_records=5)


def refused(records, validator=VALIDATOR) -> list[dict]:
    with pytest.raises(InvalidRecordsError) as caught:
        validator.matrix(records)
    assert caught.value.code == "invalid_records"
    return caught.value.details["errors"]


def test_a_valid_batch_becomes_the_matrix_in_schema_order():
    matrix = VALIDATOR.matrix([ROW, {**ROW, "score": None}])
    assert matrix[0].tolist() == [42.0, 51000.5, 1.0, 0.25]
    assert math.isnan(matrix[1, 3])


def test_every_bad_field_of_every_record_is_listed_with_its_reason():
    bad = {"age": 200, "income": "lots", "member": 1, "score": math.inf, "colour": "red"}
    problems = refused([ROW, bad, {"age": 3}])
    assert problems == [
        {"row": 1, "field": "age", "reason": "must be <= 130"},
        {"row": 1, "field": "income", "reason": "must be a number, got string"},
        {"row": 1, "field": "member", "reason": "must be true or false, got int"},
        {"row": 1, "field": "score", "reason": "must be a finite number"},
        {"row": 1, "field": "colour", "reason": "is not a feature of this model"},
        {"row": 2, "field": "income", "reason": "is missing"},
        {"row": 2, "field": "member", "reason": "is missing"},
        {"row": 2, "field": "score", "reason": "is missing"},
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("age", -1, "must be >= 0"),
        ("age", 41.5, "must be an integer, got 41.5"),
        ("age", None, "must not be null"),
        ("income", math.nan, "must be a finite number"),
        ("income", -math.inf, "must be a finite number"),
        ("income", 10**400, "is out of range"),
        ("income", [1.0], "must be a number, got array"),
        ("income", {"v": 1}, "must be a number, got object"),
        ("income", False, "must be a number, got bool"),
        ("score", 1.5, "must be <= 1"),
    ],
)
def test_type_range_and_non_finite_policy(field, value, reason):
    assert refused([{**ROW, field: value}]) == [{"row": 0, "field": field, "reason": reason}]


def test_null_and_nan_mean_missing_only_for_nullable_features():
    matrix = VALIDATOR.matrix([{**ROW, "score": math.nan}, {**ROW, "score": None}])
    assert np.isnan(matrix[:, 3]).all()


def test_values_too_large_for_a_float32_model_are_refused_by_name():
    schema = SCHEMA.model_copy(update={"tensor_dtype": "float32"})
    problems = refused([{**ROW, "income": 1e39}], RecordValidator(schema))
    assert problems == [{"row": 0, "field": "income", "reason": "must be a finite number"}]


def test_a_batch_over_the_cap_is_payload_too_large():
    with pytest.raises(PayloadTooLargeError) as caught:
        VALIDATOR.matrix([ROW] * 6)
    assert caught.value.details == {"max_records": 5, "records": 6}


def test_the_list_is_capped_and_says_so():
    validator = RecordValidator(SCHEMA, max_records=100)
    with pytest.raises(InvalidRecordsError) as caught:
        validator.matrix([{"nope": 1}] * 100)
    assert len(caught.value.details["errors"]) == MAX_LISTED_PROBLEMS
    assert caught.value.details["truncated"] is True


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)
records = st.lists(
    st.dictionaries(
        st.sampled_from(["age", "income", "member", "score", "extra"]), json_values, max_size=5
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_the_fast_path_accepts_exactly_what_the_full_check_finds_no_problem_with(batch):
    problems = VALIDATOR.problems(batch)
    if problems:
        with pytest.raises(InvalidRecordsError) as caught:
            VALIDATOR.matrix(batch)
        assert caught.value.details["errors"] == problems[:MAX_LISTED_PROBLEMS]
    else:
        assert VALIDATOR.matrix(batch).shape == (len(batch), 4)
