"""A model's ``training:`` in the project file: where its Train step runs (ADR 85),
validated with the file, the line and the field of the first problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.project import ProjectError, load_project

MODEL = """name: churn
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
gate: {metric: roc_auc}
"""
PROJECT = """project: acme
stages:
  - name: dev
    account: "111111111111"
  - name: prod
    account: "222222222222"
models:
  - name: churn
    training:
      engine: batch
      batch:
        vcpu: 4
        memory_mb: 16384
        spot: true
        subnets: [subnet-0abc1234]
        security_groups: [sg-0abc1234]
    overrides:
      prod:
        training:
          engine: sagemaker
          sagemaker: {instance_type: ml.m5.2xlarge, spot: true, max_wait_minutes: 240}
"""


def _write(folder: Path, project: str) -> Path:
    (folder / "flywheel.yaml").write_text(project)
    (folder / "models" / "churn").mkdir(parents=True)
    (folder / "models" / "churn" / "model.yaml").write_text(MODEL)
    return folder / "flywheel.yaml"


def test_each_stage_gets_its_engine_and_lambda_stays_the_default(tmp_path: Path) -> None:
    loaded = load_project(_write(tmp_path, PROJECT))
    dev = loaded.project.model_settings("churn", "dev").training
    prod = loaded.project.model_settings("churn", "prod").training
    assert (dev.engine, dev.batch.vcpu, dev.batch.memory_mb, dev.batch.spot) == (
        "batch", 4.0, 16384, True,
    )  # fmt: skip
    assert (prod.engine, prod.sagemaker.instance_type, prod.sagemaker.max_wait_seconds) == (
        "sagemaker", "ml.m5.2xlarge", 240 * 60,
    )  # fmt: skip
    (tmp_path / "plain").mkdir()
    plain = load_project(_write(tmp_path / "plain", PROJECT.split("    training:", maxsplit=1)[0]))
    assert plain.project.model_settings("churn", "dev").training.engine == "lambda"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # a GPU on Fargate
        (
            ("        spot: true\n        subnets", "        gpus: 1\n        subnets"),
            ":14: models[0].training.batch.gpus: Fargate has no GPUs",
        ),
        # memory Fargate does not pair with 4 vCPU
        (
            ("memory_mb: 16384", "memory_mb: 2048"),
            ":13: models[0].training.batch.memory_mb: with 4 vCPU",
        ),
        (("vcpu: 4", "vcpu: 3"), ":12: models[0].training.batch.vcpu: Fargate offers 0.25, 0.5"),
        # Fargate needs a network
        (
            ("        subnets: [subnet-0abc1234]\n", ""),
            ":11: models[0].training.batch.subnets: Field required",
        ),
        # an engine without its settings, or settings of another engine
        (
            ("      batch:\n", "      sagemaker:\n"),
            ":12: models[0].training.sagemaker.vcpu: unknown field",
        ),
        (("engine: batch", "engine: lambda"), ":11: models[0].training.batch: settings for"),
        # a GPU instance for a CPU-only image, in a stage's override
        (
            ("ml.m5.2xlarge", "ml.g5.xlarge"),
            ":21: models[0].overrides.prod.training.sagemaker.instance_type: ml.g5.xlarge is a GPU",
        ),
        # a spot wait shorter than the run it includes
        (
            ("max_wait_minutes: 240", "max_wait_minutes: 30"),
            ":21: models[0].overrides.prod.training.sagemaker.max_wait_minutes: must be at least",
        ),
        (("engine: batch", "engine: ecs"), ":10: models[0].training.engine: Input should be"),
    ],
)
def test_engine_settings_that_cannot_work_are_refused_naming_line_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in PROJECT
    with pytest.raises(ProjectError) as raised:
        load_project(_write(tmp_path, PROJECT.replace(*edit)))
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message, message


def test_a_job_longer_than_the_stages_training_timeout_fails_synthesis() -> None:
    from infra.config import StageConfig, load_stage_config

    base = load_stage_config("dev").model_dump()  # training_timeout_hours: 2
    models = [dict(m) for m in base["models"]]
    models[0]["training"] = {"engine": "sagemaker", "sagemaker": {"max_runtime_minutes": 180}}
    with pytest.raises(ValueError, match=r"breast-cancer's training\.sagemaker job may run 180"):
        StageConfig.model_validate({**base, "models": models})
