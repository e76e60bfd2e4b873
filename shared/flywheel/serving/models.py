"""The inference API's request and response bodies, and the variants that serve them.

These models are the HTTP contract of ``POST /v1/models/{name}/predict``: the
Lambda resolver validates bodies with them and generates the OpenAPI document
from them.  They check the *envelope* only (one record or a list of records,
optional keys); the records themselves are checked against the version's
registered input schema by :class:`~flywheel.serving.validation.RecordValidator`,
which names every bad field.

Examples
--------
>>> PredictRequest.model_validate({"record": {"age": 42}}).rows()
[{'age': 42}]
>>> Variant.CANARY.value
'canary'
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    Field,
    StrictBool,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from flywheel.models import Frozen

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "ExplanationBody",
    "FieldProblem",
    "PredictRequest",
    "PredictResponse",
    "Variant",
]

#: Caller keys (A/B assignment, entity ids) are opaque strings of bounded length.
MAX_KEY_LENGTH = 256


class Variant(StrEnum):
    """Which deployment answered a request; reported in every response and metric.

    ``champion`` serves production; ``canary`` is the challenger receiving a share
    of traffic through the Lambda alias weights; ``shadow`` scores copies of
    requests in the background (it never answers a caller, it only appears in
    captured data); ``a``/``b`` are the arms of a sticky A/B test.
    """

    CHAMPION = "champion"
    CANARY = "canary"
    SHADOW = "shadow"
    A = "a"
    B = "b"


class _Body(Frozen):
    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The OpenAPI document gets the docstring's first paragraph, not its examples.
        schema = handler.resolve_ref_schema(handler(core_schema))
        if "description" in schema:
            schema["description"] = schema["description"].split("\n\n")[0].replace("\n", " ")
        return schema


class PredictRequest(_Body):
    """One record (``record``) or a batch (``records``) of feature values, or an entity.

    Give exactly one of ``record`` and ``records``, or only ``entity_id`` when the
    deployment looks features up in the online feature store.  Values are JSON
    numbers, booleans, strings (categorical and text features) or ``null``, keyed by
    feature name; the version's input schema decides which are valid.

    Examples
    --------
    >>> body = PredictRequest(records=[{"x": 1.0}, {"x": 2.0}], assignment_key="user-7")
    >>> len(body.rows()), body.assignment_key
    (2, 'user-7')
    """

    record: dict[str, Any] | None = Field(
        default=None, description="A single record: feature name to value."
    )
    records: list[dict[str, Any]] | None = Field(
        default=None,
        min_length=1,
        description="A batch of records (at most the deployment's batch cap, 100 by default).",
    )
    assignment_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Sticky A/B assignment: the same key always gets the same arm.",
    )
    entity_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description=(
            "Caller's id for the scored entity; stored with the captured request. Alone "
            "(no record), the deployment's feature view supplies the entity's features."
        ),
    )

    explain: StrictBool | Literal["expanded"] = Field(
        default=False,
        description=(
            "Also return SHAP attributions per record (exact for trees and linear models, "
            'labelled approximate otherwise), one per input feature; "expanded" adds '
            "them per model column too (plan=pro, note:refund). 422 not_explainable "
            "without an explainer."
        ),
    )

    @field_validator("explain", mode="wrap")
    @classmethod
    def _explain_values(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError('must be true, false or "expanded"') from None

    @model_validator(mode="after")
    def _exactly_one_payload(self) -> PredictRequest:
        if self.record is not None and self.records is not None:
            raise ValueError("give exactly one of 'record' and 'records'")
        if self.record is None and self.records is None and self.entity_id is None:
            raise ValueError(
                "give exactly one of 'record' and 'records' (or an 'entity_id' to look up)"
            )
        return self

    @property
    def expanded(self) -> bool:
        """Whether explanations per model column were asked for (``"explain": "expanded"``).

        Examples
        --------
        >>> PredictRequest(record={"x": 1}, explain="expanded").expanded
        True
        """
        return self.explain == "expanded"

    @property
    def lookup(self) -> bool:
        """Whether the features must come from the online feature store (entity only)."""
        return self.record is None and self.records is None

    def __repr_args__(self) -> list[tuple[str | None, Any]]:
        # Never feature values in logs or debug strings (and never O(records) work):
        # Powertools formats route arguments into a debug message on every request.
        count = len(self.records) if self.records is not None else 1
        return [
            ("records", f"<{count}>"),
            ("assignment_key", self.assignment_key is not None),
            ("explain", self.explain),
        ]

    def rows(self) -> list[dict[str, Any]]:
        """The records to score, as a list (a single ``record`` becomes a list of one).

        Examples
        --------
        >>> PredictRequest(records=[{"x": 1}]).rows()
        [{'x': 1}]
        """
        if self.records is not None:
            return self.records
        return [self.record] if self.record is not None else []


class ExplanationBody(_Body):
    """One record's attributions: ``base_value[k] + Σ attributions[f][k]`` is output ``k``.

    Examples
    --------
    >>> ExplanationBody(
    ...     space="log_odds", outputs=["yes"], base_value=[0.5],
    ...     attributions={"age": [0.25]}, method="tree_shap",
    ... ).attributions["age"]
    [0.25]
    """

    space: str = Field(
        description=(
            "Where the sum lands: log_odds (binary boosted trees, logistic regression), "
            "margin (multiclass, before softmax), probability (random forest classifiers, "
            "sampled classifiers), value (regressors), log_value (log-link regressors)."
        )
    )
    outputs: list[str] = Field(
        description="The explained outputs: the positive class, every class, or 'value'."
    )
    base_value: list[float] = Field(description="Expected output, one per explained output.")
    attributions: dict[str, list[float]] = Field(
        description="Input feature to its SHAP value, one per explained output."
    )
    method: str = Field(description="tree_shap, linear_shap or permutation_shap.")
    approximate: bool = Field(
        default=False, description="True for sampled (permutation) estimates."
    )
    error_bound: float | None = Field(
        default=None,
        description="Approximate only: three standard errors of the largest attribution.",
    )
    expanded: dict[str, list[float]] | None = Field(
        default=None,
        description=(
            'With explain: "expanded", the attributions per model column (a one-hot '
            "category plan=pro, a text n-gram note:refund, a missing flag age__missing); "
            "each input feature's attribution is the sum of its columns'."
        ),
    )


class PredictResponse(_Body):
    """Predictions for every record, in request order, and who produced them.

    Examples
    --------
    >>> PredictResponse(
    ...     model="churn", version=3, variant=Variant.CHAMPION, request_id="r-1",
    ...     predictions=["yes"], probabilities=[{"no": 0.2, "yes": 0.8}],
    ... ).predictions
    ['yes']
    """

    model: str = Field(description="Model name.")
    version: int = Field(ge=1, description="The model version that produced the predictions.")
    variant: Variant = Field(description="champion, canary, or the A/B arm (a, b).")
    request_id: str = Field(description="Correlation id; also the id of the captured record.")
    predictions: list[str] | list[float] = Field(
        description="Classifiers: one class label per record; regressors: one number per record."
    )
    probabilities: list[dict[str, float]] | None = Field(
        default=None,
        description="Classifiers with probabilities: one {class: probability} per record.",
    )
    explanations: list[ExplanationBody] | None = Field(
        default=None, description="With explain: true, one explanation per record."
    )


class FieldProblem(_Body):
    """One bad value: where it is and why it was refused.

    Examples
    --------
    >>> FieldProblem(row=0, field="age", reason="must be a number, got str").field
    'age'
    """

    row: int | None = Field(default=None, description="Record index in the batch, if any.")
    field: str = Field(description="Feature or request field name.")
    reason: str


class ErrorDetail(_Body):
    """The ``error`` object of every non-2xx response."""

    code: str = Field(description="Stable machine-readable code, e.g. invalid_records.")
    message: str
    request_id: str | None = None
    errors: list[FieldProblem] | None = Field(
        default=None, description="Every bad field, for 400/422 responses."
    )


class ErrorBody(_Body):
    """``{"error": {...}}``; the shape API Gateway's own error responses use too.

    Examples
    --------
    >>> ErrorBody(error=ErrorDetail(code="model_not_found", message="no model 'x'")).error.code
    'model_not_found'
    """

    error: ErrorDetail
