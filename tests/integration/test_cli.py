"""The ``flywheel`` CLI on moto: the happy path and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from flywheel.cli.app import app
from flywheel.composition.clients import ClientFactory
from flywheel.registry.models import VersionStatus
from tests.factories import corrupt_s3_version

CONFIG = """\
model: cancer
task: classification
dataset:
  source: sklearn:breast_cancer
estimator: logistic_regression
hyperparameters: {C: 0.5, max_iter: 500}
seed: 3
"""


WORKFLOW_CONFIG = """\
name: cancer
training:
  task: classification
  dataset: {source: "sklearn:breast_cancer"}
  estimator: logistic_regression
gate: {metric: roc_auc}
approval: {allow_direct_approval: true}
"""
ACCOUNT = "123456789012"


def role_session(role: str, session: str = "cli") -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


class Principals:
    """People in the account: the CLI acts as whichever one's credentials are in the env."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._iam = boto3.client("iam")
        self._sts = boto3.client("sts")

    def act_as(self, role: str) -> str:
        try:
            arn = self._iam.get_role(RoleName=role)["Role"]["Arn"]
        except self._iam.exceptions.NoSuchEntityException:
            arn = self._iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        creds = self._sts.assume_role(RoleArn=arn, RoleSessionName="cli")["Credentials"]
        self._monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
        self._monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
        self._monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
        ClientFactory.forget()  # a new process, as far as clients go
        return role_session(role)


@pytest.fixture
def people(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Principals:
    return Principals(monkeypatch)


@pytest.fixture
def cli_env(
    local_names: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    people: Principals,
    tmp_path: Path,
    runner: CliRunner,
) -> dict[str, str]:
    """AWS mode on moto: an ML engineer configured ``cancer`` (direct approval allowed);
    commands then run as a data scientist."""
    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    monkeypatch.delenv("FLYWHEEL_ACTOR", raising=False)
    for env_var, name in local_names.items():
        monkeypatch.setenv(env_var, name)
    people.act_as("ml-engineer")
    workflow = tmp_path / "cancer.model.yaml"
    workflow.write_text(WORKFLOW_CONFIG)
    configured = invoke(runner, "models", "configure", "cancer", str(workflow), "-r", "onboard")
    assert configured.exit_code == 0, configured.output
    people.act_as("data-scientist")
    return local_names


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=stdin, catch_exceptions=False)


@pytest.fixture
def trained(cli_env: dict[str, str], runner: CliRunner, tmp_path: Path) -> Path:
    config = tmp_path / "cancer.yaml"
    config.write_text(CONFIG)
    result = invoke(runner, "train", str(config), "--reason", "first model")
    assert result.exit_code == 0, result.output
    return config


def _audit_count(names: dict[str, str]) -> int:
    response = boto3.client("dynamodb").scan(TableName=names["FLYWHEEL_AUDIT_TABLE"])
    return len([i for i in response["Items"] if i["seq"]["N"] != "0"])


def _record() -> dict[str, float]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return {str(n): float(v) for n, v in zip(data.feature_names, data.data[0], strict=True)}


def test_train_approve_promote_predict_verify(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], people: Principals
) -> None:
    shown = invoke(runner, "models", "show", "cancer", "--version", "1", "--json")
    version = json.loads(shown.stdout)
    assert version["status"] == VersionStatus.PENDING_APPROVAL
    assert version["parity"]["passed"] is True
    assert version["lineage"]["dataset_id"] == "sklearn:breast_cancer"
    # Global importance (mean |SHAP| on the holdout) is stored and the table shows the top ones
    top_feature = next(iter(version["importance"]))
    assert version["explainer"]["sha256"]
    listing = invoke(runner, "models", "show", "cancer")
    assert "top" in listing.stdout  # the column (rich wraps it at 80 columns)
    assert top_feature.split()[0] in listing.stdout

    people.act_as("approver")
    approved = invoke(runner, "approve", "cancer", "1", "-r", "looks good")
    assert approved.exit_code == 0, approved.output
    people.act_as("ml-engineer")
    promoted = invoke(runner, "promote", "cancer", "1", "-r", "release")
    assert promoted.exit_code == 0, promoted.output

    predicted = invoke(runner, "predict", "cancer", stdin=json.dumps([_record()]))
    assert predicted.exit_code == 0, predicted.output
    body = json.loads(predicted.stdout)
    assert body["version"] == 1
    assert body["predictions"] == ["malignant"]  # the first row of the dataset is malignant
    assert len(body["probabilities"][0]) == 2

    trail = invoke(runner, "audit", "show", "cancer", "--json")
    entries = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("model_configured", role_session("ml-engineer")),
        ("version_registered", role_session("data-scientist")),
        ("approval_requested", role_session("data-scientist")),
        ("approved", role_session("approver")),
        ("promoted", role_session("ml-engineer")),
    ]
    verified = invoke(runner, "audit", "verify", "cancer")
    assert verified.exit_code == 0
    assert "OK" in verified.stdout


