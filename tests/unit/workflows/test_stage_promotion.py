"""Stage promotion between two in-memory stages: copied, re-verified, registered as a
candidate, cross-referenced in both trails; all or a retry finishes it (ADR 65)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flywheel.adapters.memory_artifacts import InMemoryArtifactStore
from flywheel.adapters.memory_workflows import InMemoryEventPublisher, InMemoryTaskTokens
from flywheel.audit.models import AuditAction, AuditDraft, AuditEntry
from flywheel.clock import SystemClock
from flywheel.composition import InMemoryPlatform
from flywheel.errors import (
    ApproverNotAllowedError,
    ConcurrentModificationError,
    IllegalTransitionError,
    InvalidInputError,
)
from flywheel.registry.models import (
    ParityReport,
    RecordWrite,
    RegistryChange,
    StatusChange,
    VersionDraft,
    VersionStatus,
)
from flywheel.registry.service import RegistryService
from flywheel.workflows.approvals import (
    ANNOUNCEMENT_SOURCE,
    APPROVAL_REQUESTED,
    VERSION_APPROVED,
    ApprovalService,
    ApprovalStatus,
    Decision,
)
from flywheel.workflows.config import parse_model_config
from flywheel.workflows.records import (
    ApprovalDoc,
    ApprovalPointer,
    approval_key,
    approval_pointer_key,
    write,
)
from flywheel.workflows.stage_promotion import (
    PROMOTED_FROM_TAG,
    PromotionStep,
    StagePromotion,
    StagePromotionError,
    StageRef,
    verify_promotions,
)
from flywheel.workflows.writer import Capability, RecordsWriter, WriteOp, WriteRequest
from tests.factories import version_draft

MODEL = "churn"
ONNX = b"onnx-bytes-of-churn-v1" * 10
PROFILE = {"features": {"age": {"mean": 41.5}}}


class Stage:
    """One stage in memory: its platform, and knobs to make its writes or bytes fail."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.platform = InMemoryPlatform()
        self.failing: set[AuditAction] = set()
        self.artifacts: InMemoryArtifactStore = self.platform.artifacts  # type: ignore[assignment]
        self.events = InMemoryEventPublisher()
        self.tokens = InMemoryTaskTokens()

    def ref(self) -> StageRef:
        records = _Failing(self.platform.records, self.failing)
        audit = _Failing(self.platform.audit, self.failing)
        registry = RegistryService(records, audit)
        approvals = ApprovalService(
            registry=registry, records=records, tokens=self.tokens, events=self.events,
            clock=SystemClock(), max_timeout_seconds=7 * 24 * 3600,
        )  # fmt: skip
        return StageRef(
            self.name, registry, records, self.artifacts, approvals=approvals,
            configs=self.platform.configs,
        )  # fmt: skip

    @property
    def registry(self) -> RegistryService:
        return self.platform.registry

    def entries(self) -> list[AuditEntry]:
        return list(self.platform.audit.entries(MODEL))


class _Failing:
    """The stage's registry storage, refusing changes audited as one of ``failing`` (once)."""

    def __init__(self, inner: Any, failing: set[AuditAction]) -> None:
        self._inner = inner
        self._failing = failing

    def _check(self, action: AuditAction) -> None:
        if action in self._failing:
            self._failing.discard(action)
            raise ConcurrentModificationError("the registry table is throttled", field="change")

    def create_version(self, draft: VersionDraft, *, actor: str, audit: AuditDraft) -> Any:
        self._check(audit.action)
        return self._inner.create_version(draft, actor=actor, audit=audit)

    def apply(self, change: RegistryChange, *, actor: str, audit: AuditDraft) -> AuditEntry:
        self._check(audit.action)
        entry: AuditEntry = self._inner.apply(change, actor=actor, audit=audit)
        return entry

    def append(self, draft: AuditDraft) -> AuditEntry:
        self._check(draft.action)
        entry: AuditEntry = self._inner.append(draft)
        return entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CorruptingStore(InMemoryArtifactStore):
    """A bucket that stores other bytes than it was sent (a broken copy, a hostile proxy)."""

    def _write(self, key: str, data: bytes, *, content_type: str, sha256: str) -> Any:
        return super()._write(key, data[:-1] + b"!", content_type=content_type, sha256=sha256)


