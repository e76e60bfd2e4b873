"""What a model's monitors watch: the performance rule, the protected attribute, the window.

Part of the model config (``monitoring:``), evaluated the same way locally and in AWS.
The same :class:`ProtectedAttribute` can gate a challenger (``gate.bias``): the
candidate's group metrics on the holdout must stay within ``limits``.

Examples
--------
>>> import yaml
>>> config = yaml.safe_load('''
... monitoring:
...   window_hours: 24              # predictions of the last 24 hours, labels received since
...   performance:                  # default: the gate metric, at most 10% worse than holdout
...     metric: accuracy
...     max_relative_drop: 0.05
...     min_labels: 100
...   bias:
...     attribute: age              # an input feature of the model
...     threshold: 40               # numeric attribute: groups "<= 40" and "> 40"
...     favorable: benign           # the predicted class that counts as the favorable outcome
...     limits: {max_demographic_parity_difference: 0.1, min_disparate_impact_ratio: 0.8}
...   attribution:                  # the drift scorer's attribution drift (ADR 73)
...     min_ndcg: 0.9               # drift when the live ranking's NDCG falls below
...     sample_rows: 2000           # captured rows of the window explained (seeded)
... ''')
>>> policy = MonitoringPolicy.model_validate(config["monitoring"])
>>> policy.performance.metric, policy.bias.groups([25.0, 41.0]).tolist()
('accuracy', ['<= 40', '> 40'])
>>> policy.attribution.min_ndcg, policy.attribution.seed
(0.9, 0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from flywheel.drift.attribution import AttributionPolicy
from flywheel.drift.bias import BiasPolicy, BiasResult, bias_report
from flywheel.errors import InvalidInputError
from flywheel.models import Frozen
from flywheel.monitoring.performance import PerformancePolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    #: Any per-row values: a list (``None`` for missing) or a numpy array.
    Values = Sequence[Any] | NDArray[Any]

__all__ = [
    "DEFAULT_MAX_RELATIVE_DROP",
    "BiasGatePolicy",
    "MonitoringPolicy",
    "ProtectedAttribute",
]

#: Without a configured rule, a window may be this much worse than the holdout baseline.
DEFAULT_MAX_RELATIVE_DROP = 0.1


class ProtectedAttribute(Frozen):
    """A protected attribute, how rows are grouped by it, and the limits on the gaps.

    Examples
    --------
    >>> attribute = ProtectedAttribute(attribute="age", threshold=40, favorable="yes")
    >>> attribute.groups([25.0, 40.0, 61.0, None]).tolist()
    ['<= 40', '<= 40', '> 40', None]
    >>> result = attribute.measure(["30"] * 40 + ["50"] * 40, ["yes"] * 40 + ["no"] * 40)
    >>> result.passed, result.demographic_parity_difference
    (False, 1.0)
    """

    attribute: str = Field(min_length=1)
    #: The predicted (and true) class that counts as the favorable outcome.
    favorable: str = Field(min_length=1)
    #: Numeric attributes: split into ``<= threshold`` and ``> threshold``; else one group
    #: per distinct value.
    threshold: float | None = None
    limits: BiasPolicy = Field(default_factory=BiasPolicy)

    def groups(self, values: Values) -> NDArray[Any]:
        """The group of each row (``None`` where the attribute is missing)."""
        raw = np.asarray(values, dtype=object).ravel()
        if self.threshold is None:
            return np.array([None if _missing(v) else str(v) for v in raw], dtype=object)
        low, high = f"<= {self.threshold:g}", f"> {self.threshold:g}"
        out = np.full(raw.size, None, dtype=object)
        for i, value in enumerate(raw):
            number = _number(value)
            if number is not None:
                out[i] = low if number <= self.threshold else high
        return out

    def measure(
        self, values: Values, predictions: Values, labels: Values | None = None
    ) -> BiasResult:
        """Group metrics and gaps of ``predictions`` (and ``labels`` where known).

        Raises
        ------
        InvalidInputError
            The arrays differ in length, or ``limits.reference_group`` has too few rows.
        """
        return bias_report(
            self.groups(values),
            np.asarray([None if _missing(p) else str(p) for p in _flat(predictions)], object),
            None
            if labels is None
            else np.asarray([None if _missing(v) else str(v) for v in _flat(labels)], object),
            favorable=self.favorable,
            attribute=self.attribute,
            policy=self.limits,
        )


class BiasGatePolicy(ProtectedAttribute):
    """``gate.bias``: the candidate's holdout gaps within ``limits``, and no regression.

    ``max_regression``: how much worse than the champion's (on the same holdout) any gap
    may get; ``None`` checks the limits only.

    Examples
    --------
    >>> BiasGatePolicy(attribute="sex", favorable="approved").max_regression
    0.02
    """

    max_regression: float | None = Field(default=0.02, ge=0)


class MonitoringPolicy(Frozen):
    """The ``monitoring`` section of a model config.

    Examples
    --------
    >>> MonitoringPolicy().performance_rule("roc_auc").max_relative_drop
    0.1
    """

    #: Predictions captured in the last ``window_hours`` are joined with the labels
    #: received since the window began; pick it longer than the usual label delay.
    window_hours: int = Field(default=24, ge=1, le=24 * 31)
    performance: PerformancePolicy | None = None
    bias: ProtectedAttribute | None = None
    #: Attribution drift in the drift scorer's runs (on by default).
    attribution: AttributionPolicy = Field(default_factory=AttributionPolicy)

    def performance_rule(self, gate_metric: str) -> PerformancePolicy:
        """The configured rule, or: ``gate_metric`` at most 10% worse than the holdout."""
        if self.performance is not None:
            return self.performance
        return PerformancePolicy(
            metric=gate_metric, max_relative_drop=DEFAULT_MAX_RELATIVE_DROP, min_labels=100
        )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"attribute value {value!r} is not a number; drop the threshold to group by value",
            field="threshold",
        ) from None
    return None if math.isnan(number) else number


def _flat(values: Values) -> NDArray[Any]:
    return np.asarray(values, dtype=object).ravel()
