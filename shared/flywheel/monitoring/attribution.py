"""Attribution drift in a drift scorer run: sample the window, explain it, compare rankings.

While the drift monitor reads a window, :class:`RecordSample` keeps a seeded uniform
sample of its captured records. :func:`measure_attribution_drift` turns the sample into
the explainer's rows (:func:`explainer_rows`, the one place records become explainer
input), explains them with the version's verified explainer, and compares mean
``|SHAP|`` per input feature with the version's training ``importance``
(:func:`~flywheel.drift.attribution.compare_attributions`; ADR 73).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.drift.attribution import AttributionDrift, AttributionPolicy, compare_attributions
from flywheel.errors import InvalidArtifactError, InvalidInputError, NotExplainableError
from flywheel.serving.service import model_outputs
from flywheel.serving.validation import RecordValidator

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

    from flywheel.explain.artifact import Explainer
    from flywheel.serving.service import ServedModel

__all__ = ["RecordSample", "explainer_rows", "measure_attribution_drift"]

#: Values of the sampling explainer's largest temporary (rows x steps x background x
#: features) per chunk of explained rows: 8 MB of float64 (larger chunks run slower).
_SAMPLED_VALUES_PER_CHUNK = 1 << 20


class RecordSample:
    """A seeded uniform sample of at most ``size`` records from batches read in order.

    Each record draws a key from one generator seeded with ``seed``; the sample is the
    records with the smallest keys. The same window read in the same order gives the
    same sample, and its first ``k`` records (by key) are a uniform sample of ``k``.

    Examples
    --------
    >>> sample = RecordSample(size=3, seed=0)
    >>> for start in range(0, 1000, 100):
    ...     sample.offer([{"i": i} for i in range(start, start + 100)])
    >>> sample.seen, len(sample.records()), len(sample.records(limit=2))
    (1000, 3, 2)
    >>> again = RecordSample(size=3, seed=0)
    >>> again.offer([{"i": i} for i in range(1000)])  # batches do not change the sample
    >>> again.records() == sample.records()
    True
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise InvalidInputError("a sample holds at least one record", field="sample_rows")
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._records: list[Mapping[str, Any]] = []
        self._bound = math.inf  # no key above it can be in the sample any more

    def offer(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Consider ``records`` (in the order they were read) for the sample."""
        keys = self._rng.random(len(records))
        self.seen += len(records)
        kept = np.flatnonzero(keys < self._bound)
        if kept.size == 0:
            return
        self._keys = np.concatenate((self._keys, keys[kept]))
        self._records.extend(records[i] for i in kept.tolist())
        if len(self._records) >= 2 * self.size:
            self._keep(self.size)

    def records(self, limit: int | None = None) -> list[Mapping[str, Any]]:
        """The sampled records, smallest key first (at most ``limit`` of them)."""
        count = min(self.size if limit is None else limit, len(self._records))
        order = np.argsort(self._keys, kind="stable")[:count]
        return [self._records[i] for i in order.tolist()]

    def _keep(self, count: int) -> None:
        chosen = np.argpartition(self._keys, count - 1)[:count]
        self._keys = self._keys[chosen]
        self._records = [self._records[i] for i in chosen.tolist()]
        self._bound = float(self._keys.max())


def explainer_rows(records: Sequence[Mapping[str, Any]], served: ServedModel) -> NDArray[Any]:
    """The rows ``served``'s explainer takes for captured ``records`` (schema order).

    Records serving accepted are validated again, exactly as a request's records are
    (a record that no longer passes is left out). This is the one place captured records
    become explainer input: a model with categorical or text features is explained over
    the columns its preprocessing expands them to, which are built here once serving can.

    Raises
    ------
    NotExplainableError
        The version has no explainer, or its explainer does not take the input features.
    """
    explainer = served.explainer
    version = served.version
    if explainer is None:
        raise NotExplainableError(
            f"version {version.version} was registered without an explainer", field="explainer"
        )
    schema = version.input_schema
    if schema.typed or explainer.columns != tuple(schema.feature_names):
        raise NotExplainableError(
            f"version {version.version} is explained over the columns its preprocessing "
            "expands categorical and text features to; captured records cannot be turned "
            "into them yet",
            field="explainer",
        )
    validator = RecordValidator(schema, max_records=max(len(records), 1))
    try:
        return validator.matrix(records)
    except InvalidInputError:
        valid = [r for r in records if not validator.problems([r])]
        if not valid:
            return np.empty((0, len(schema.features)))
        return validator.matrix(valid)


def measure_attribution_drift(
    served: ServedModel, sample: RecordSample, policy: AttributionPolicy
) -> AttributionDrift:
    """Explain the sample with the served version's explainer and judge its ranking.

    ``policy.sample_rows`` records are explained by an exact explainer,
    ``policy.approximate_rows`` by a sampling one. A version that cannot be explained
    on its records gives a ``skipped`` result that says why.

    Raises
    ------
    InvalidArtifactError
        The explainer failed on the sampled rows.
    """
    explainer = served.explainer
    version = served.version
    if explainer is None:
        return AttributionDrift.skipped(
            f"version {version.version} was registered without an explainer"
        )
    if not version.importance:
        return AttributionDrift.skipped(
            f"version {version.version} has no training importance to compare with"
        )
    records = sample.records(policy.rows_for(approximate=explainer.approximate))
    try:
        x = explainer_rows(records, served)
    except NotExplainableError as err:
        return AttributionDrift.skipped(err.message)
    live, bound = _mean_abs_shap(explainer, x, served)
    return compare_attributions(
        version.importance,
        dict(zip(explainer.features, live.tolist(), strict=True)),
        policy,
        sample_rows=int(x.shape[0]),
        window_rows=sample.seen,
        method=explainer.method,
        space=explainer.space,
        approximate=explainer.approximate,
        error_bound=bound,
    )


def _mean_abs_shap(
    explainer: Explainer, x: NDArray[Any], served: ServedModel
) -> tuple[NDArray[np.float64], float | None]:
    """Mean ``|SHAP|`` per input feature summed over outputs (``Explainer.importance``'s
    definition; an undefined value counts as 0), in chunks that bound the sampling
    explainer's memory."""
    features = len(explainer.features)
    if x.shape[0] == 0:
        return np.zeros(features), None
    model = model_outputs(served) if explainer.approximate else None
    chunk = x.shape[0]
    if explainer.approximate:
        background = int(explainer.arrays["sampling.background"].shape[0])
        columns = x.shape[1]
        chunk = max(1, _SAMPLED_VALUES_PER_CHUNK // ((columns + 1) * background * columns))
    totals = np.zeros(features)
    bound: float | None = None
    for start in range(0, x.shape[0], chunk):
        try:
            explanation = explainer.explain(x[start : start + chunk], model=model)
        except Exception as err:
            raise InvalidArtifactError(
                "the explainer failed on the sampled rows", field="explainer"
            ) from err
        totals += np.nansum(np.abs(explanation.values), axis=(0, 2))
        if explanation.error_bound is not None:
            bound = max(bound or 0.0, explanation.error_bound)
    return totals / x.shape[0], bound