def _approved_in(stage: Stage, *, promote: bool = False, explainer: bytes | None = None) -> int:
    artifact = stage.artifacts.put(f"models/{MODEL}/run-1/model.onnx", ONNX)
    profile = stage.artifacts.put_json(f"models/{MODEL}/run-1/reference_profile.json", PROFILE)
    draft = version_draft(
        name=MODEL,
        artifact=artifact,
        reference_profile=profile,
        explainer=None
        if explainer is None
        else stage.artifacts.put(f"models/{MODEL}/run-1/explainer.npz", explainer),
        parity=ParityReport(rows=10, precision="float64", max_abs_diff=0.0, p99_abs_diff=0.0,
                            passed=True),
        tags={"team": "growth"},
    )  # fmt: skip
    registry = stage.registry
    number = registry.register(draft, actor="ds").version
    registry.request_approval(MODEL, number, actor="ds")
    registry.approve(MODEL, number, actor="approver", reason="holdout reviewed")
    if promote:
        registry.promote(MODEL, number, actor="ops", reason="launch")
    return number


@pytest.fixture
def dev() -> Stage:
    return Stage("dev")


@pytest.fixture
def prod() -> Stage:
    return Stage("prod")


def _promotion(dev: Stage, prod: Stage) -> StagePromotion:
    return StagePromotion(source=dev.ref(), target=prod.ref(), actor="ana")


def test_a_production_version_in_dev_arrives_in_prod_as_a_candidate_waiting_for_approval(
    dev: Stage, prod: Stage
) -> None:
    number = _approved_in(dev, promote=True)
    source = dev.registry.get_version(MODEL, number)

    done = _promotion(dev, prod).promote(MODEL, number, reason="release 4")

    landed = prod.registry.get_version(MODEL, done.version.version)
    assert landed.status is VersionStatus.PENDING_APPROVAL
    assert prod.registry.get_model(MODEL).champion is None
    assert prod.artifacts.get(landed.artifact) == ONNX
    assert landed.artifact.sha256 == source.artifact.sha256
    assert landed.artifact.uri.startswith(f"memory://models/{MODEL}/promoted-dev-v{number}/")
    assert landed.reference_profile is not None
    assert prod.artifacts.get_json(landed.reference_profile) == PROFILE
    assert (landed.lineage, landed.metrics, landed.parity) == (
        source.lineage, source.metrics, source.parity,
    )  # fmt: skip
    assert (landed.input_schema, landed.output_schema) == (
        source.input_schema,
        source.output_schema,
    )
    assert landed.tags == {"team": "growth", PROMOTED_FROM_TAG: f"dev/{MODEL}/{number}"}
    assert [e.action for e in prod.entries()] == [
        AuditAction.VERSION_REGISTERED,
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.STAGE_PROMOTED_IN,
    ]
    assert done.done == tuple(PromotionStep)[1:]


def test_the_promoted_candidate_is_approved_by_someone_else_under_the_targets_policy(
    dev: Stage, prod: Stage
) -> None:
    # prod's policy lists its approvers; the promotion needs no allow_direct_approval
    prod.platform.configs.put(
        parse_model_config({
            "name": MODEL,
            "training": {"task": "classification", "dataset": {"source": "sklearn:iris"},
                         "estimator": "logistic_regression"},
            "gate": {"metric": "accuracy"},
            "approval": {"approvers": ["arn:aws:iam::2:user/bo"]},
        }),
        actor="admin",
    )  # fmt: skip
    number = _approved_in(dev)

    landed = _promotion(dev, prod).promote(MODEL, number, reason="release").version

    pending = prod.ref().approval_service().find_for_version(MODEL, landed.version)
    assert pending is not None
    doc = pending[0]
    assert (doc.status, doc.requested_by, doc.task_token) == (ApprovalStatus.PENDING, "ana", None)
    assert doc.approvers == ("arn:aws:iam::2:user/bo",)
    assert doc.artifact_sha256 == landed.artifact.sha256
    assert doc.summary["promoted_from"] == f"dev/{MODEL}/{number}"
    assert [t for t, _ in prod.events.events] == [APPROVAL_REQUESTED]
    approvals = prod.ref().approval_service()
    with pytest.raises(ApproverNotAllowedError):  # the promoter is the requester
        approvals.decide(doc.approval_id, decision=Decision.APPROVE, approver="ana", reason="x")
    with pytest.raises(ApproverNotAllowedError):  # not on prod's list
        approvals.decide(
            doc.approval_id, decision=Decision.APPROVE, approver="arn:aws:iam::2:user/cy",
            reason="x",
        )  # fmt: skip

    decided = approvals.decide(
        doc.approval_id, decision=Decision.APPROVE, approver="arn:aws:iam::2:user/bo",
        reason="holdout reviewed in dev, canary next",
    )  # fmt: skip

    assert decided.status is ApprovalStatus.APPROVED
    assert decided.workflow_notified
    assert prod.registry.get_version(MODEL, landed.version).status is VersionStatus.APPROVED
    assert [t for t, _ in prod.events.events] == [APPROVAL_REQUESTED, VERSION_APPROVED]
    assert prod.tokens.sent == []  # no workflow waited on it
    assert ANNOUNCEMENT_SOURCE == "flywheel.workflows"  # what the approvers' rule matches


