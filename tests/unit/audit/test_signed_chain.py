"""An insider who can write the audit store but not use the audit writer's key.

Each attack is played on the in-memory adapters (the local-runtime versions are in
``tests/e2e/test_insider_attacks_local.py``): the chain is rewritten with plain writes,
and ``verify`` must say so and name the entry.
"""

from __future__ import annotations

import pytest

from flywheel.adapters.memory import InMemoryAuditLog
from flywheel.audit.chain import ProblemKind
from flywheel.audit.models import AuditAction, AuditDraft, ChainHead, seal
from flywheel.registry.models import VersionStatus
from flywheel.sdk import Flywheel
from tests.factories import version_draft

MODEL = "churn"


@pytest.fixture
def fw() -> Flywheel:
    """A model with a champion (7 audit entries), anchored once."""
    sdk = Flywheel.in_memory(actor="ops")
    for seed in range(2):
        number = _register(sdk, seed)
        sdk.registry.request_approval(MODEL, number, actor="ci")
        sdk.registry.approve(MODEL, number, actor="ana", reason="ok")
    sdk.promote(MODEL, 1, reason="launch")
    assert [o.result for o in sdk.anchor()] == ["anchored"]
    return sdk


def _register(fw: Flywheel, seed: int = 0) -> int:
    ref = fw.artifacts.put(f"models/{MODEL}/{seed}/model.onnx", f"model {seed}".encode())
    return fw.registry.register(version_draft(name=MODEL, artifact=ref), actor="ci").version


def _log(fw: Flywheel) -> InMemoryAuditLog:
    log = fw.platform.audit
    assert isinstance(log, InMemoryAuditLog)
    return log


def _kinds(fw: Flywheel) -> list[tuple[int, ProblemKind]]:
    return [(p.seq, p.kind) for p in fw.verify(MODEL).problems]


def test_an_untouched_chain_verifies_signed_and_anchored(fw: Flywheel) -> None:
    report = fw.verify(MODEL)

    assert report.ok, report.problems
    assert report.signature_checked
    assert report.anchor is not None
    assert report.anchor.seq == report.head.seq == 7  # type: ignore[union-attr]


def test_rewrite_and_reseal_is_caught_by_the_signature_and_the_anchor(fw: Flywheel) -> None:
    # Given an insider rewrites entry 3's actor and re-seals every later link and the head
    log = _log(fw)
    chain = log.chains[MODEL]
    resealed = chain[:2]
    for entry in chain[2:]:
        draft = AuditDraft(
            model=entry.model,
            action=entry.action,
            actor="mallory" if entry.seq == 3 else entry.actor,
            version=entry.version,
            reason=entry.reason,
            details=entry.details,
        )
        resealed.append(
            seal(draft, seq=entry.seq, timestamp=entry.timestamp, prev_hash=resealed[-1].hash)
        )
    log.chains[MODEL] = resealed
    last = resealed[-1]
    log.heads[MODEL] = ChainHead(model=MODEL, seq=last.seq, hash=last.hash, mac="Zm9yZ2Vk")

    # Then every link checks out, but the head's signature does not, and the anchor names 3
    problems = _kinds(fw)
    assert (7, ProblemKind.FORGED_HEAD) in problems
    assert (3, ProblemKind.ANCHOR_MISMATCH) in problems
    assert not [k for _, k in problems if k in {ProblemKind.EDITED, ProblemKind.BROKEN_LINK}]


def test_a_deleted_tail_with_the_old_signed_head_restored_is_caught_by_the_anchor(
    fw: Flywheel,
) -> None:
    # Given the insider kept the signed head of entry 5 and later drops entries 6-7
    log = _log(fw)
    old_head = None
    chain = log.chains[MODEL]
    # (the head as it was after entry 5, with the writer's own signature)
    signer = fw.platform.signer
    assert signer is not None
    old_head = ChainHead(model=MODEL, seq=5, hash=chain[4].hash)
    old_head = old_head.model_copy(update={"mac": signer.sign(old_head.message())})
    log.chains[MODEL] = chain[:5]
    log.heads[MODEL] = old_head

    # Then the head is genuinely signed, but the anchor says entry 6 existed
    problems = _kinds(fw)
    assert (6, ProblemKind.TRUNCATED) in problems
    assert all(k is not ProblemKind.FORGED_HEAD for _, k in problems)


def test_a_forged_head_is_caught_even_without_anchors() -> None:
    fw = Flywheel.in_memory(actor="ops")
    _register(fw)
    log = _log(fw)
    head = log.heads[MODEL]
    log.heads[MODEL] = head.model_copy(update={"mac": "AAAA" + head.mac[4:]})  # type: ignore[index]

    assert _kinds(fw) == [(1, ProblemKind.FORGED_HEAD)]


def test_an_unsigned_head_is_reported_when_the_platform_has_a_key() -> None:
    fw = Flywheel.in_memory(actor="ops")
    _register(fw)
    log = _log(fw)
    log.heads[MODEL] = log.heads[MODEL].model_copy(update={"mac": None})

    assert _kinds(fw) == [(1, ProblemKind.UNSIGNED_HEAD)]


def test_the_anchor_job_refuses_to_anchor_a_tampered_chain(fw: Flywheel) -> None:
    fw.registry.archive(MODEL, 2, actor="ops", reason="superseded")
    log = _log(fw)
    log.heads[MODEL] = log.heads[MODEL].model_copy(update={"mac": "Zm9yZ2Vk"})

    outcome = fw.anchor()[0]

    assert (outcome.result, outcome.seq) == ("tampered", 8)
    assert "not signed by the audit writer" in (outcome.problem or "")
    assert fw.verify(MODEL).anchor.seq == 7  # type: ignore[union-attr]


def test_a_registry_status_changed_behind_the_trail_is_named(fw: Flywheel) -> None:
    # Given an insider flips version 2 to production directly in the registry's store
    store = fw.platform.records
    key = (MODEL, 2)
    store._versions[key] = store._versions[key].model_copy(  # type: ignore[attr-defined]
        update={"status": VersionStatus.PRODUCTION}
    )

    problems = fw.verify(MODEL).problems

    assert [p.kind for p in problems] == [ProblemKind.REGISTRY_MISMATCH]
    assert "version 2 is production in the registry but approved" in problems[0].message


def test_an_artifact_whose_bytes_changed_is_named(fw: Flywheel) -> None:
    version = fw.get_version(MODEL, 1)
    fw.platform.artifacts.tamper(version.artifact, b"not the model")  # type: ignore[attr-defined]

    problems = fw.verify(MODEL).problems

    assert [p.kind for p in problems] == [ProblemKind.ARTIFACT_ALTERED]
    assert "version 1's model no longer matches its SHA-256" in problems[0].message


def test_each_anchor_lists_the_links_since_the_previous_one(fw: Flywheel) -> None:
    fw.registry.archive(MODEL, 2, actor="ops", reason="superseded")
    fw.anchor()

    store = fw.platform.anchor_store
    assert store is not None
    first, second = store.anchors(MODEL)
    assert [seq for seq, _ in first.links] == [1, 2, 3, 4, 5, 6]
    assert (first.head.seq, [seq for seq, _ in second.links], second.head.seq) == (7, [], 8)
    assert isinstance(AuditAction.ARCHIVED, AuditAction)
