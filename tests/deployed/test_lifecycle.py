"""The model lifecycle on a stage, through the stage's outputs only: what CI runs after
each deploy (``pytest -m deployed``).

Everything is found from the stage's platform record and reached as its people: CI (the
ambient credentials) asks for training runs through the retrain route, an approver (a second
principal, ``FLYWHEEL_TEST_APPROVER_ROLE_ARN``) decides through the approvals route, an ML
engineer (``FLYWHEEL_TEST_OPERATOR_ROLE_ARN``) configures, scores over the API with SigV4,
rolls back and verifies; the ML engineer registers a prompt version through the registration
route with its evaluation set (a malformed line refused first), the approver approves it,
and once the promotion workflow's evaluation gate has answered the set and its canary has
rolled it out, it answers over the API. Here it runs against the local runtime
(``conftest.py``); with ``FLYWHEEL_BACKEND=aws FLYWHEEL_STAGE=dev``, against that stage,
where it touches no model but its own (``FLYWHEEL_TEST_MODEL``, named ``smoke-*``) and no
prompt but ``smoke-prompt`` (``project/prompts/``, declared in the stage's ``llm`` section).
Each asynchronous step is polled for at most ``FLYWHEEL_TEST_WAIT_SECONDS`` (a deployed
promotion bakes for the stage's ``bake_minutes``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import pytest

from flywheel.adapters.api_client import HttpApi
from flywheel.errors import FlywheelError, InvalidEvaluationSetError, ModelNotFoundError
from flywheel.llm.evaluation_sets import parse_evaluation_set
from flywheel.llm.prompts import load_prompt_file
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel

if TYPE_CHECKING:
    from flywheel.llm.prompts import PromptSpec
    from tests.deployed.conftest import StageUnderTest

pytestmark = pytest.mark.deployed

MODEL = os.environ.get("FLYWHEEL_TEST_MODEL", "smoke-lifecycle")
CONFIG = Path(__file__).parent / "project" / "models" / "smoke-lifecycle" / "model.yaml"
#: The suite's prompt (its name is the spec's: ``smoke-prompt``; declared in the project's
#: ``llm`` section, which gives it canary alarms and steps).
PROMPT_SPEC = Path(__file__).parent / "project" / "prompts" / "smoke-prompt.yaml"
T = TypeVar("T")


@dataclass(frozen=True)
class People:
    """The stage's people, each with their own credentials."""

    requester: Flywheel
    approver: Flywheel
    operator: Flywheel
    #: The ML engineer's credentials, for the API and the workflow's executions.
    operator_session: boto3.Session


def _wait_seconds() -> float:
    return float(os.environ.get("FLYWHEEL_TEST_WAIT_SECONDS", "1800"))