def test_the_explainer_travels_with_the_version_and_is_reverified(dev: Stage, prod: Stage) -> None:
    number = _approved_in(dev, explainer=b"npz" * 50)
    source = dev.registry.get_version(MODEL, number).explainer
    assert source is not None

    landed = _promotion(dev, prod).promote(MODEL, number).version

    assert landed.explainer is not None
    assert landed.explainer.uri.startswith(f"memory://models/{MODEL}/promoted-dev-v{number}/")
    assert landed.explainer.sha256 == source.sha256
    assert prod.artifacts.get(landed.explainer) == b"npz" * 50


def test_each_trail_names_the_others_entry_and_both_verify(dev: Stage, prod: Stage) -> None:
    number = _approved_in(dev)
    registration = dev.entries()[0]
    head_before = dev.platform.audit.head(MODEL)

    done = _promotion(dev, prod).promote(MODEL, number)

    source = done.in_entry.details["source"]
    assert source["stage"] == "dev"
    assert source["registration"] == {"seq": registration.seq, "hash": registration.hash}
    assert head_before is not None
    assert source["head"] == {"seq": head_before.seq, "hash": head_before.hash}
    assert dev.entries()[-1] == done.out_entry
    assert done.out_entry.action is AuditAction.STAGE_PROMOTED_OUT
    assert done.out_entry.details["target"] == {
        "stage": "prod", "model": MODEL, "version": done.version.version,
        "entry": {"seq": done.in_entry.seq, "hash": done.in_entry.hash},
    }  # fmt: skip
    assert dev.registry.verify(MODEL).ok
    assert prod.registry.verify(MODEL).ok
    check = verify_promotions(MODEL, source=dev.ref(), target=prod.ref())
    assert check.ok, check.problems
    assert check.promotions == ((number, done.version.version),)


def test_bytes_that_differ_in_the_target_are_refused_and_nothing_is_registered(
    dev: Stage, prod: Stage
) -> None:
    number = _approved_in(dev)
    prod.artifacts = _CorruptingStore()
    dev_trail = dev.entries()

    with pytest.raises(StagePromotionError) as refused:
        _promotion(dev, prod).promote(MODEL, number)

    assert refused.value.details["step"] == "copy"
    assert refused.value.details["cause"] == "artifact_integrity"
    assert "nothing was registered in prod and nothing recorded in dev" in str(refused.value)
    assert prod.entries() == []
    assert prod.registry.registry.list_models().items == []
    assert dev.entries() == dev_trail


def test_a_retry_after_success_changes_nothing(dev: Stage, prod: Stage) -> None:
    number = _approved_in(dev)
    first = _promotion(dev, prod).promote(MODEL, number)
    trails = (dev.entries(), prod.entries())

    again = _promotion(dev, prod).promote(MODEL, number)

    assert again.done == ()
    assert (again.version.version, again.in_entry, again.out_entry) == (
        first.version.version, first.in_entry, first.out_entry,
    )  # fmt: skip
    assert (dev.entries(), prod.entries()) == trails
    assert prod.registry.get_model(MODEL).latest_version == 1


