"""A prompt on the local runtime (the synthesized app on moto): registered through the
records writer, announced to the approvers, approved by someone else through the
approval function, promoted by the promotion workflow that approval starts, shown,
compared, answered through Bedrock's Converse (the local stand-in), rolled back, and
every step in the signed, verified audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.composition import AwsPlatform
from flywheel.errors import ApproverNotAllowedError
from flywheel.llm.prices import default_prices
from flywheel.llm.prompts import render
from flywheel.llm.providers import request_for
from flywheel.local.lifecycle import InProcessDriver
from flywheel.local.runtime import MOTO_CONFIG, LocalRuntime
from flywheel.registry.models import Alias, VersionStatus
from flywheel.sdk import Flywheel
from tests.prompt_support import declare_prompt_canary, promotion_of

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "prompts"
NAME = "ticket-summary"
ANA = "arn:aws:iam::123456789012:user/ana.author"
BO = "arn:aws:iam::123456789012:user/bo.approver"
TICKET = {
    "customer": "ACME Corp",
    "area": "login",
    "ticket": "Since this morning nobody can sign in: the SSO page answers HTTP 500.",
}


@pytest.fixture
def runtime(aws_env: dict[str, str]) -> Iterator[LocalRuntime]:
    from moto import mock_aws

    with mock_aws(config=MOTO_CONFIG), LocalRuntime() as started:
        declare_prompt_canary(started, NAME, [(0.2, 10)])
        yield started


def _person(runtime: LocalRuntime, actor: str) -> Flywheel:
    return Flywheel(AwsPlatform(InProcessDriver(runtime).settings), actor=actor)


def test_a_prompt_from_registration_to_rollback_on_the_local_runtime(
    runtime: LocalRuntime,
) -> None:
    ana, bo = _person(runtime, ANA), _person(runtime, BO)

    # Given two versions registered by their author
    first = ana.register_prompt(EXAMPLES / "ticket-summary.v1.yaml", reason="first cut")
    second = ana.register_prompt(EXAMPLES / "ticket-summary.v2.yaml", reason="JSON answers")
    assert (first.version.version, second.version.version) == (1, 2)
    assert second.version.status is VersionStatus.PENDING_APPROVAL
    told = [n for n in runtime.notifications() if n["detail_type"] == "ApprovalRequested"]
    assert len(told) == 2
    assert f"flywheel prompts approve {NAME} 1" in told[0]["message"]
    # (written by the records writer, which checked every approval record it was sent)
    writes = [i for i in runtime.bridge.invocations if i.function.endswith("-records-writer")]
    assert len(writes) >= 6
    assert all(i.error is None for i in writes)

    # When the author tries to approve, then someone else approves each version, whose
    # promotion workflow rolls it out (a canary at 20 %, judged by its alarms)
    with pytest.raises(ApproverNotAllowedError, match="requested this run"):
        ana.approve_prompt(NAME, 1, reason="looks right to me")
    for number, reason in ((1, "template reviewed"), (2, "schema reviewed")):
        bo.approve_prompt(NAME, number, reason=reason)
        promotion = promotion_of(runtime, number - 1)
        assert promotion.status == "SUCCEEDED", promotion
        assert promotion.states[-2:] == ["PromoteAll", "Promoted"]

    # Then the champion is version 2, its spec read back verified, the diff says what changed
    champion = bo.prompt(NAME, Alias.CHAMPION)
    assert (champion.version.version, champion.spec.model_id) == (2, "amazon.nova-lite-v1:0")
    diff = bo.diff_prompts(NAME, 1, 2)
    assert any(line.startswith("+Summarize this ticket") for line in diff.template)
    changed = {c.field: (c.before, c.after) for c in diff.changes}
    assert changed["parameters.max_tokens"] == (300, 200)
    assert changed["model_id"] == (
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.nova-lite-v1:0",
    )

    # The champion answers through Bedrock's Converse API, answered by the stand-in here
    rendered = render(champion.spec, TICKET)
    answer = bo.platform.llm_provider(champion.spec.provider).complete(
        request_for(champion.spec, rendered)
    )
    assert set(json.loads(answer.text)) == {"summary", "urgency"}
    assert runtime.llm.requests[-1]["modelId"] == "amazon.nova-lite-v1:0"
    cost = default_prices().cost(answer.usage, champion.spec.model_id, champion.spec.provider)
    assert cost > 0

    # When it is rolled back
    restored = bo.rollback_prompt(NAME, reason="the pager cannot parse JSON yet")

    # Then version 1 serves again, and the trail holds every step, signed and verified
    assert restored.version == 1
    assert bo.get_version(NAME, 2).status is VersionStatus.ROLLED_BACK
    trail = [
        (str(e.action), "workflow" if e.actor.startswith("workflow:") else e.actor, e.version)
        for e in bo.audit_entries(NAME)
    ]
    assert trail == [
        ("version_registered", ANA, 1),
        ("approval_requested", ANA, 1),
        ("version_registered", ANA, 2),
        ("approval_requested", ANA, 2),
        ("approval_refused", ANA, 1),
        ("approved", BO, 1),
        ("canary_started", "workflow", 1),
        ("promoted", "workflow", 1),
        ("approved", BO, 2),
        ("canary_started", "workflow", 2),
        ("promoted", "workflow", 2),
        ("rolled_back", BO, 1),
    ]
    report = bo.verify(NAME)
    assert report.ok, report.problems
    assert bo.audit_head(NAME) is not None
    assert bo.audit_head(NAME).mac is not None  # type: ignore[union-attr]
