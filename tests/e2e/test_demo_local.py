"""The README's main path as a user runs it: separate CLI processes, one local moto server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from flywheel.local import server
from flywheel.local.lifecycle import APPROVER
from flywheel.local.lifecycle import MODEL as DEMO_MODEL
from tests.local_support import free_port_pair

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_env(local_runtime: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: this test's runtime port and home (stopped afterwards)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYWHEEL_"))}
    env.update({**local_runtime, "FLYWHEEL_ACTOR": "trainer@example.com", "OMP_NUM_THREADS": "1"})
    return env


def _flywheel(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _serve_and_post(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, Any]]:
    """Start `flywheel serve` in its own process and POST one record as curl would."""
    port = free_port_pair()
    record = json.loads((ROOT / "examples" / "record.json").read_text())
    serve = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/{DEMO_MODEL}/predict",
                data=json.dumps({"record": record}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read() or b"{}")
            except (urllib.error.URLError, ConnectionError):
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"flywheel serve did not answer: {serve.stdout}") from None
                time.sleep(0.2)
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _assert_one_prediction_was_explained(report: Path) -> None:
    """The demo explained one prediction: exact attributions, in log-odds, per feature."""
    explained = json.loads(report.read_text())["facts"]["explanation"]
    assert explained["method"] == "linear_shap"
    assert explained["space"] == "log_odds"
    assert len(explained["attributions"]) == 30


def _assert_the_model_card_was_written(reports: Path, said: str, env: dict[str, str]) -> None:
    """The demo wrote the champion's card and said where; the CLI prints the same card."""
    demo = json.loads((reports / "demo.json").read_text())
    card = demo["facts"]["model_card"]
    assert card["version"] == 1
    assert card["owner"] == "ml-platform-team"
    assert card["approved_by"] == APPROVER
    assert card["history"] == [
        "version_registered", "approval_requested", "approved", "canary_started", "promoted",
    ]  # fmt: skip
    assert card["chain_ok"] is True
    page = Path(card["html"]).read_text()
    assert page.startswith("<!doctype html>")
    assert 'id="importance"' in page
    assert "approved by arn:aws:iam::123456789012:user/ana.approver" in page
    assert f"model card of {DEMO_MODEL} v1: {card['html']}" in said
    # the retraining run's candidate was compared with the champion, importance included
    stages = {s["name"]: s["result"] for s in demo["stages"]}
    assert (
        "global importance vs champion v1: rank correlation "
        in (stages["DriftDetected → retraining run"])
    )
    shown = _flywheel(env, "models", "card", DEMO_MODEL, cwd=reports)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"# Model card: {DEMO_MODEL} v1\n")
    assert (reports / f"{DEMO_MODEL}-v1-card.md").read_text().splitlines()[:3] == (
        shown.stdout.splitlines()[:3]
    )


def _assert_the_prompt_lifecycle(prompt: dict[str, Any]) -> None:
    """Two prompt versions: v1 rolled out; v2's canary answered real calls, failed on its
    model, ran the budget out, and was rolled back by its alarm."""
    assert prompt["v1_promotion"] == {"status": "SUCCEEDED", "champion": 1}
    variants = prompt["variants"]
    assert set(variants) == {"champion", "canary"}  # both answered while the bake was held
    assert sum(variants.values()) % 10 == 0  # called in batches of ten until both answered
    assert prompt["while_failing"].get("502", 0) >= 1  # the canary's model failed
    assert prompt["canary_error_rate"] > 5
    refusal = prompt["budget_refusal"]["error"]
    assert refusal["code"] == "budget_exceeded"
    assert "budget prompt:ticket-summary (day " in refusal["message"]
    rolled = prompt["v2_promotion"]
    assert rolled["states"][-2:] == ["Rollback", "RolledBack"]
    assert rolled["champion"] == 1
    assert prompt["verified"] is True
    _assert_the_quality_monitor_rolled_the_toxic_canary_back(prompt)