@pytest.mark.parametrize(
    ("failing_in", "action", "step"),
    [
        ("prod", AuditAction.VERSION_REGISTERED, "register"),
        ("prod", AuditAction.APPROVAL_REQUESTED, "request_approval"),
        ("prod", AuditAction.STAGE_PROMOTED_IN, "record_in"),
        ("dev", AuditAction.STAGE_PROMOTED_OUT, "record_out"),
    ],
)
def test_a_stop_at_any_step_says_what_is_done_and_the_same_call_finishes_it(
    dev: Stage, prod: Stage, failing_in: str, action: AuditAction, step: str
) -> None:
    number = _approved_in(dev)
    (dev if failing_in == "dev" else prod).failing.add(action)
    dev_trail = dev.entries()

    with pytest.raises(StagePromotionError) as stopped:
        _promotion(dev, prod).promote(MODEL, number)

    assert stopped.value.details["step"] == step
    assert "run the same command again to finish it" in str(stopped.value)
    assert dev.entries() == dev_trail  # no out-entry in dev before prod has it all
    for version in prod.registry.registry.list_versions(MODEL).items if prod.entries() else []:
        assert prod.artifacts.get(version.artifact) == ONNX  # never a version without its bytes

    finished = _promotion(dev, prod).promote(MODEL, number)

    assert prod.registry.get_model(MODEL).latest_version == 1
    assert finished.version.status is VersionStatus.PENDING_APPROVAL
    assert verify_promotions(MODEL, source=dev.ref(), target=prod.ref()).ok
    assert [e.action for e in dev.entries()].count(AuditAction.STAGE_PROMOTED_OUT) == 1
    assert [e.action for e in prod.entries()].count(AuditAction.STAGE_PROMOTED_IN) == 1


def test_only_versions_approved_in_the_source_may_be_promoted(dev: Stage, prod: Stage) -> None:
    artifact = dev.artifacts.put(f"models/{MODEL}/run-1/model.onnx", ONNX)
    dev.registry.register(version_draft(name=MODEL, artifact=artifact), actor="ds")

    with pytest.raises(IllegalTransitionError, match="is candidate in dev"):
        _promotion(dev, prod).promote(MODEL, 1)
    assert prod.entries() == []


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [("dev", "dev", "to"), ("Dev", "prod", "from"), ("dev", "prod stage", "to")],
)
def test_bad_stage_names_are_refused_naming_the_option(
    source: str, target: str, field: str
) -> None:
    one, other = InMemoryPlatform(), InMemoryPlatform()
    with pytest.raises(InvalidInputError) as refused:
        StagePromotion(
            source=StageRef(source, one.registry, one.records, one.artifacts),
            target=StageRef(target, other.registry, other.records, other.artifacts),
            actor="ana",
        )
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_verify_names_an_unfinished_promotion_and_a_reference_the_other_trail_lacks(
    dev: Stage, prod: Stage
) -> None:
    number = _approved_in(dev)
    dev.failing.add(AuditAction.STAGE_PROMOTED_OUT)
    with pytest.raises(StagePromotionError):
        _promotion(dev, prod).promote(MODEL, number)

    unfinished = verify_promotions(MODEL, source=dev.ref(), target=prod.ref())
    assert not unfinished.ok
    assert "no stage_promoted_out naming it" in unfinished.problems[0]

    # Given another "dev" whose trail is not the one prod's entry names
    other = Stage("dev")
    other.registry.record(AuditDraft(model=MODEL, action=AuditAction.ANCHOR_RECORDED, actor="x"))
    _approved_in(other)
    forged = verify_promotions(MODEL, source=other.ref(), target=prod.ref())
    assert any("lacks the registration it names" in p for p in forged.problems), forged
    assert any("does not hold the head it names" in p for p in forged.problems)