def _until(what: str, check: Callable[[], T | None], *, describe: Callable[[], str]) -> T:
    """Poll ``check`` until it returns something, backing off from 0.1 s to 5 s."""
    timeout = _wait_seconds()
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s; {describe()}")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def _assumed(role_arn: str, region: str) -> boto3.Session:
    sts: Any = boto3.client("sts", region_name=region)
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName="deployed-suite")["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


@pytest.fixture
def people(stage: StageUnderTest, record: dict[str, Any]) -> People:
    roles = {
        name: os.environ.get(name)
        for name in ("FLYWHEEL_TEST_APPROVER_ROLE_ARN", "FLYWHEEL_TEST_OPERATOR_ROLE_ARN")
    }
    missing = sorted(name for name, value in roles.items() if not value)
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (the roles the suite approves and operates as)")
    if not MODEL.startswith("smoke-"):
        pytest.fail(f"FLYWHEEL_TEST_MODEL={MODEL!r}: the suite only trains models named smoke-*")
    approver, operator = roles.values()
    assert approver is not None
    assert operator is not None
    return People(
        requester=Flywheel.for_stage(stage.name),
        approver=Flywheel.for_stage(stage.name, role_arn=approver),
        operator=Flywheel.for_stage(stage.name, role_arn=operator),
        operator_session=_assumed(operator, record["region"]),
    )


def _records(rows: int) -> list[dict[str, float]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return [
        {str(name): float(value) for name, value in zip(data.feature_names, row, strict=True)}
        for row in data.data[:rows]
    ]


def _latest(sdk: Flywheel) -> int:
    try:
        return sdk.get_model(MODEL).latest_version
    except ModelNotFoundError:
        return 0


def _trail(sdk: Flywheel, name: str = MODEL) -> str:
    entries = sdk.audit_entries(name)[-4:]
    return "last audit entries: " + "; ".join(
        f"{e.action} v{e.version} by {e.actor}: {e.reason or ''}" for e in entries
    )


def _pending(sdk: Flywheel, version: int) -> str | None:
    """The id of the approval waiting on ``version``, if one waits."""
    found = sdk.platform.approval_service().find_for_version(MODEL, version)
    return found[0].approval_id if found and str(found[0].status) == "pending" else None


def _clear_leftovers(people: People) -> None:
    """Reject what an interrupted earlier run left waiting (a deployed stage keeps it)."""
    latest = _latest(people.operator)
    if latest and _pending(people.operator, latest):
        people.approver.reject(MODEL, latest, reason="deployed suite: left by an earlier run")


def _train(people: People, reason: str) -> int:
    """Ask for a run as CI; the new version, once its approval waits."""
    before = _latest(people.operator)
    receipt = people.requester.retrain(MODEL, reason=reason)
    # The route named the caller from the signature: CI is the run's requester.
    assert receipt["requested_by"] == people.requester.actor

    def waiting() -> int | None:
        latest = _latest(people.operator)
        return latest if latest > before and _pending(people.operator, latest) else None

    version = _until(
        "a new version waiting for approval", waiting, describe=lambda: _trail(people.operator)
    )
    assert people.operator.get_version(MODEL, version).status is VersionStatus.PENDING_APPROVAL
    return version


def _promoted(people: People, record: dict[str, Any], version: int, name: str = MODEL) -> None:
    """Wait for the promotion workflow of ``version`` (canary, bake, checks) to finish."""
    sfn: Any = people.operator_session.client("stepfunctions")
    machine = record["state_machines"]["promotion"]

    def finished() -> str | None:
        for execution in sfn.list_executions(stateMachineArn=machine, maxResults=20)["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            payload = json.loads(described.get("input") or "{}")
            if payload.get("model_name") == name and payload.get("version") == version:
                return None if described["status"] == "RUNNING" else str(described["status"])
        return None

    status = _until(
        f"the promotion of {name} version {version}",
        finished,
        describe=lambda: _trail(people.operator, name),
    )
    assert status == "SUCCEEDED", _trail(people.operator, name)
    assert people.operator.get_model(name).champion == version


def test_a_model_is_trained_approved_promoted_served_rolled_back_and_verified(
    stage: StageUnderTest, record: dict[str, Any], people: People
) -> None:
    api = HttpApi(record["api_url"], session=people.operator_session, region=record["region"])
    rows = _records(5)
    # Given the suite's model, configured by the ML engineer, with nothing left waiting;
    people.operator.configure_model(MODEL, CONFIG, reason="deployed suite: lifecycle")
    _clear_leftovers(people)

    # When CI asks for a first version and the approver approves it through the API,
    first = _train(people, "deployed suite: first version")
    waiting = _pending(people.operator, first)
    assert waiting is not None
    as_ci = HttpApi(record["api_url"], session=boto3.Session(), region=record["region"])
    with pytest.raises(FlywheelError, match="not authorized"):  # CI is no approver
        as_ci.decide(waiting, decision="approve", reason="my own run")
    assert people.operator.get_version(MODEL, first).status is VersionStatus.PENDING_APPROVAL
    people.approver.approve(MODEL, first, reason="deployed suite: metrics reviewed")

    # Then the promotion workflow makes it the champion, and the API serves it: the
    # registered model's own predictions (its ONNX artifact, checked against its SHA-256).
    _promoted(people, record, first)
    served = api.predict(MODEL, rows)
    assert served["version"] == first
    assert served["predictions"] == people.operator.predict(MODEL, rows, version=first).predictions

    # When a second version goes the same way, then the ML engineer rolls back,
    second = _train(people, "deployed suite: second version")
    people.approver.approve(MODEL, second, reason="deployed suite: metrics reviewed")
    _promoted(people, record, second)
    assert api.predict(MODEL, rows)["version"] == second
    rolled = people.operator.rollback(MODEL, reason="deployed suite: rollback drill")

    # Then the first version is the champion again and alias live serves it at once;
    assert rolled.version.version == first
    assert people.operator.get_model(MODEL).champion == first
    assert api.predict(MODEL, rows)["version"] == first
    # And the audit trail verifies, and names who approved and who rolled back.
    report = people.operator.verify(MODEL)
    assert report.ok, report.problems
    decisions = [(str(e.action), e.actor, e.version) for e in people.operator.audit_entries(MODEL)]
    assert ("approved", people.approver.actor, first) in decisions
    assert ("approved", people.approver.actor, second) in decisions
    assert ("rolled_back", people.operator.actor, first) in decisions


def _prompt_spec() -> PromptSpec:
    """The suite's prompt with this run's mark in its description: a new version each run
    (a deployed stage keeps the versions of earlier runs)."""
    spec = load_prompt_file(PROMPT_SPEC)
    if not spec.name.startswith("smoke-"):
        pytest.fail(f"{PROMPT_SPEC.name}: the suite only registers prompts named smoke-*")
    run = time.strftime("%Y%m%dT%H%M%S")
    return spec.model_copy(update={"description": f"{spec.description} Run {run}."})


def _latest_prompt_version(people: People, name: str) -> int:
    """The prompt's latest version (0: none yet)."""
    try:
        return int(people.operator.get_prompt(name).latest_version)
    except ModelNotFoundError:
        return 0


def _clear_prompt_leftovers(people: People, name: str) -> None:
    """Reject a version an interrupted earlier run left waiting for approval."""
    try:
        latest = people.operator.get_prompt(name).latest_version
    except ModelNotFoundError:
        return
    found = people.operator.platform.approval_service().find_for_version(name, latest)
    if found is not None and str(found[0].status) == "pending":
        people.approver.reject_prompt(name, latest, reason="deployed suite: left by an earlier run")


def _with_a_bad_set_line(spec: PromptSpec, directory: Path) -> PromptSpec:
    """``spec`` naming a copy of its evaluation set whose second line lacks the variable."""
    assert spec.evaluation is not None
    assert spec.evaluation.set is not None
    lines = Path(spec.evaluation.set).read_text(encoding="utf-8").split("\n")
    lines[1] = '{"id": "no-ticket", "variables": {}}'
    bad = directory / "smoke-prompt.eval.jsonl"
    bad.write_text("\n".join(lines), encoding="utf-8")
    evaluation = spec.evaluation.model_copy(update={"set": str(bad)})
    return spec.model_copy(update={"evaluation": evaluation})


def test_a_prompt_is_registered_through_the_route_approved_rolled_out_and_answers(
    stage: StageUnderTest, record: dict[str, Any], people: People, tmp_path: Path
) -> None:
    spec = _prompt_spec()
    _clear_prompt_leftovers(people, spec.name)
    assert spec.evaluation is not None
    assert spec.evaluation.set is not None
    expected = parse_evaluation_set(Path(spec.evaluation.set).read_bytes(), spec)
    before = _latest_prompt_version(people, spec.name)

    # When the ML engineer sends an evaluation set with a malformed line, the route refuses
    # it naming the line and the field, and registers nothing;
    with pytest.raises(InvalidEvaluationSetError) as refused:
        people.operator.register_prompt(
            _with_a_bad_set_line(spec, tmp_path), reason="deployed suite: a bad set"
        )
    assert str(refused.value) == "evaluation_set line 2: variables.ticket: required"
    assert _latest_prompt_version(people, spec.name) == before

    # When the ML engineer registers a version with its set (the stage's registration route
    # checks the set, stores it next to the spec, seals its digest in the version,
    # registers it and asks for its approval, as the signed caller),
    done = people.operator.register_prompt(spec, reason="deployed suite: prompt version")
    version = done.version.version

    # Then the version holds the set as a local registration seals it,
    assert done.spec.evaluation is not None
    assert (done.spec.evaluation.sha256, done.spec.evaluation.items) == (expected.sha256, 3)
    stored = people.operator.prompt(spec.name, version).spec.evaluation
    assert stored == done.spec.evaluation
    # it waits for someone else's approval, and the trail names the ML engineer;
    assert done.created
    assert done.version.status is VersionStatus.PENDING_APPROVAL
    assert done.version.artifact.uri.split("/", 3)[3].startswith(f"prompts/{spec.name}/")
    asked = [
        (str(e.action), e.actor)
        for e in people.operator.audit_entries(spec.name)
        if e.version == version
    ]
    assert asked == [
        ("version_registered", people.operator.actor),
        ("approval_requested", people.operator.actor),
    ]
    # registering the same spec again writes nothing and answers that version.
    again = people.operator.register_prompt(spec, reason="deployed suite: the same again")
    assert (again.created, again.version.version) == (False, version)
    assert again.approval_id == done.approval_id

    # When the approver approves it, the promotion workflow rolls it out (canary, bake,
    # alarms) and makes it the champion;
    people.approver.approve_prompt(spec.name, version, reason="deployed suite: reviewed")
    _promoted(people, record, version, spec.name)
    # after its evaluation gate answered the set the route stored (ADR 81, 84);
    evaluation = people.operator.prompt_evaluation(spec.name, version)
    assert evaluation is not None
    assert evaluation.report is not None
    assert (evaluation.outcome, evaluation.set_sha256) == ("passed", expected.sha256)
    assert evaluation.report.items == 3

    # Then the gateway answers calls over the API with it, signed as the ML engineer.
    api = HttpApi(record["api_url"], session=people.operator_session, region=record["region"])
    ticket = "The export to CSV fails for every report since this morning."
    answer = api.post(
        "/v1/prompts/{name}/invoke", {"name": spec.name}, {"variables": {"ticket": ticket}}
    )
    assert (answer["prompt"], answer["version"], answer["variant"]) == (
        spec.name,
        version,
        "champion",
    )
    assert answer["text"]
    assert answer["usage"]["input_tokens"] > 0
    report = people.operator.verify(spec.name)
    assert report.ok, report.problems
    decisions = [(str(e.action), e.actor) for e in people.operator.audit_entries(spec.name)
                 if e.version == version]  # fmt: skip
    assert ("approved", people.approver.actor) in decisions