def _assert_the_quality_monitor_rolled_the_toxic_canary_back(prompt: dict[str, Any]) -> None:
    """The next day's canary answered abusively: the quality monitor scored its calls,
    published LlmQualityDegraded (which reached the notifications) and its check rolled
    it back (ADR 82)."""
    quality = prompt["quality"]
    assert quality["outcome"] == "degraded"
    assert quality["scored"] >= 10  # the dev stage's min_scored
    assert quality["toxicity_rate"] > 0.9  # every canary answer was abusive
    assert quality["breaches"][0].startswith("toxicity_rate ")
    assert quality["event_id"]
    assert quality["report"].endswith(".html")
    assert "/reports/ticket-summary/quality/" in quality["report"]
    rolled = prompt["quality_promotion"]
    assert rolled["states"][-2:] == ["Rollback", "RolledBack"]
    assert rolled["champion"] == 1
    assert quality["notification"] == (
        f"Flywheel: prompt ticket-summary version {rolled['version']} (canary) answers worse "
        "in production"
    )


def _assert_the_evaluation_gate(gate: dict[str, Any]) -> None:
    """support-answer: the candidate whose answers repeat a promise the passages never
    make is rejected by its evaluation gate before its canary, with the figures and the
    unsupported sentence; the one that answers from the passages is promoted."""
    rejected = gate["rejected"]
    assert rejected["version"] == 1
    assert (rejected["status"], rejected["states"][-1]) == ("FAILED", "CandidateRejected")
    assert "PublishVersion" not in rejected["states"]  # no customer saw its answers
    assert (rejected["outcome"], rejected["version_status"]) == ("rejected", "rejected")
    assert rejected["items"] == 8
    assert rejected["groundedness"] < rejected["groundedness_min"] == 0.6
    reason = f"groundedness: mean {rejected['groundedness']:.3f} < groundedness_min 0.6"
    assert rejected["reasons"] == [reason]
    assert rejected["audited"] == {
        "action": "evaluation_rejected", "version": 1, "reasons": [reason],
    }  # fmt: skip
    unsupported = rejected["unsupported"][0]
    assert unsupported["sentence"].startswith("Our promise: every request is solved within 2")
    assert unsupported["note"] == "number 2 is not in the passage"
    promoted = gate["promoted"]
    assert promoted["version"] == 2
    assert promoted["outcome"] == "passed"
    assert promoted["groundedness"] >= promoted["groundedness_min"]
    assert promoted["toxicity_rate"] <= promoted["toxicity_rate_max"] == 0
    assert promoted["reasons"] == []
    assert promoted["status"] == "SUCCEEDED"
    assert promoted["states"][-2:] == ["PromoteAll", "Promoted"]
    assert "ShiftAlias" in promoted["states"]  # through its canary
    assert promoted["champion"] == 2
    assert promoted["verified"] is True