def test_the_promotions_capability_registers_asks_and_records_but_decides_nothing(
    prod: Stage,
) -> None:
    platform = prod.platform
    writer = RecordsWriter(
        store=platform.records, audit=platform.audit, configs=platform.configs, identity=None,
        trust_asserted=True,
    )  # fmt: skip
    artifact = prod.artifacts.put(f"models/{MODEL}/promoted-dev-v1/model.onnx", ONNX)
    draft = version_draft(name=MODEL, artifact=artifact)
    created = writer.handle(
        WriteRequest(op=WriteOp.CREATE_VERSION, actor="ana", draft=draft, audit=AuditDraft(
            model=MODEL, action=AuditAction.VERSION_REGISTERED, actor="ana")),
        Capability.PROMOTIONS,
    )  # fmt: skip
    assert created.error is None
    service = RegistryService(platform.records, platform.audit)
    service.request_approval(MODEL, 1, actor="ana")

    def refused(action: AuditAction, **change: Any) -> str:
        answer = writer.handle(
            WriteRequest(
                op=WriteOp.APPLY if change else WriteOp.APPEND,
                actor="ana",
                change=RegistryChange(model=MODEL, **change) if change else None,
                audit=AuditDraft(model=MODEL, action=action, actor="ana", version=1, reason="r"),
            ),
            Capability.PROMOTIONS,
        )
        assert answer.error is not None
        return str(answer.error["code"])

    assert refused(AuditAction.APPROVED) == "not_permitted"
    assert refused(AuditAction.PROMOTED) == "not_permitted"
    assert refused(AuditAction.STAGE_PROMOTED_OUT) == "not_permitted"
    config = RecordWrite(key=promotion_config_key(), doc={"x": 1})
    assert refused(AuditAction.STAGE_PROMOTED_IN, records=(config,)) == "not_permitted"
    # approval records only with approval_requested, asked by the proven promoter for
    # the version's artifact under prod's policy: never decided, forged or re-pointed
    for forged in ({"status": "approved"}, {"status": "pending", "task_token": "t"}, {}):
        decided = RecordWrite(key=approval_key("a1"), doc={"approval_id": "a1", **forged})
        answer = writer.handle(
            WriteRequest(op=WriteOp.PUT_RECORD, actor="ana", record=decided),
            Capability.PROMOTIONS,
        )
        assert answer.error is not None
        assert answer.error["code"] == "not_permitted"
    assert platform.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL


def promotion_config_key() -> Any:
    from flywheel.registry.models import RecordKey

    return RecordKey(partition=f"MODEL#{MODEL}", sort="CONFIG")


def test_the_promoter_asks_for_an_approval_only_in_their_own_name_under_the_targets_policy(
    prod: Stage,
) -> None:
    platform = prod.platform
    writer = RecordsWriter(
        store=platform.records, audit=platform.audit, configs=platform.configs, identity=None,
        trust_asserted=True,
    )  # fmt: skip
    artifact = prod.artifacts.put(f"models/{MODEL}/promoted-dev-v1/model.onnx", ONNX)
    created = writer.handle(
        WriteRequest(op=WriteOp.CREATE_VERSION, actor="ana",
                     draft=version_draft(name=MODEL, artifact=artifact),
                     audit=AuditDraft(model=MODEL, action=AuditAction.VERSION_REGISTERED,
                                      actor="ana")),
        Capability.PROMOTIONS,
    )  # fmt: skip
    assert created.error is None
    now = datetime.now(UTC)

    def ask(**changes: Any) -> dict[str, Any] | None:
        doc = ApprovalDoc(
            approval_id="a1", model=MODEL, version=1, artifact_sha256=artifact.sha256,
            artifact_uri=artifact.uri, execution_id="stage-promotion:dev/churn/1",
            requested_by="ana", requested_at=now, expires_at=now + timedelta(hours=1),
        ).model_copy(update=changes)  # fmt: skip
        change = RegistryChange(
            model=MODEL,
            statuses=(StatusChange(version=1, expected=VersionStatus.CANDIDATE,
                                   target=VersionStatus.PENDING_APPROVAL),),
            records=(write(approval_key("a1"), doc, None),
                     write(approval_pointer_key(MODEL, 1), ApprovalPointer(approval_id="a1"),
                           None)),
        )  # fmt: skip
        audit = AuditDraft(model=MODEL, action=AuditAction.APPROVAL_REQUESTED, actor="ana",
                           version=1)  # fmt: skip
        answer = writer.handle(
            WriteRequest(op=WriteOp.APPLY, actor="ana", change=change, audit=audit),
            Capability.PROMOTIONS,
        )
        return answer.error

    for forged in (
        {"requested_by": "bo"},  # someone else's name: ana could then approve it
        {"require_distinct_approver": False},
        {"excluded": ("x",), "approvers": ("arn:aws:iam::1:user/ana",)},
        {"artifact_sha256": "0" * 64},
        {"status": ApprovalStatus.APPROVED, "decided_by": "ana"},
        {"task_token": "t"},
    ):
        error = ask(**forged)
        assert error is not None, forged
        assert error["code"] == "not_permitted", forged
    assert platform.registry.get_version(MODEL, 1).status is VersionStatus.CANDIDATE
    assert ask() is None
    assert platform.registry.get_version(MODEL, 1).status is VersionStatus.PENDING_APPROVAL
