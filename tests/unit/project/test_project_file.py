"""The project file: validated with the field and the line of the first problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app
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
    approver_principals:
      - role/ml-approver
  - name: prod
    account: "222222222222"
models:
  - name: churn
    memory_mb: 1024
    overrides:
      prod: {memory_mb: 2048}
"""


def _write(folder: Path, project: str = PROJECT, model: str | None = MODEL) -> Path:
    (folder / "flywheel.yaml").write_text(project)
    if model is not None:
        (folder / "models" / "churn").mkdir(parents=True)
        (folder / "models" / "churn" / "model.yaml").write_text(model)
    return folder / "flywheel.yaml"


def test_a_valid_project_gives_each_stage_its_models_and_overrides(tmp_path: Path) -> None:
    loaded = load_project(_write(tmp_path))
    data = {s.name: loaded.stage_config_data(s.name) for s in loaded.project.stages}
    assert [m["memory_mb"] for m in data["dev"]["models"]] == [1024]
    assert [m["memory_mb"] for m in data["prod"]["models"]] == [2048]
    assert (data["prod"]["project"], data["prod"]["account"]) == ("acme", "222222222222")
    assert loaded.model_configs["churn"].gate.metric == "roc_auc"


@pytest.mark.parametrize(
    ("edit", "model", "expected"),
    [
        # an unknown field
        (
            ("    memory_mb: 1024", "    memory: 1024"),
            MODEL,
            ":11: models[0].memory: unknown field",
        ),
        # a stage without an account
        (('    account: "222222222222"\n', ""), MODEL, ":7: stages[1].account: a deployable"),
        # an approver that is not an ARN
        (("role/ml-approver", "ml-approver"), MODEL, ":6: stages[0].approver_principals[0]: "),
        # a model without a training config (no file, then an invalid one)
        (("", ""), None, ":10: models[0].config: models/churn/model.yaml does not exist"),
        (("", ""), "name: churn\n", ":10: models[0].config: models/churn/model.yaml: training"),
        # an override out of range
        (("2048", "64"), MODEL, ":13: models[0].overrides.prod.memory_mb: Input should be"),
    ],
)
def test_bad_project_files_are_refused_with_one_line_naming_field_and_line(
    tmp_path: Path, edit: tuple[str, str], model: str | None, expected: str
) -> None:
    path = _write(tmp_path, PROJECT.replace(*edit) if edit[0] else PROJECT, model)
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message


def test_project_check_prints_one_line_and_fails_on_a_bad_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    good = CliRunner().invoke(app, ["project", "check", str(path)])
    assert good.exit_code == 0, good.output
    assert "project acme is valid" in good.output
    path.write_text(PROJECT.replace("    memory_mb: 1024", "    memory: 1024"))
    bad = CliRunner().invoke(app, ["project", "check", str(path)])
    assert bad.exit_code == 1
    assert "flywheel.yaml:11: models[0].memory: unknown field" in bad.output


CANARY = PROJECT.replace(
    "    memory_mb: 1024\n",
    "    memory_mb: 1024\n"
    "    canary:\n"
    "      steps:\n"
    "        - {weight: 0.05, bake_minutes: 10}\n"
    "        - {weight: 0.25, bake_minutes: 30}\n",
)


def test_a_models_canary_steps_reach_its_stages_and_the_default_is_one_step(
    tmp_path: Path,
) -> None:
    from infra.config import stage_configs

    loaded = load_project(_write(tmp_path, CANARY))
    configs = stage_configs(loaded)
    assert [(s.weight, s.bake_minutes) for s in configs["dev"].canary_plans["churn"]] == [
        (0.05, 10),
        (0.25, 30),
    ]
    # A model without steps keeps today's single step: the stage's weight and bake.
    (tmp_path / "plain").mkdir()
    plain = stage_configs(load_project(_write(tmp_path / "plain", PROJECT)))["prod"]
    assert [(s.weight, s.bake_minutes) for s in plain.canary_plans["churn"]] == [(0.1, 10)]
    # The state machine outlives the longest canary: every bake plus an hour.
    assert configs["dev"].promotion_workflow_timeout_seconds == 40 * 60 + 3600


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("weight: 0.25", "weight: 0.05"), ":13: models[0].canary.steps: weights must increase"),
        (("weight: 0.25", "weight: 1.0"), ":15: models[0].canary.steps[1].weight: Input should"),
        (("bake_minutes: 10", "bake_minutes: 0"), ":14: models[0].canary.steps[0].bake_minutes:"),
        (("- {weight: 0.05", "- {weigth: 0.05"), ":14: models[0].canary.steps[0].weight: Field"),
        (
            (
                "        - {weight: 0.25, bake_minutes: 30}\n",
                "".join(
                    f"        - {{weight: 0.{i:02d}, bake_minutes: 1}}\n" for i in range(6, 16)
                ),
            ),
            ":13: models[0].canary.steps: Tuple should have at most 10 items",
        ),
        (
            (
                "steps:\n        - {weight: 0.05, bake_minutes: 10}\n        - {weight: 0.25, "
                "bake_minutes: 30}\n",
                "steps: []\n",
            ),
            ":13: models[0].canary.steps: Tuple should have at least 1",
        ),
        (
            ("prod: {memory_mb: 2048}", "prod: {canary: {steps: [{weight: 0, bake_minutes: 5}]}}"),
            ":17: models[0].overrides.prod.canary.steps[0].weight: Input should be greater than 0",
        ),
    ],
)
def test_bad_canary_steps_are_refused_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    path = _write(tmp_path, CANARY.replace(*edit))
    with pytest.raises(ProjectError) as raised:
        load_project(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}{expected}"), message
