"""records_to_matrix: request rows become the model's matrix, or a precise error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.errors import InvalidInputError
from flywheel.registry.models import FeatureSpec, InputSchema
from flywheel.serving import records_to_matrix

SCHEMA = InputSchema(
    features=(
        FeatureSpec(name="age", dtype="int"),
        FeatureSpec(name="income", dtype="float"),
        FeatureSpec(name="is_member", dtype="bool"),
        FeatureSpec(name="score", dtype="float", nullable=True),
    ),
    tensor_dtype="float64",
)
ROW = {"age": 42, "income": 51000.5, "is_member": True, "score": 0.25}


def refused(records, schema=SCHEMA) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        records_to_matrix(records, schema)
    return caught.value


def test_columns_follow_the_schema_not_the_record_order():
    shuffled = {"score": 0.25, "is_member": True, "income": 51000.5, "age": 42}
    matrix = records_to_matrix([shuffled, ROW], SCHEMA)

    assert matrix.shape == (2, 4)
    assert matrix.dtype == np.float64
    assert matrix[0].tolist() == [42.0, 51000.5, 1.0, 0.25]
    assert matrix[1].tolist() == matrix[0].tolist()


def test_the_schema_tensor_dtype_is_used():
    schema = SCHEMA.model_copy(update={"tensor_dtype": "float32"})
    assert records_to_matrix([ROW], schema).dtype == np.float32


def test_null_is_nan_for_a_nullable_feature():
    matrix = records_to_matrix([{**ROW, "score": None}], SCHEMA)
    assert math.isnan(matrix[0, 3])


def test_integral_floats_and_numpy_scalars_are_accepted():
    row = {**ROW, "age": 42.0, "income": np.float32(2.5), "is_member": np.bool_(False)}
    assert records_to_matrix([row], SCHEMA)[0].tolist() == [42.0, 2.5, 0.0, 0.25]


def test_a_missing_feature_is_named():
    row = dict(ROW)
    del row["income"]
    error = refused([ROW, row])
    assert error.field == "income"
    assert error.details == {"row": 1}
    assert str(error) == "record 1: feature 'income' is missing"


def test_an_unknown_field_is_named():
    error = refused([{**ROW, "incmoe": 1.0}])
    assert error.field == "incmoe"
    assert "unknown field 'incmoe'" in str(error)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("income", "51000", "must be a number, got str"),
        ("income", True, "must be a number, got bool"),
        ("income", [1.0], "must be a number, got list"),
        ("income", None, "must not be null"),
        ("age", 41.5, "must be an integer"),
        ("age", False, "must be a number, got bool"),
        ("is_member", 1, "must be true or false, got int"),
        ("is_member", "yes", "must be true or false, got str"),
        ("income", math.inf, "must be a finite number"),
        ("income", math.nan, "must be a finite number"),
        ("score", math.inf, "must be a finite number"),
        ("income", 10**400, "out of range"),
    ],
)
def test_wrong_values_are_refused_with_field_and_reason(field, value, reason):
    error = refused([ROW, {**ROW, field: value}])
    assert reason in str(error)
    if reason != "out of range":
        assert error.field == field
        assert error.details == {"row": 1}


def test_float32_overflow_is_refused():
    schema = SCHEMA.model_copy(update={"tensor_dtype": "float32"})
    error = refused([{**ROW, "income": 1e300}], schema)
    assert error.field == "income"


@pytest.mark.parametrize("records", [[], {}, "rows", [["not", "a", "mapping"]]])
def test_records_must_be_a_non_empty_list_of_objects(records):
    assert refused(records).field == "records"


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "age": st.integers(-(2**40), 2**40),
                "income": _finite | st.integers(-(10**6), 10**6),
                "is_member": st.booleans(),
                "score": st.none() | _finite,
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_every_valid_row_lands_in_its_cell(records):
    matrix = records_to_matrix(records, SCHEMA)

    assert matrix.shape == (len(records), 4)
    for i, record in enumerate(records):
        for j, name in enumerate(SCHEMA.feature_names):
            value = record[name]
            if value is None:
                assert math.isnan(matrix[i, j])
            else:
                assert matrix[i, j] == float(value)
