"""Experiment runs behave the same in memory and on DynamoDB + S3 (moto): recorded, listed
newest first, found by id (trials too), linked to their version, compared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.s3_artifacts import S3ArtifactStore
from flywheel.registry.models import RecordKey, RecordWrite
from flywheel.runs.log import RunLog
from flywheel.runs.models import Run, RunKind, RunNotFoundError, trial_id
from tests.contract.conftest import Backend, boto3_session
from tests.factories import version_draft

BUCKET = "flywheel-contract-runs"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def log(backend: Backend) -> RunLog:
    if backend.kind == "memory":
        artifacts = InMemoryArtifactStore()
    else:
        client = boto3_session().client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        artifacts = S3ArtifactStore(BUCKET, client=client)
    return RunLog(backend.registry, artifacts, models=backend.registry)


def _run(run_id: str, minutes: int, **fields: object) -> Run:
    values: dict[str, object] = {
        "run_id": run_id,
        "model": "churn",
        "started_at": START + timedelta(minutes=minutes),
        "duration_seconds": 3.0,
        "estimator": "random_forest",
        "parameters": {"max_depth": 4},
        "metrics": {"roc_auc": 0.9},
        "dataset_sha256": "a" * 64,
        "actor": "ana",
        **fields,
    }
    return Run.model_validate(values)


def _trial(parent: str, number: int, depth: int, score: float) -> Run:
    return _run(
        trial_id(parent, number),
        0,
        kind=RunKind.TRIAL,
        parent=parent,
        parameters={"max_depth": depth},
        metrics={"cv_roc_auc": score},
    )


def test_runs_are_listed_newest_first_with_their_trials_on_request(log: RunLog) -> None:
    log.record(_run("churn-20260301T090000-00000001", 0))
    trials = [_trial("wf-run-2", 1, 2, 0.91), _trial("wf-run-2", 2, 8, 0.95)]
    stored = log.record(_run("wf-run-2", 5, search={"trials": 2}), trials)
    log.record(_run("churn-20260301T091000-00000003", 10))

    assert stored.trials is not None
    assert [r.run_id for r in log.runs("churn")] == [
        "churn-20260301T091000-00000003",
        "wf-run-2",
        "churn-20260301T090000-00000001",
    ]
    expanded = [r.run_id for r in log.runs("churn", trials=True)]
    assert expanded[1:4] == ["wf-run-2", "wf-run-2.t001", "wf-run-2.t002"]
    assert log.runs("other") == []


def test_a_run_is_found_by_id_alone_even_when_the_id_does_not_name_its_model(
    backend: Backend, log: RunLog
) -> None:
    backend.service.register(version_draft(name="churn"), actor="ana")
    log.record(_run("wf-run-2", 5), [_trial("wf-run-2", 1, 2, 0.91)])

    assert log.find("wf-run-2").model == "churn"
    assert log.find("wf-run-2.t001").parameters == {"max_depth": 2}
    with pytest.raises(RunNotFoundError, match=r"run 'wf-run-2\.t009' not found"):
        log.find("wf-run-2.t009")
    with pytest.raises(RunNotFoundError, match="run 'nope' not found"):
        log.find("nope")


def test_a_retried_step_replaces_its_run_and_a_registration_links_the_version(
    log: RunLog,
) -> None:
    log.record(_run("wf-run-2", 5, metrics={"roc_auc": 0.1}))
    log.record(_run("wf-run-2", 5, metrics={"roc_auc": 0.9}))

    linked = log.link_version("churn", "wf-run-2", 7)

    assert linked is not None
    assert log.get("churn", "wf-run-2").version == 7
    assert log.get("churn", "wf-run-2").metrics == {"roc_auc": 0.9}
    assert log.link_version("churn", "missing", 7) is None


def test_runs_compare_parameter_by_parameter(log: RunLog) -> None:
    log.record(
        _run("wf-run-2", 5), [_trial("wf-run-2", 1, 2, 0.91), _trial("wf-run-2", 2, 8, 0.95)]
    )

    table = log.compare(["wf-run-2.t001", "wf-run-2.t002", "wf-run-2"], model="churn")

    assert table.parameters == {"max_depth": (2, 8, 4)}
    assert table.metrics["cv_roc_auc"] == (0.91, 0.95, None)
    assert table.differing() == {"max_depth", "cv_roc_auc", "roc_auc"}


def test_record_listings_page_by_sort_key(backend: Backend) -> None:
    store = backend.registry
    for n in range(5):
        key = RecordKey(partition="MODEL#churn", sort=f"RUN#r{n}")
        store.put_record(RecordWrite(key=key, doc={"n": n}))
    store.put_record(RecordWrite(key=RecordKey(partition="MODEL#churn", sort="RUNLOCK"), doc={}))

    first = store.list_records("MODEL#churn", "RUN#", limit=3)
    rest = store.list_records("MODEL#churn", "RUN#", limit=3, page_token=first.next_token)

    assert [r.doc["n"] for r in first.items + rest.items] == [0, 1, 2, 3, 4]
    assert rest.next_token is None
