"""Data validation for a model: its config's expectations, its previous training set's
profile, and where the report goes.

The training workflow's ValidateData step and ``flywheel data validate`` both call
:func:`validate_for_model`; the step stores the report with :func:`store_report` under
``reports/<model>/data/<run>.{json,html}`` (:func:`report_base`) and stops the run when an
expectation that is not a warning failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.drift.profile import ReferenceProfile
from flywheel.errors import ModelNotFoundError
from flywheel.training.validation import (
    DataValidationReport,
    ExpectationResult,
    validate_dataset,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.models import ArtifactRef
    from flywheel.registry.service import RegistryService
    from flywheel.training.datasets import Dataset
    from flywheel.workflows.config import ModelConfig
    from flywheel.workflows.state import RunContext

__all__ = ["Reference", "previous_reference", "report_base", "store_report", "validate_for_model"]


class Reference:
    """The previous training set's profile and what it is, or why there is none."""

    def __init__(self, profile: ReferenceProfile | None, label: str) -> None:
        self.profile = profile
        #: ``champion v3`` / ``latest version v5``, or the reason there is no profile.
        self.label = label


def previous_reference(registry: RegistryService, artifacts: ArtifactStore, name: str) -> Reference:
    """The champion's reference profile, else the latest registered version's.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> platform = InMemoryPlatform()
    >>> previous_reference(platform.registry, platform.artifacts, "churn").label
    "model 'churn' has no registered version"
    """
    try:
        model = registry.get_model(name)
    except ModelNotFoundError:
        return Reference(None, f"model {name!r} has no registered version")
    candidates = []
    if model.champion is not None:
        candidates.append((model.champion, f"champion v{model.champion}"))
    if model.latest_version and model.latest_version != model.champion:
        candidates.append((model.latest_version, f"latest version v{model.latest_version}"))
    for number, label in candidates:
        ref = registry.get_version(name, number).reference_profile
        if ref is not None:
            return Reference(ReferenceProfile.model_validate(artifacts.get_json(ref)), label)
    return Reference(None, f"model {name!r} has no version with a reference profile")


def validate_for_model(
    dataset: Dataset,
    config: ModelConfig,
    reference: Reference,
    *,
    type_problems: Mapping[str, str] | None = None,
) -> DataValidationReport:
    """Run the model's data policy (``data:``) on ``dataset``.

    Besides :func:`~flywheel.training.validation.validate_dataset`, the features the gate and
    the monitors group by (``gate.fairness``, ``gate.bias``, ``monitoring.bias``) must exist.

    Examples
    --------
    >>> from flywheel.training.datasets import load_dataset
    >>> from flywheel.workflows.config import parse_model_config
    >>> config = parse_model_config({
    ...     "name": "iris", "gate": {"metric": "accuracy"}, "data": {"min_rows": 500},
    ...     "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
    ...                  "estimator": "logistic_regression"},
    ... })
    >>> report = validate_for_model(load_dataset("sklearn:iris"), config, Reference(None, "new"))
    >>> report.summary()
    '1 data expectation(s) failed: min_rows'
    """
    policy = config.data
    report = validate_dataset(
        dataset,
        policy.expectations,
        model=config.name,
        reference=reference.profile,
        reference_label=reference.label,
        no_reference=reference.label,
        min_rows=policy.min_rows,
        min_rows_per_class=policy.min_rows_per_class,
        declared_ranges=config.training.feature_ranges,
        type_problems=type_problems,
    )
    grouped = [
        ("gate.fairness.group_feature", config.gate.fairness and config.gate.fairness.group_feature)
    ]
    grouped += [
        (f"{field}.attribute", bias.attribute if bias is not None else None)
        for field, bias in (
            ("gate.bias", config.gate.bias),
            ("monitoring.bias", config.monitoring.bias),
        )
    ]
    extra = [
        ExpectationResult(
            check="features",
            feature=feature,
            status="failed",
            severity="error",
            observed="not a feature of the data",
            threshold=f"named by {field}",
            field=field,
        )
        for field, feature in grouped
        if feature and feature not in dataset.feature_names
    ]
    return report.with_results(extra) if extra else report


def report_base(model: str, run: RunContext) -> str:
    """``reports/<model>/data/<started, UTC>-<execution>``: sorts by time, one per run.

    Examples
    --------
    >>> from flywheel.workflows.state import RunContext
    >>> report_base("churn", RunContext(execution_id="arn:x", execution_name="run-1",
    ...             started_at="2026-01-02T03:04:05.678Z", state_machine="training"))
    'reports/churn/data/2026-01-02T030405-run-1'
    """
    stamp = run.started_at[:19].replace(":", "")
    return f"reports/{model}/data/{stamp}-{run.execution_name}"


def store_report(
    artifacts: ArtifactStore, base: str, report: DataValidationReport
) -> tuple[ArtifactRef, ArtifactRef]:
    """Write ``<base>.json`` and ``<base>.html``; return their references."""
    document = {**report.model_dump(mode="json"), "passed": report.passed}
    json_ref = artifacts.put_json(f"{base}.json", document)
    html_ref = artifacts.put(
        f"{base}.html", report.html().encode("utf-8"), content_type="text/html; charset=utf-8"
    )
    return json_ref, html_ref
