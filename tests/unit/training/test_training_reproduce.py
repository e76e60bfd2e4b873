"""Reproducing a registered version from its lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from flywheel.errors import ArtifactIntegrityError, ArtifactNotFoundError
from flywheel.registry.models import ArtifactRef, Lineage, VersionDraft
from flywheel.training.datasets import Dataset, array_sha256
from flywheel.training.reproduce import reproduce
from flywheel.training.trainer import train

if TYPE_CHECKING:
    from collections.abc import Callable

    from flywheel.training.config import TrainingConfig


def _register(config: TrainingConfig, dataset: Dataset) -> tuple[VersionDraft, bytes]:
    outcome = train(config, dataset, run_id="original")
    artifact = ArtifactRef(
        uri="memory://models/test-model/1.onnx",
        sha256=outcome.onnx_sha256,
        size_bytes=len(outcome.onnx_bytes),
    )
    return outcome.version_draft(artifact), outcome.onnx_bytes


@pytest.mark.parametrize(
    ("source", "estimator"),
    [
        ("sklearn:breast_cancer", "logistic_regression"),
        ("sklearn:wine", "gradient_boosting"),
        ("sklearn:diabetes", "hist_gradient_boosting"),
    ],
)
def test_the_same_lineage_reproduces_exactly(
    make_config: Callable[..., TrainingConfig],
    bundled: Callable[[str], Dataset],
    source: str,
    estimator: str,
) -> None:
    version, onnx_bytes = _register(make_config(source, estimator), bundled(source))

    report = reproduce(version, onnx_bytes, run_id="again")

    assert report.reproduced
    assert report.metrics_match
    assert all(d.abs_diff == 0.0 for d in report.metric_diffs.values())
    assert report.predictions_match
    assert report.max_prediction_diff == 0.0
    assert report.onnx_sha256_match
    assert report.dataset_sha256_match
    assert report.environment_match
    assert report.library_version_diffs == {}
    assert (report.original_run_id, report.reproduced_run_id) == ("original", "again")
    assert report.holdout_rows > 0


def test_changed_data_is_reported(
    make_config: Callable[..., TrainingConfig], bundled: Callable[[str], Dataset]
) -> None:
    original = bundled("sklearn:diabetes")
    version, onnx_bytes = _register(make_config("sklearn:diabetes", "linear_regression"), original)
    y = original.y.copy()
    y[:50] += 25.0
    shifted = original.model_copy(
        update={"y": y, "sha256": array_sha256(original.X, y, original.feature_names)}
    )

    report = reproduce(version, onnx_bytes, dataset=shifted)

    assert not report.reproduced
    assert not report.dataset_sha256_match
    assert not report.metrics_match
    assert not report.onnx_sha256_match
    assert report.max_prediction_diff > 1e-6
    assert report.metric_diffs["r2"].abs_diff is not None
    assert report.metric_diffs["r2"].abs_diff > 1e-9


def test_a_different_seed_in_the_lineage_is_used(
    make_config: Callable[..., TrainingConfig], bundled: Callable[[str], Dataset]
) -> None:
    version, onnx_bytes = _register(
        make_config("sklearn:breast_cancer", "random_forest"), bundled("sklearn:breast_cancer")
    )
    lineage: Lineage = version.lineage.model_copy(update={"random_seed": 99})
    tampered = version.model_copy(update={"lineage": lineage})

    report = reproduce(tampered, onnx_bytes)

    assert not report.metrics_match
    assert not report.onnx_sha256_match


def test_the_onnx_bytes_must_be_the_registered_ones(
    make_config: Callable[..., TrainingConfig], bundled: Callable[[str], Dataset]
) -> None:
    version, onnx_bytes = _register(
        make_config("sklearn:iris", "logistic_regression"), bundled("sklearn:iris")
    )

    with pytest.raises(ArtifactIntegrityError, match="do not match"):
        reproduce(version, onnx_bytes + b"\x00")


def test_the_artifact_is_read_through_fetch_when_no_bytes_are_given(
    make_config: Callable[..., TrainingConfig], bundled: Callable[[str], Dataset]
) -> None:
    version, onnx_bytes = _register(
        make_config("sklearn:wine", "random_forest"), bundled("sklearn:wine")
    )
    reads: list[str] = []

    def fetch(uri: str) -> bytes:
        reads.append(uri)
        return onnx_bytes

    report = reproduce(version, fetch=fetch)

    assert reads == [version.artifact.uri]
    assert report.reproduced
    with pytest.raises(ArtifactNotFoundError, match="pass the registered ONNX bytes"):
        reproduce(version)
