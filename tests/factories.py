"""Builders for domain records used across tests."""

from __future__ import annotations

import hashlib
from typing import Any

from flywheel.registry.models import (
    ArtifactRef,
    FeatureSpec,
    InputSchema,
    Lineage,
    OutputSchema,
    Task,
    VersionDraft,
)


def version_draft(name: str = "churn", seed: int = 7, **overrides: Any) -> VersionDraft:
    digest = hashlib.sha256(f"{name}-{seed}".encode()).hexdigest()
    values: dict[str, Any] = {
        "name": name,
        "artifact": ArtifactRef(
            uri=f"s3://artifacts/models/{name}/{digest}.onnx",
            version_id="v1",
            sha256=digest,
            size_bytes=1234,
        ),
        "input_schema": InputSchema(
            features=(FeatureSpec(name="age", minimum=0, maximum=130), FeatureSpec(name="income"))
        ),
        "output_schema": OutputSchema(
            task=Task.CLASSIFICATION, probability_output="probabilities", classes=("0", "1")
        ),
        "metrics": {"accuracy": 0.91, "roc_auc": 0.95},
        "hyperparameters": {"C": 1.0},
        "lineage": Lineage(
            code_commit="abc123",
            dataset_id="sklearn:breast_cancer",
            dataset_sha256=hashlib.sha256(b"data").hexdigest(),
            dependency_lock_hash="f" * 64,
            library_versions={"scikit-learn": "1.9.1"},
            random_seed=seed,
            training_run_id=f"run-{seed}",
        ),
    }
    values.update(overrides)
    return VersionDraft(**values)


def corrupt_s3_version(uri: str, version_id: str | None) -> None:
    """Flip one byte of a stored S3 object version inside moto (checksum updated too).

    Real S3 never lets a client rewrite a version; this stands for storage handing
    back other bytes (a wrong restore, a compromised bucket). Because S3's own
    checksum is updated as well, only Flywheel's SHA-256 check can catch it.
    """
    import base64

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_object(
        bucket, key, version_id=version_id
    )
    assert stored is not None
    data = bytearray(stored.value)
    data[len(data) // 2] ^= 0xFF
    stored.value = bytes(data)
    stored.checksum_value = base64.b64encode(hashlib.sha256(bytes(data)).digest()).decode()


def prompt_data(name: str = "ticket-summary", **overrides: Any) -> dict[str, Any]:
    """A valid prompt spec as its author writes it (a mapping), with ``overrides``."""
    values: dict[str, Any] = {
        "name": name,
        "description": "Summarize a support ticket.",
        "owner": "support@example.com",
        "provider": "local",
        "model_id": "local.stand-in",
        "system": "You are brief.",
        "template": "Customer {{ customer }} wrote:\n\n{{ ticket }}",
        "variables": {"customer": {"max_length": 50}, "ticket": {"max_length": 2000}},
        "parameters": {"max_tokens": 64, "temperature": 0.2},
    }
    values.update(overrides)
    return values


def prompt_spec(name: str = "ticket-summary", **overrides: Any) -> Any:
    """:func:`prompt_data`, validated (a :class:`~flywheel.llm.prompts.PromptSpec`)."""
    from flywheel.llm.prompts import parse_prompt

    return parse_prompt(prompt_data(name, **overrides))
