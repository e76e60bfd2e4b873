"""Audit records and the canonical hashing that chains them."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import Field

from flywheel.models import Frozen

GENESIS_HASH = "0" * 64


class AuditAction(StrEnum):
    """What happened. Actions in :data:`REASON_REQUIRED` must say why."""

    VERSION_REGISTERED = "version_registered"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANARY_STARTED = "canary_started"
    #: The next step of a multi-step canary: a larger share of traffic after a healthy check.
    CANARY_ADVANCED = "canary_advanced"
    CANARY_ABORTED = "canary_aborted"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ARCHIVED = "archived"
    PROMOTION_FAILED = "promotion_failed"
    RETRAIN_TRIGGERED = "retrain_triggered"
    RETRAIN_SUPPRESSED = "retrain_suppressed"
    TRAINING_FAILED = "training_failed"
    DATA_VALIDATION_FAILED = "data_validation_failed"
    ANCHOR_RECORDED = "anchor_recorded"
    GATE_REJECTED = "gate_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_REFUSED = "approval_refused"
    MODEL_CONFIGURED = "model_configured"
    FEATURE_VIEW_REGISTERED = "feature_view_registered"
    #: A version copied in from another stage's registry (ADR 65).
    STAGE_PROMOTED_IN = "stage_promoted_in"
    #: A version copied out to another stage's registry (ADR 65).
    STAGE_PROMOTED_OUT = "stage_promoted_out"
    #: A shadow or A/B experiment began, or ended (ADR 75).
    EXPERIMENT_STARTED = "experiment_started"
    EXPERIMENT_STOPPED = "experiment_stopped"
    #: A prompt version's evaluation gate (ADR 81): passed, rejected it (``approved ->
    #: rejected``), or could not finish (provider or evaluator unavailable after the
    #: retries; the version stays approved, never promoted).
    EVALUATION_PASSED = "evaluation_passed"
    EVALUATION_REJECTED = "evaluation_rejected"
    EVALUATION_FAILED = "evaluation_failed"
    #: The production quality monitor's verdict for a prompt version (ADR 82): healthy or
    #: without enough scored calls, degraded (a limit breached), or no verdict because an
    #: evaluator stayed unavailable after the retries.
    LLM_QUALITY_CHECKED = "llm_quality_checked"
    LLM_QUALITY_DEGRADED = "llm_quality_degraded"
    LLM_QUALITY_FAILED = "llm_quality_failed"


REASON_REQUIRED: frozenset[AuditAction] = frozenset(
    {
        AuditAction.APPROVED,
        AuditAction.REJECTED,
        AuditAction.PROMOTED,
        AuditAction.ROLLED_BACK,
        AuditAction.CANARY_ABORTED,
        AuditAction.RETRAIN_SUPPRESSED,
        AuditAction.GATE_REJECTED,
        AuditAction.APPROVAL_EXPIRED,
        AuditAction.APPROVAL_REFUSED,
        AuditAction.PROMOTION_FAILED,
        AuditAction.TRAINING_FAILED,
        AuditAction.DATA_VALIDATION_FAILED,
        AuditAction.EXPERIMENT_STOPPED,
        AuditAction.EVALUATION_REJECTED,
        AuditAction.EVALUATION_FAILED,
        AuditAction.LLM_QUALITY_DEGRADED,
        AuditAction.LLM_QUALITY_FAILED,
    }
)


class AuditDraft(Frozen):
    """An entry before it is sealed into the chain (no sequence, time or hashes yet)."""

    model: str
    action: AuditAction
    actor: str = Field(min_length=1, max_length=256)
    version: int | None = None
    reason: str | None = Field(default=None, max_length=2048)
    details: dict[str, Any] = Field(default_factory=dict)


class AuditEntry(AuditDraft):
    """A sealed entry: ``hash = sha256(canonical_json(body) + prev_hash)``.

    ``body`` is every field except ``hash`` and ``prev_hash``.
    """

    seq: int = Field(ge=1)
    timestamp: str
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def body(self) -> dict[str, Any]:
        return entry_body(
            model=self.model,
            seq=self.seq,
            timestamp=self.timestamp,
            action=self.action,
            actor=self.actor,
            version=self.version,
            reason=self.reason,
            details=self.details,
        )

    def computed_hash(self) -> str:
        return chain_hash(self.body(), self.prev_hash)


class ChainHead(Frozen):
    """The last link of a chain: record it somewhere else to detect a truncated tail.

    Examples
    --------
    >>> ChainHead.parse("3:" + "a" * 64).seq
    3
    """

    model: str
    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: The audit writer's HMAC of :meth:`message` (base64), when the chain is signed.
    mac: str | None = None

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str, model: str = "") -> ChainHead:
        seq, _, digest = text.partition(":")
        return cls(model=model, seq=int(seq), hash=digest)

    def message(self) -> bytes:
        """What the audit writer's key authenticates: model, sequence number and hash.

        Examples
        --------
        >>> ChainHead(model="churn", seq=3, hash="a" * 64).message()[:14]
        b'flywheel-head\\n'
        """
        return f"flywheel-head\n{self.model}\n{self.seq}\n{self.hash}".encode()


class Anchor(Frozen):
    """A model's signed head copied outside the database, with every link since the last.

    ``links`` are the ``(seq, hash)`` pairs of the entries after the previous anchor up to
    ``head``, so a verifier names the first entry that differs from what was anchored.

    Examples
    --------
    >>> head = ChainHead(model="churn", seq=2, hash="b" * 64, mac="bWFj")
    >>> Anchor(head=head, links=((1, "a" * 64), (2, "b" * 64)), anchored_at="t").key
    'anchors/churn/00000000000000000002.json'
    """

    head: ChainHead
    links: tuple[tuple[int, str], ...] = ()
    anchored_at: str

    @property
    def key(self) -> str:
        """Where the anchor object lives: one per model and head (sorts by sequence)."""
        return f"anchors/{self.head.model}/{self.head.seq:020d}.json"


def canonical_json(value: Any) -> str:
    """Serialize deterministically: sorted keys, no whitespace, UTF-8, no NaN.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, None]})
    '{"a":[1.5,null],"b":1}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_body(
    *,
    model: str,
    seq: int,
    timestamp: str,
    action: AuditAction | str,
    actor: str,
    version: int | None,
    reason: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": model,
        "seq": seq,
        "timestamp": timestamp,
        "action": str(action),
        "actor": actor,
        "version": version,
        "reason": reason,
        "details": details,
    }


