"""``flywheel prompts``: register, approve by someone else, promote, show, diff, roll back;
bad input is one line naming the problem, a non-zero exit, and nothing written. In a
deployed stage ``register`` goes through the stage's registration route."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.adapters.api_client import PROMPT_VERSIONS, LambdaApi
from flywheel.cli import app as cli
from flywheel.composition import InMemoryPlatform
from flywheel.llm.prompts import parse_prompt
from flywheel.sdk import Flywheel
from tests.factories import version_draft

if TYPE_CHECKING:
    from flywheel.workflows.ports import PlatformApi

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"
V1, V2 = EXAMPLES / "ticket-summary.v1.yaml", EXAMPLES / "ticket-summary.v2.yaml"
NAME = "ticket-summary"


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> InMemoryPlatform:
    shared = InMemoryPlatform()
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(shared, actor=cli.STATE.actor or "ana"))
    return shared


def _run(*args: str, actor: str = "ana") -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["--actor", actor, "prompts", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_lifecycle_from_the_shell(platform: InMemoryPlatform) -> None:
    code, out, _ = _run("register", str(V1), "-r", "first version")
    assert code == 0
    assert f"registered {NAME} v1 (pending_approval)" in out
    assert f"flywheel prompts approve {NAME} 1" in out
    assert _run("register", str(V2))[0] == 0

    code, _, err = _run("approve", NAME, "1", "-r", "mine")
    assert code == 1
    assert err.strip().startswith("error: the approver is the principal that requested")
    assert _run("approve", NAME, "1", "-r", "reviewed", actor="bo")[0] == 0
    assert _run("approve", NAME, "2", "-r", "reviewed", actor="bo")[0] == 0
    assert _run("promote", NAME, "1", "-r", "first champion", actor="bo")[1].strip() == (
        f"{NAME} champion is v1"
    )
    assert _run("promote", NAME, "2", "-r", "json answers", actor="bo")[0] == 0

    _, listed, _ = _run("list")
    assert NAME in listed
    _, shown, _ = _run("show", NAME)
    assert "champion" in shown
    _, versions, _ = _run("show", NAME, "--json")
    listed_versions = json.loads(versions)["versions"]
    assert [v["tags"]["model_id"] for v in listed_versions] == [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.nova-lite-v1:0",
    ]
    assert [v["status"] for v in listed_versions] == ["archived", "production"]
    _, one, _ = _run("show", NAME, "--version", "champion")
    assert one.startswith(f"{NAME} v2 production, sha256 ")
    assert "template: |" in one
    _, as_json, _ = _run("show", NAME, "--version", "1", "--json")
    assert json.loads(as_json)["spec"]["model_id"] == "anthropic.claude-3-haiku-20240307-v1:0"

    code, diff, _ = _run("diff", NAME, "1", "champion")
    assert code == 0
    assert f"{NAME}: v1 -> v2" in diff
    assert "-Summarize this ticket in at most {{ max_sentences }} sentences:" in diff
    assert "parameters.max_tokens: 300 -> 200" in diff
    assert 'model_id: "anthropic.claude-3-haiku-20240307-v1:0" -> "amazon.nova-lite-v1:0"' in diff

    code, out, _ = _run("rollback", NAME, "-r", "JSON answers confused the pager", actor="bo")
    assert (code, out.strip()) == (0, f"{NAME} champion is v1 again")
    actions = [str(e.action) for e in Flywheel(platform, actor="x").audit_entries(NAME)]
    assert actions[-3:] == ["promoted", "promoted", "rolled_back"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: [", "error: prompt: invalid YAML at line"),
        (V1.read_text().replace("max_tokens: 300", "max_tokens: -1"), "parameters.max_tokens"),
        (V1.read_text().replace("{{ ticket }}", "{{ tickets }}"), "{{ tickets }} is not a"),
        (
            V1.read_text().replace("anthropic.claude-3-haiku-20240307-v1:0", "acme.llm-v9"),
            "model_id: bedrock model 'acme.llm-v9' has no price",
        ),
    ],
)
def test_a_bad_spec_is_one_line_and_registers_nothing(
    platform: InMemoryPlatform, tmp_path: Path, content: str, message: str
) -> None:
    spec = tmp_path / "prompt.yaml"
    spec.write_text(content)

    code, out, err = _run("register", str(spec))

    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert Flywheel(platform, actor="x").list_prompts().items == []


def test_missing_files_names_and_reasons_are_errors(platform: InMemoryPlatform) -> None:
    assert _run("register", "nope.yaml")[2].startswith("error: prompt file nope.yaml does not")
    assert _run("show", "nope")[2].strip() == "error: prompt 'nope' does not exist"
    _run("register", str(V1))
    code, _, err = _run("promote", NAME, "1", actor="bo")
    assert code == 1
    assert "reason is required" in err
    code, _, err = _run("promote", NAME, "1", "-r", "skip approval", actor="bo")
    assert code == 1
    assert "pending_approval" in err


# -- in a deployed stage: through the registration route --------------------------------------
#: Who the stage's API says the caller is (the SigV4 identity); the SDK acts as it too.
SIGNED = "arn:aws:sts::123456789012:assumed-role/flywheel-prod-data-scientist/ana"


class RouteFunction:
    """Lambda as API Gateway reaches the route's function: the real handler, on the
    in-memory platform (``LambdaApi`` builds the REST proxy event with the caller)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def invoke(self, *, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        from functions.prompt_api import handler
        from tests.asl_walker import FakeContext

        request = json.loads(Payload)
        self.bodies.append(json.loads(request["body"]))
        answer = handler.handler(request, FakeContext(FunctionName))
        return {"Payload": io.BytesIO(json.dumps(answer).encode())}


class DeployedStage(InMemoryPlatform):
    """A stage whose people reach the registration route through its API."""

    def __init__(self) -> None:
        super().__init__()
        self.route = RouteFunction()

    def deployed_api(self) -> PlatformApi:
        return LambdaApi({PROMPT_VERSIONS: "prompt-api"}, actor=SIGNED, client=self.route)  # type: ignore[arg-type]


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> DeployedStage:
    from functions.prompt_api import handler

    stage = DeployedStage()
    monkeypatch.setattr(cli, "_sdk", lambda: Flywheel(stage, actor=SIGNED))
    monkeypatch.setattr(handler, "_registrations", stage.prompt_registrations)
    # The function's metrics go to its log in Lambda; here they would land in the output.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    # Its log handler holds the stream that was sys.stdout when the module was imported,
    # possibly a CliRunner's closed one: its records go to the test's own buffer instead.
    for log_handler in handler.logger.handlers:
        if isinstance(log_handler, logging.StreamHandler):
            monkeypatch.setattr(log_handler, "stream", io.StringIO())
    return stage


def _register(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["prompts", "register", *args])
    return result.exit_code, result.stdout, result.stderr


def test_in_a_deployed_stage_register_goes_through_the_route_as_the_signed_caller(
    deployed: DeployedStage,
) -> None:
    code, out, _ = _register(str(V1), "-r", "first version")

    assert code == 0, out
    assert f"registered {NAME} v1 (pending_approval)" in out
    assert f"flywheel prompts approve {NAME} 1" in out
    [body] = deployed.route.bodies
    assert body == {"spec": parse_prompt(yaml.safe_load(V1.read_text())).model_dump(mode="json"),
                    "reason": "first version"}  # fmt: skip
    entries = Flywheel(deployed, actor="x").audit_entries(NAME)
    assert [(str(e.action), e.actor) for e in entries] == [
        ("version_registered", SIGNED),
        ("approval_requested", SIGNED),
    ]

    code, out, _ = _register(str(V1), "-r", "again")
    assert code == 0
    assert out.startswith(f"unchanged: the latest version holds this spec; {NAME} v1")
    assert len(Flywheel(deployed, actor="x").audit_entries(NAME)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((str(V1),), "error: a reason is required to register a prompt version in a deployed"),
        (
            ("{bad}", "-r", "new model"),
            "error: model_id: bedrock model 'acme.llm-v9' has no price in the price table",
        ),
    ],
    ids=["no reason", "no price"],
)
def test_in_a_deployed_stage_what_the_route_would_refuse_is_one_line_before_calling_it(
    deployed: DeployedStage, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    bad = tmp_path / "prompt.yaml"
    bad.write_text(V1.read_text().replace("anthropic.claude-3-haiku-20240307-v1:0", "acme.llm-v9"))

    code, out, err = _register(*(str(bad) if a == "{bad}" else a for a in args))

    assert (code, out) == (1, "")
    assert err.strip().startswith(message)
    assert len(err.strip().splitlines()) == 1
    assert deployed.route.bodies == []


def test_in_a_deployed_stage_the_routes_refusal_is_one_line(
    deployed: DeployedStage, tmp_path: Path
) -> None:
    Flywheel(deployed, actor="ci").registry.register(version_draft(name=NAME), actor="ci")

    code, out, err = _register(str(V1), "-r", "reuse the name")

    assert (code, out) == (1, "")
    assert err.strip() == (
        f"error: '{NAME}' holds model versions, not prompt versions; choose another name"
    )
    assert len(deployed.route.bodies) == 1


RAG_V1, RAG_V2 = EXAMPLES / "support-answer.v1.yaml", EXAMPLES / "support-answer.v2.yaml"


def test_a_version_with_an_evaluation_set_shows_its_gate(
    platform: InMemoryPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.workflows.state import PromotionState
    from tests.evaluator_support import fake_evaluators

    code, out, _ = _run("register", str(RAG_V1))
    assert code == 0
    assert "evaluation set: 8 items, sha256 " in out
    _, before, _ = _run("show", "support-answer", "--version", "1")
    assert before.rstrip().endswith("evaluation gate: not run yet (its promotion workflow runs it)")
    assert (
        json.loads(_run("show", "support-answer", "--version", "1", "--json")[1])["evaluation"]
        is None
    )
    # Its promotion workflow runs the gate (here: the step alone, the champion v1 in place)
    monkeypatch.setattr(
        InMemoryPlatform, "prompt_evaluators", lambda _s, thresholds=None: fake_evaluators()
    )
    _run("approve", "support-answer", "1", "-r", "ok", actor="bo")
    _run("promote", "support-answer", "1", "-r", "first", actor="bo")
    _run("register", str(RAG_V2))
    _run("approve", "support-answer", "2", "-r", "ok", actor="bo")
    state = PromotionState.model_validate({"model_name": "support-answer", "version": 2, "run": {
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:promotion:p-7",
        "execution_name": "p-7", "started_at": "2026-01-01T00:00:00Z",
        "state_machine": "promotion"}})  # fmt: skip
    platform.evaluation_gate().evaluate_candidate(state)

    code, shown, _ = _run("show", "support-answer", "--version", "2")

    assert code == 0
    assert "evaluation gate: rejected (" in shown
    assert "  8 items, set sha256 " in shown
    assert "champion v1" in shown
    assert "  groundedness    0.310 (25% pass) 1.000 (100% pass)  -0.690 [-0.812, -0.567] on 8" in (
        shown
    )
    assert "  format                not judged        not judged  -" in shown
    assert "  worst answers (groundedness):" in shown
    as_json = json.loads(_run("show", "support-answer", "--version", "2", "--json")[1])
    assert as_json["evaluation"]["outcome"] == "rejected"
    assert as_json["evaluation"]["report"]["evaluators"][1]["interval"]["confidence"] == 0.9


def test_a_bad_evaluation_set_line_is_one_error_line(
    platform: InMemoryPlatform, tmp_path: Path
) -> None:
    (tmp_path / "support-answer.eval.jsonl").write_text(
        RAG_V1.with_name("support-answer.eval.jsonl").read_text()
        + '{"variables": {"question": "q"}, "context": "x", "must_include": "5 days"}\n'
    )
    spec = tmp_path / "support-answer.yaml"
    spec.write_text(RAG_V1.read_text())

    code, out, err = _run("register", str(spec))

    assert (code, out) == (1, "")
    assert err.strip() == (
        "error: evaluation.set line 9: must_include: Input should be a valid tuple"
    )
    assert Flywheel(platform, actor="x").list_prompts().items == []


# -- an evaluation set through the route (ADR 84) ----------------------------------------------
ANSWER = EXAMPLES / "support-answer.v1.yaml"
SET_FILE = EXAMPLES / "support-answer.eval.jsonl"


def _answer_spec_with(tmp_path: Path, set_text: str) -> Path:
    """support-answer v1 next to an evaluation set of ``set_text``."""
    (tmp_path / "support-answer.eval.jsonl").write_text(set_text, encoding="utf-8")
    spec = tmp_path / "support-answer.yaml"
    spec.write_text(ANSWER.read_text(), encoding="utf-8")
    return spec


def test_in_a_deployed_stage_the_evaluation_set_travels_with_the_spec_and_is_sealed(
    deployed: DeployedStage,
) -> None:
    code, out, _ = _register(str(ANSWER), "-r", "with its set")

    assert code == 0, out
    said = " ".join(out.split())
    assert "registered support-answer v1 (pending_approval)" in said
    # The same items and digest a local registration of the files seals
    local = Flywheel(InMemoryPlatform(), actor="ana").register_prompt(ANSWER, reason="here")
    assert local.spec.evaluation is not None
    sealed = local.spec.evaluation
    assert sealed.sha256 is not None
    assert f"evaluation set: {sealed.items} items, sha256 {sealed.sha256[:12]}…" in said
    [body] = deployed.route.bodies
    assert body["evaluation_set"] == SET_FILE.read_text(encoding="utf-8").split("\n")
    assert body["spec"]["evaluation"]["set"] == SET_FILE.name  # no path of this machine
    there = Flywheel(deployed, actor="x")
    version = there.get_version("support-answer", 1)
    assert version.artifact.sha256 == local.version.artifact.sha256
    found = there.prompt("support-answer", 1)
    read_back = there.prompts.evaluation_set(found)
    assert read_back is not None
    assert read_back.sha256 == sealed.sha256


def test_in_a_deployed_stage_a_malformed_set_line_is_the_routes_one_line_naming_it(
    deployed: DeployedStage, tmp_path: Path
) -> None:
    lines = SET_FILE.read_text(encoding="utf-8").split("\n")
    lines[2] = '{"id": "x", "variables": {"question": "Q?", "passage": "typo"}}'
    spec = _answer_spec_with(tmp_path, "\n".join(lines))

    code, out, err = _register(str(spec), "-r", "typo")

    assert (code, out) == (1, "")
    assert err.strip().startswith("error: evaluation_set line 3: variables.passage: ")
    assert len(err.strip().splitlines()) == 1
    assert len(deployed.route.bodies) == 1
    assert Flywheel(deployed, actor="x").list_prompts().items == []


def test_in_a_deployed_stage_a_set_over_the_routes_limit_is_refused_before_calling_it(
    deployed: DeployedStage, tmp_path: Path
) -> None:
    from flywheel.llm.registration import MAX_ROUTE_SET_BYTES

    line = SET_FILE.read_text(encoding="utf-8").split("\n")[0]
    spec = _answer_spec_with(tmp_path, "\n".join([line] * (MAX_ROUTE_SET_BYTES // len(line) + 1)))

    code, out, err = _register(str(spec), "-r", "big")

    assert (code, out) == (1, "")
    assert err.strip().startswith("error: evaluation_set: ")
    assert f"takes at most {MAX_ROUTE_SET_BYTES}" in " ".join(err.split())
    assert deployed.route.bodies == []