def _assert_monitor_reports_open(env: dict[str, str], cwd: Path) -> None:
    """The monitors' reports open from the CLI."""
    listed = _flywheel(env, "monitor", "reports", DEMO_MODEL, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    assert "performance" in listed.stdout
    assert "drift" in listed.stdout
    page = cwd / "performance.html"
    opened = _flywheel(
        env, "monitor", "open", DEMO_MODEL, "--kind", "performance", "--no-browser",
        "--output", str(page), cwd=cwd,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert "degraded: accuracy" in page.read_text()


def _assert_verified_against_anchors(env: dict[str, str], cwd: Path) -> None:
    """`flywheel audit verify` in its own process: intact, signed, and anchored."""
    verify = _flywheel(env, "audit", "verify", DEMO_MODEL, cwd=cwd)
    assert verify.returncode == 0, verify.stderr
    assert "OK" in verify.stdout
    said = " ".join(verify.stdout.split())
    assert "head signed by the audit writer; checked against" in said
    assert "anchor(s), the latest at entry" in said


def _assert_retrain_names_the_caller(env: dict[str, str], cwd: Path) -> None:
    """`flywheel retrain` goes through the retrain route: the caller is the requester."""
    asked = _flywheel(env, "retrain", DEMO_MODEL, "-r", "new labels", cwd=cwd)
    assert asked.returncode == 0, asked.stderr
    assert "requested by trainer@example.com" in " ".join(asked.stdout.split())
    unknown = _flywheel(env, "retrain", "never-configured", "-r", "x", cwd=cwd)
    assert unknown.returncode == 1
    assert "never-configured" in unknown.stderr


def test_demo_then_audit_verify_then_tampering_is_pinpointed(
    local_env: dict[str, str], tmp_path: Path
) -> None:
    # Given the demo ran against a local moto server
    demo = _flywheel(local_env, "demo", "--report-dir", str(tmp_path / "reports"), cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (tmp_path / "reports" / "demo.html").is_file()
    assert "audit chain intact" in " ".join(demo.stdout.split())  # rich wraps at 80
    _assert_one_prediction_was_explained(tmp_path / "reports" / "demo.json")
    # the demo's own check is the full one: a signed head and the scheduled job's anchors
    assert "head signed by the audit writer; checked against" in " ".join(demo.stdout.split())
    report = (tmp_path / "reports" / "demo.json").read_text()
    assert '"RequestApproval"' in report  # every state visited is in the run report
    facts = json.loads(report)["facts"]
    assert facts["labels_stored"] == 400  # every served row labelled through the API
    assert facts["labels_resent"] == [200, 409]  # the same label again; another label
    assert "is in progress" in facts["performance_suppressed"]
    # and the approvers were told what waits and how to decide it (the rule's message)
    assert "approvers notified: Flywheel: breast-cancer version 1 waits for approval" in (
        demo.stdout
    )
    notice = facts["approval_notification"]
    assert notice["topic"] == "flywheel-dev-notifications"
    assert f"flywheel approve {DEMO_MODEL} 1 -r REASON" in notice["text"]
    assert "POST /v1/approvals/" in notice["text"]
    assert "waits for approval" in (tmp_path / "reports" / "demo.html").read_text()
    _assert_the_model_card_was_written(tmp_path / "reports", demo.stdout, local_env)
    _assert_the_prompt_lifecycle(facts["prompt"])
    _assert_the_evaluation_gate(facts["prompt"]["gate"])
    # the LLM quality monitor's schedule fires on the simulated clock like the model monitors'
    drift_stage = next(s for s in json.loads(report)["stages"] if "drift scorer" in s["name"])
    assert "llm-monitor-schedule" in drift_stage["result"]
    told = _flywheel(local_env, "local", "notifications", cwd=tmp_path)
    assert told.returncode == 0, told.stderr
    assert f"flywheel approve {DEMO_MODEL} 1 -r REASON" in told.stdout

    _assert_monitor_reports_open(local_env, tmp_path)

    # When the audit trail is verified from a separate process, it is intact
    _assert_verified_against_anchors(local_env, tmp_path)
    _assert_retrain_names_the_caller(local_env, tmp_path)

    # And `flywheel serve` answers the champion's predictions on localhost (the README's curl)
    status, answer = _serve_and_post(local_env, tmp_path)
    assert status == 200, answer
    assert answer["model"] == DEMO_MODEL
    assert answer["version"] >= 1
    assert len(answer["predictions"]) == 1

    # When someone edits entry 3 directly in the table
    port = int(local_env["FLYWHEEL_LOCAL_PORT"])
    audit_table = server.control(port, "/resources")["environment"]["FLYWHEEL_AUDIT_TABLE"]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=server.endpoint(int(local_env["FLYWHEEL_LOCAL_PORT"])),
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    dynamodb.update_item(
        TableName=audit_table,
        Key={"pk": {"S": DEMO_MODEL}, "seq": {"N": "3"}},
        UpdateExpression="SET actor = :a",
        ExpressionAttributeValues={":a": {"S": "mallory@example.com"}},
    )

    # Then verify fails with exit code 3 and names that exact entry
    broken = _flywheel(local_env, "audit", "verify", DEMO_MODEL, cwd=tmp_path)
    assert broken.returncode == 3
    assert "entry 3: edited" in broken.stderr

    # When the demo runs again on the same (tampered) local runtime
    again = _flywheel(local_env, "demo", "--report-dir", str(tmp_path / "again"), cwd=tmp_path)

    # Then it starts from a clean slate: a fresh runtime, a new model, an intact audit chain
    assert again.returncode == 0, again.stdout + again.stderr
    assert "restarting the running local runtime" in again.stdout
    assert "audit chain intact" in " ".join(again.stdout.split())
    fresh = _flywheel(local_env, "audit", "verify", DEMO_MODEL, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