def test_missing_reason_is_one_line_error_and_writes_nothing(
    trained: Path, runner: CliRunner, cli_env: dict[str, str]
) -> None:
    before = _audit_count(cli_env)
    result = invoke(runner, "approve", "cancer", "1")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: a reason is required to record 'approved'"
    assert _audit_count(cli_env) == before


def test_unknown_model_is_a_clear_error(cli_env: dict[str, str], runner: CliRunner) -> None:
    result = invoke(runner, "approve", "nope", "1", "-r", "x")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: model 'nope' does not exist"


def test_illegal_transition_names_the_status(
    trained: Path, runner: CliRunner, cli_env: dict[str, str]
) -> None:
    result = invoke(runner, "promote", "cancer", "1", "-r", "skip approval")
    assert result.exit_code == 1
    assert "pending_approval" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: Bad Name\n", "model"),
        (CONFIG.replace("logistic_regression", "deep_net"), "estimator"),
        (CONFIG.replace("{C: 0.5, max_iter: 500}", "{bogus: 1}"), "bogus"),
        ("model: [unclosed\n", "config"),
    ],
)
def test_malformed_config_registers_nothing(
    cli_env: dict[str, str], runner: CliRunner, tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = invoke(runner, "train", str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert invoke(runner, "models", "list").stdout.count("cancer") == 0
    assert _audit_count(cli_env) == 1  # the fixture's config entry only


def test_corrupted_artifact_is_refused_and_nothing_is_scored(
    trained: Path, runner: CliRunner, cli_env: dict[str, str]
) -> None:
    # Given the stored ONNX bytes of version 1 are altered inside the bucket
    version = json.loads(
        invoke(runner, "models", "show", "cancer", "--version", "1", "--json").stdout
    )
    corrupt_s3_version(version["artifact"]["uri"], version["artifact"]["version_id"])
    # When someone predicts with it
    result = invoke(runner, "predict", "cancer", "--version", "1", stdin=json.dumps(_record()))
    # Then the load is refused with a one-line integrity error
    assert result.exit_code == 1
    assert "sha-256" in result.stderr.lower() or "integrity" in result.stderr.lower()
    assert result.stdout == ""


def test_predict_rejects_bad_json(trained: Path, runner: CliRunner) -> None:
    result = invoke(runner, "predict", "cancer", "--version", "1", stdin="{nope")
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr


def test_rollback_without_history_is_refused(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], people: Principals
) -> None:
    people.act_as("approver")
    invoke(runner, "approve", "cancer", "1", "-r", "ok")
    invoke(runner, "promote", "cancer", "1", "-r", "ok")
    result = invoke(runner, "rollback", "cancer", "-r", "oops")
    assert result.exit_code == 1
    assert "no previous champion" in result.stderr


def test_reproduce_retrains_from_lineage_and_matches(trained: Path, runner: CliRunner) -> None:
    result = invoke(runner, "reproduce", "cancer", "1")
    assert result.exit_code == 0, result.output
    assert "metrics_match" in result.stdout
    assert "True" in result.stdout


def test_reproduce_reports_a_changed_dataset(
    trained: Path, runner: CliRunner, cli_env: dict[str, str]
) -> None:
    # A version whose recorded dataset hash differs from what the source now holds
    from flywheel.sdk import Flywheel

    sdk = Flywheel.connect()
    assert sdk.actor == role_session("data-scientist")
    original = sdk.get_version("cancer", 1)
    lineage = original.lineage.model_copy(update={"dataset_sha256": "0" * 64})
    draft = original.model_copy(update={"lineage": lineage})
    from flywheel.registry.models import VersionDraft

    sdk.registry.register(
        VersionDraft(**draft.model_dump(include=set(VersionDraft.model_fields))), actor="ci"
    )
    result = invoke(runner, "reproduce", "cancer", "2")
    assert result.exit_code == 1
    assert "dataset_sha256_match" in result.stdout


def test_in_aws_mode_the_actor_is_the_iam_caller_and_cannot_be_overridden(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = invoke(runner, "audit", "show", "cancer", "--json").stdout.splitlines()
    assert json.loads(entries[-1])["actor"] == role_session("data-scientist")
    before = _audit_count(cli_env)

    claimed = invoke(runner, "--actor", "boss@example.com", "approve", "cancer", "1", "-r", "ok")
    monkeypatch.setenv("FLYWHEEL_ACTOR", "boss@example.com")
    from_env = invoke(runner, "approve", "cancer", "1", "-r", "ok")

    for result in (claimed, from_env):
        assert result.exit_code == 1
        assert "apply to the local runtime only" in result.stderr
    assert _audit_count(cli_env) == before


def test_the_trainer_cannot_approve_their_own_candidate(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], people: Principals
) -> None:
    before = _audit_count(cli_env)
    # Another session of the same role is the same principal
    result = invoke(runner, "approve", "cancer", "1", "-r", "mine is fine")
    assert result.exit_code == 1
    assert "the approver is the principal that requested this run" in result.stderr
    assert _audit_count(cli_env) == before


def test_without_a_waiting_run_aws_refuses_direct_approval_unless_the_policy_allows(
    runner: CliRunner, cli_env: dict[str, str], people: Principals, tmp_path: Path
) -> None:
    # Given a model whose policy keeps the default (decisions through the workflow)
    people.act_as("ml-engineer")
    workflow = tmp_path / "wine.model.yaml"
    workflow.write_text(
        WORKFLOW_CONFIG.replace("name: cancer", "name: wine")
        .replace("breast_cancer", "wine")
        .replace("approval: {allow_direct_approval: true}\n", "")
    )
    assert invoke(runner, "models", "configure", "wine", str(workflow), "-r", "x").exit_code == 0
    people.act_as("data-scientist")
    config = tmp_path / "wine.yaml"
    config.write_text(
        "model: wine\ntask: classification\ndataset: {source: 'sklearn:wine'}\n"
        "estimator: logistic_regression\nhyperparameters: {max_iter: 500}\n"
    )
    assert invoke(runner, "train", str(config)).exit_code == 0
    # When an approver approves it from the CLI
    people.act_as("approver")
    result = invoke(runner, "approve", "wine", "1", "-r", "looks good")
    # Then it is refused: no run waits on it and direct approval is not allowed
    assert result.exit_code == 1
    assert "does not allow direct approval" in result.stderr


def test_champion_at_a_time_from_the_trail(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], people: Principals
) -> None:
    before = invoke(runner, "audit", "champion-at", "cancer", "2000-01-01T00:00:00Z")
    assert before.stdout.strip() == "none"
    people.act_as("approver")
    invoke(runner, "approve", "cancer", "1", "-r", "ok")
    invoke(runner, "promote", "cancer", "1", "-r", "ok")
    now = invoke(runner, "audit", "champion-at", "cancer", "2100-01-01T00:00:00Z")
    assert now.stdout.strip() == "1"
    bad = invoke(runner, "audit", "champion-at", "cancer", "yesterday")
    assert bad.exit_code == 1
    assert "ISO 8601" in bad.stderr