def chain_hash(body: dict[str, Any], prev_hash: str) -> str:
    """``sha256(canonical_json(body) + prev_hash)`` as hex.

    Examples
    --------
    >>> len(chain_hash({"seq": 1}, GENESIS_HASH))
    64
    """
    return hashlib.sha256((canonical_json(body) + prev_hash).encode("utf-8")).hexdigest()


def seal(draft: AuditDraft, *, seq: int, timestamp: str, prev_hash: str) -> AuditEntry:
    """Turn a draft into the next link of its chain.

    Examples
    --------
    >>> d = AuditDraft(model="m", action=AuditAction.APPROVED, actor="ana", reason="ok")
    >>> e = seal(d, seq=1, timestamp="2026-01-01T00:00:00.000000Z", prev_hash=GENESIS_HASH)
    >>> e.hash == e.computed_hash()
    True
    """
    body = entry_body(
        model=draft.model,
        seq=seq,
        timestamp=timestamp,
        action=draft.action,
        actor=draft.actor,
        version=draft.version,
        reason=draft.reason,
        details=draft.details,
    )
    # Round-trip details through canonical JSON so what is hashed is what is stored.
    details = json.loads(canonical_json(draft.details))
    return AuditEntry(
        model=draft.model,
        action=draft.action,
        actor=draft.actor,
        version=draft.version,
        reason=draft.reason,
        details=details,
        seq=seq,
        timestamp=timestamp,
        prev_hash=prev_hash,
        hash=chain_hash(body, prev_hash),
    )