def test_train_from_a_csv_in_s3(cli_env: dict[str, str], runner: CliRunner, tmp_path: Path) -> None:
    # Given a CSV dataset in a bucket
    from sklearn.datasets import load_wine

    data = load_wine()
    header = ",".join([*(n.replace("/", "_") for n in data.feature_names), "cultivar"])
    rows = [
        ",".join([*(f"{v:.6g}" for v in x), f"c{y}"])
        for x, y in zip(data.data, data.target, strict=True)
    ]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="datasets")
    s3.put_object(Bucket="datasets", Key="wine.csv", Body="\n".join([header, *rows]).encode())
    config = tmp_path / "wine.yaml"
    config.write_text(
        "model: wine\ntask: classification\n"
        "dataset: {source: 's3://datasets/wine.csv', target: cultivar}\n"
        "estimator: random_forest\nhyperparameters: {n_estimators: 20}\nseed: 1\n"
    )
    # When it is trained
    result = invoke(runner, "train", str(config))
    # Then the version records the S3 source and the content hash of the object
    assert result.exit_code == 0, result.output
    version = json.loads(
        invoke(runner, "models", "show", "wine", "--version", "1", "--json").stdout
    )
    assert version["lineage"]["dataset_id"] == "s3://datasets/wine.csv"
    import hashlib

    body = s3.get_object(Bucket="datasets", Key="wine.csv")["Body"].read()
    assert version["lineage"]["dataset_sha256"] == hashlib.sha256(body).hexdigest()
    assert version["output_schema"]["classes"] == ["c0", "c1", "c2"]


def test_train_from_a_missing_s3_object_is_a_clear_error(
    cli_env: dict[str, str], runner: CliRunner, tmp_path: Path
) -> None:
    boto3.client("s3").create_bucket(Bucket="datasets")
    config = tmp_path / "gone.yaml"
    config.write_text(
        "model: gone\ntask: regression\ndataset: {source: 's3://datasets/nope.csv', target: y}\n"
        "estimator: linear_regression\n"
    )
    result = invoke(runner, "train", str(config))
    assert result.exit_code == 1
    assert "s3://datasets/nope.csv" in result.stderr
    assert _audit_count(cli_env) == 1  # the fixture's config entry only


def test_in_aws_the_stage_alone_finds_the_platform_through_its_record(
    cli_env: dict[str, str], runner: CliRunner, monkeypatch: pytest.MonkeyPatch, trained: Path
) -> None:
    # Given the stage's record in SSM (the CDK app writes it) and no resource variables
    record = {"stage": "test", "environment": dict(cli_env), "api_url": ""}
    boto3.client("ssm").put_parameter(
        Name="/flywheel/flywheel-test/platform", Value=json.dumps(record), Type="String"
    )
    for variable in cli_env:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("FLYWHEEL_STAGE", "test")

    listed = invoke(runner, "models", "list")

    assert listed.exit_code == 0, listed.output
    assert "cancer" in listed.stdout
    # and a stage with no record is one line naming the parameter
    monkeypatch.setenv("FLYWHEEL_STAGE", "nowhere")
    missing = invoke(runner, "models", "list")
    assert missing.exit_code == 1
    assert "/flywheel/flywheel-nowhere/platform" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


SEARCH_CONFIG = CONFIG.replace(
    "hyperparameters: {C: 0.5, max_iter: 500}",
    "hyperparameters: {max_iter: 500}\nsearch: {method: grid, space: {C: [0.05, 0.5]}, folds: 3}",
)


def test_runs_list_and_compare_show_the_training_and_its_trials(
    cli_env: dict[str, str], runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(SEARCH_CONFIG)
    trained = invoke(runner, "train", str(config), "-r", "tuned")
    assert trained.exit_code == 0, trained.output
    assert "grid search: 2 trial(s) of 3-fold cross-validation" in trained.stdout

    listed = json.loads(invoke(runner, "runs", "list", "cancer", "--trials", "--json").stdout)
    run, first, second = listed
    assert (run["kind"], run["version"], run["search"]["trials"]) == ("training", 1, 2)
    assert [first["run_id"], second["run_id"]] == [f"{run['run_id']}.t001", f"{run['run_id']}.t002"]
    assert [first["parameters"]["C"], second["parameters"]["C"]] == [0.05, 0.5]
    table = invoke(runner, "runs", "list", "cancer")
    assert table.exit_code == 0
    assert run["run_id"] in table.stdout
    assert "cancer: 1 run(s), newest first" in table.stdout

    ids = [first["run_id"], second["run_id"], run["run_id"]]
    compared = json.loads(invoke(runner, "runs", "compare", *ids, "--json").stdout)
    assert compared["parameters"]["C"] == [0.05, 0.5, run["parameters"]["C"]]
    assert compared["metrics"]["cv_roc_auc"][:2] == [
        first["metrics"]["cv_roc_auc"],
        second["metrics"]["cv_roc_auc"],
    ]
    shown = invoke(runner, "runs", "compare", *ids)
    assert shown.exit_code == 0
    assert "cv_roc_auc" in shown.stdout
    assert "0.05" in shown.stdout


def test_comparing_an_unknown_run_is_one_line_and_exit_1(
    trained: Path, runner: CliRunner, cli_env: dict[str, str]
) -> None:
    (run,) = json.loads(invoke(runner, "runs", "list", "cancer", "--json").stdout)

    result = invoke(runner, "runs", "compare", run["run_id"], "cancer-20990101T000000-deadbeef")

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: run 'cancer-20990101T000000-deadbeef' not found"


def test_data_validate_compares_an_extract_with_the_registered_version(
    trained: Path, runner: CliRunner, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from flywheel.training.datasets import load_dataset
    from flywheel.workflows.training import dataset_csv

    # Given version 1 trained on breast cancer, and a new extract of its first 150 rows
    lines = dataset_csv(load_dataset("sklearn:breast_cancer")).decode().splitlines()
    (tmp_path / "extract.csv").write_text("\n".join(lines[:151]) + "\n")
    workflow = tmp_path / "cancer.model.yaml"
    workflow.write_text(
        WORKFLOW_CONFIG.replace(
            '{source: "sklearn:breast_cancer"}', '{source: "sklearn:breast_cancer", target: target}'
        )
    )

    same = invoke(runner, "data", "validate", str(workflow))
    fewer = invoke(
        runner, "data", "validate", str(workflow), "--data", str(tmp_path / "extract.csv"), "--json"
    )

    assert same.exit_code == 0, same.output
    assert "reference: latest version v1" in same.output
    assert fewer.exit_code == 1
    report = json.loads(fewer.stdout)
    assert report["reference"] == "latest version v1"
    failed = [r["check"] for r in report["results"] if r["status"] == "failed"]
    assert "row_count" in failed
