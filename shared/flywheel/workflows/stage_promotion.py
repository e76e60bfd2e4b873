"""Stage promotion: a registered version copied from one stage's registry into another's.

The target re-verifies the bytes it stored, registers a new candidate and asks for its
approval; each chain records the other's entry hash (ADR 65). The order of the writes,
and what a failure leaves behind, are in :meth:`StagePromotion.promote`.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from flywheel.artifacts.ports import sha256_hex
from flywheel.audit.models import AuditAction, AuditDraft, AuditEntry
from flywheel.errors import (
    ArtifactIntegrityError,
    FlywheelError,
    IllegalTransitionError,
    InvalidInputError,
)
from flywheel.registry.models import (
    ArtifactRef,
    ModelVersion,
    RecordKey,
    RecordWrite,
    VersionDraft,
    VersionStatus,
    validate_model_name,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.registry.models import InputSchema, OutputSchema
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.approvals import ApprovalService
    from flywheel.workflows.config import ApprovalPolicy, ModelConfigStore

__all__ = [
    "PROMOTED_FROM_TAG",
    "PromotionCheck",
    "PromotionOutcome",
    "PromotionStep",
    "StagePromotion",
    "StagePromotionError",
    "StageRef",
    "promotion_key",
    "verify_promotions",
]

#: The tag a promoted version carries in the target: ``<stage>/<model>/<version>``.
PROMOTED_FROM_TAG = "flywheel:promoted-from"
#: Statuses of a source version that may be promoted (it was approved in its stage).
PROMOTABLE = frozenset(
    {VersionStatus.APPROVED, VersionStatus.CANARY, VersionStatus.PRODUCTION, VersionStatus.ARCHIVED}
)
_STAGE_NAME = r"^[a-z][a-z0-9-]{0,30}$"


class PromotionStep(StrEnum):
    """The steps of a promotion, in order (what a failure names)."""

    CHECK = "check"
    COPY = "copy"
    REGISTER = "register"
    REQUEST_APPROVAL = "request_approval"
    RECORD_IN = "record_in"
    RECORD_OUT = "record_out"


class StagePromotionError(FlywheelError):
    """A promotion stopped: ``details`` say at which step and what is already done."""

    code = "stage_promotion_incomplete"


@dataclass(frozen=True)
class StageRef:
    """One stage as a promotion sees it: its name, registry (with its trail) and artifacts.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> p = InMemoryPlatform()
    >>> StageRef("dev", p.registry, p.records, p.artifacts).name
    'dev'
    """

    name: str
    registry: RegistryService
    records: RecordStore
    artifacts: ArtifactStore
    #: The stage's approvals (a promoted candidate's approval request and its
    #: ``ApprovalRequested``); ``None``: one on ``registry`` and ``records`` that announces
    #: nothing.
    approvals: ApprovalService | None = None
    #: The stage's model configs: their approval policy governs a promoted candidate.
    configs: ModelConfigStore | None = None

    def approval_service(self) -> ApprovalService:
        """:attr:`approvals`, or one that stores approvals and announces nothing."""
        if self.approvals is not None:
            return self.approvals
        from flywheel.clock import SystemClock
        from flywheel.workflows.approvals import ApprovalService

        return ApprovalService(
            registry=self.registry,
            records=self.records,
            tokens=_NoTasks(),
            events=_Unannounced(),
            clock=SystemClock(),
            max_timeout_seconds=365 * 24 * 3600,
        )

    def approval_policy(self, name: str) -> ApprovalPolicy:
        """The stage's approval policy for ``name`` (the default one when unconfigured)."""
        from flywheel.workflows.config import ApprovalPolicy

        stored = self.configs.find(name) if self.configs is not None else None
        return stored.config.approval if stored is not None else ApprovalPolicy()


class _NoTasks:
    """Task tokens of a stage where no workflow waits on promoted versions' approvals."""

    def succeed(self, token: str, output: dict[str, Any]) -> None:  # noqa: ARG002
        raise AssertionError("a promoted version's approval resumes no workflow")

    def fail(self, token: str, *, error: str, cause: str) -> None:  # noqa: ARG002
        raise AssertionError("a promoted version's approval resumes no workflow")


class _Unannounced:
    """Events of a stage without a bus (tests, doctests): nothing is announced."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:  # noqa: ARG002
        return "unannounced"


@dataclass(frozen=True)
class PromotionOutcome:
    """What :meth:`StagePromotion.promote` left in both stages."""

    name: str
    source_stage: str
    target_stage: str
    source_version: int
    #: The version in the target (a candidate there, waiting for approval).
    version: ModelVersion
    #: ``stage_promoted_in`` in the target's chain, ``stage_promoted_out`` in the source's.
    in_entry: AuditEntry
    out_entry: AuditEntry
    #: Steps this call did; a retry of a finished promotion did none.
    done: tuple[PromotionStep, ...]


@dataclass(frozen=True)
class PromotionCheck:
    """Cross-references between two stages' chains: the promotions found, and problems."""

    promotions: tuple[tuple[int, int], ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def promotion_key(name: str, source_stage: str, source_version: int) -> RecordKey:
    """The target registry's record of one promotion (what makes a retry idempotent).

    Examples
    --------
    >>> promotion_key("churn", "dev", 3).sort
    'PROMOTED_IN#dev#V0000000003'
    """
    return RecordKey(
        partition=f"MODEL#{name}", sort=f"PROMOTED_IN#{source_stage}#V{source_version:010d}"
    )


def _link(entry: AuditEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "hash": entry.hash}


class _Copied(NamedTuple):
    """A version's artifacts as stored, read back and re-hashed in the target."""

    artifact: ArtifactRef
    profile: ArtifactRef | None
    explainer: ArtifactRef | None


class StagePromotion:
    """Promote registered versions from ``source`` into ``target``, as ``actor``.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> dev, prod = InMemoryPlatform(), InMemoryPlatform()
    >>> promotion = StagePromotion(
    ...     source=StageRef("dev", dev.registry, dev.records, dev.artifacts),
    ...     target=StageRef("prod", prod.registry, prod.records, prod.artifacts), actor="ana")
    >>> promotion.promote("churn", 1)
    Traceback (most recent call last):
    ...
    flywheel.errors.ModelNotFoundError: model 'churn' does not exist
    """

    def __init__(
        self,
        *,
        source: StageRef,
        target: StageRef,
        actor: str,
        target_actor: str | None = None,
        validate: Callable[[bytes, InputSchema, OutputSchema], object] | None = None,
    ) -> None:
        for side, field in ((source, "from"), (target, "to")):
            if not re.fullmatch(_STAGE_NAME, side.name):
                raise InvalidInputError(
                    f"{field}: {side.name!r} is not a stage name (lowercase letters, digits, "
                    "dashes)",
                    field=field,
                )
        if source.name == target.name:
            raise InvalidInputError("to: a stage cannot promote to itself", field="to")
        self.source = source
        self.target = target
        self.actor = actor
        #: Who acts in the target (in AWS the target's writer takes the proven identity).
        self.target_actor = target_actor or actor
        #: Checks the copied ONNX bytes in the target (``validate_onnx``'s signature).
        self._validate = validate

    # -- promote ---------------------------------------------------------------------------
    def promote(self, name: str, version: int, *, reason: str | None = None) -> PromotionOutcome:
        """Copy ``version`` of ``name`` into the target; all of it, or a retry finishes it.

        Order: check the source → copy and re-verify the bytes in the target → register
        a candidate → request approval → ``stage_promoted_in`` with the promotion record
        (one transaction) → ``stage_promoted_out`` in the source. Nothing is registered
        before every byte is verified in the target; a stop later raises
        :class:`StagePromotionError` saying what is done, and the same call finishes it.
        """
        try:
            validate_model_name(name)
        except ValueError as err:
            raise InvalidInputError(f"name: {err}", field="name") from None
        source_version, registration = self._check_source(name, version)
        done: list[PromotionStep] = []
        target_version: ModelVersion | None = None
        step = PromotionStep.COPY
        try:
            in_entry = self._find_in_entry(name, version)
            if in_entry is None:
                target_version = self._find_target_version(name, version)
                if target_version is None:
                    copied = self._copy(source_version)
                    done.append(step)
                    step = PromotionStep.REGISTER
                    target_version = self._register(source_version, copied, reason)
                    done.append(step)
                step = PromotionStep.REQUEST_APPROVAL
                if target_version.status is VersionStatus.CANDIDATE:
                    self._request_approval(source_version, target_version, reason)
                    target_version = self.target.registry.get_version(name, target_version.version)
                    done.append(step)
                step = PromotionStep.RECORD_IN
                in_entry = self._record_in(source_version, registration, target_version, reason)
                done.append(step)
            else:
                target_version = self.target.registry.get_version(name, int(in_entry.version or 0))
            step = PromotionStep.RECORD_OUT
            out_entry = self._find_out_entry(name, version, in_entry)
            if out_entry is None:
                out_entry = self._record_out(source_version, in_entry, reason)
                done.append(step)
        except FlywheelError as err:
            raise self._stopped(name, version, step, target_version, err) from err
        return PromotionOutcome(
            name=name,
            source_stage=self.source.name,
            target_stage=self.target.name,
            source_version=version,
            version=self.target.registry.get_version(name, target_version.version),
            in_entry=in_entry,
            out_entry=out_entry,
            done=tuple(done),
        )

    def _check_source(self, name: str, version: int) -> tuple[ModelVersion, AuditEntry]:
        found = self.source.registry.get_version(name, version)
        entries = list(self.source.registry.audit.entries(name))
        approved = any(e.action is AuditAction.APPROVED and e.version == version for e in entries)
        if found.status not in PROMOTABLE or not approved:
            raise IllegalTransitionError(
                f"version {version} of {name!r} is {found.status} in {self.source.name} and "
                "only versions approved there may be promoted",
                current=found.status,
                target=VersionStatus.CANDIDATE,
            )
        registration = next(
            (
                e
                for e in entries
                if e.action is AuditAction.VERSION_REGISTERED and e.version == version
            ),
            None,
        )
        if registration is None:
            raise IllegalTransitionError(
                f"version {version} of {name!r} has no registration entry in "
                f"{self.source.name}'s trail; run flywheel audit verify there",
                current=found.status,
                target=VersionStatus.CANDIDATE,
            )
        return found, registration

    def _request_approval(
        self, source: ModelVersion, target: ModelVersion, reason: str | None
    ) -> None:
        """A pending approval in the target, under the target's policy; the promoter is the
        requester (the four-eyes rule applies) and approving it starts the target's
        promotion workflow (``VersionApproved``), as for a trained version."""
        self.target.approval_service().request_promoted(
            target.name,
            target.version,
            requested_by=self.target_actor,
            policy=self.target.approval_policy(target.name),
            origin=f"{self.source.name}/{source.name}/{source.version}",
            reason=reason,
            summary={
                "candidate": {"version": target.version, "metrics": source.metrics},
                "parity": source.parity.model_dump(mode="json") if source.parity else None,
            },
        )

    def _origin(self, name: str, version: int) -> dict[str, Any]:
        return {"stage": self.source.name, "model": name, "version": version}

    def _copy(self, version: ModelVersion) -> _Copied:
        """Each artifact into the target, read back there and hashed from those bytes."""
        prefix = f"models/{version.name}/promoted-{self.source.name}-v{version.version}"
        artifact = self._copy_one(version.artifact, f"{prefix}/model.onnx")
        if self._validate is not None:
            back = self.target.artifacts.get(artifact)
            self._validate(back, version.input_schema, version.output_schema)
        profile = None
        if version.reference_profile is not None:
            profile = self._copy_one(version.reference_profile, f"{prefix}/reference_profile.json")
        explainer = None
        if version.explainer is not None:
            explainer = self._copy_one(version.explainer, f"{prefix}/explainer.npz")
        return _Copied(artifact, profile, explainer)

    def _copy_one(self, ref: ArtifactRef, key: str) -> ArtifactRef:
        data = self.source.artifacts.get(ref)
        stored = self.target.artifacts.put(key, data, content_type=_content_type(ref))
        back = self.target.artifacts.get(stored)
        if not hmac.compare_digest(sha256_hex(back), ref.sha256):
            raise ArtifactIntegrityError(
                f"{stored.uri} read back from {self.target.name} does not have the digest "
                f"{self.source.name} registered",
                field="sha256",
                details={"uri": stored.uri},
            )
        return stored

    def _find_target_version(self, name: str, version: int) -> ModelVersion | None:
        """A version an interrupted promotion registered (its tag names the source)."""
        tag = f"{self.source.name}/{name}/{version}"
        if self._model_missing(self.target.registry, name):
            return None
        token: str | None = None
        while True:
            page = self.target.registry.registry.list_versions(name, limit=100, page_token=token)
            for found in page.items:
                if found.tags.get(PROMOTED_FROM_TAG) == tag:
                    self.target.artifacts.get(found.artifact)  # still there, still those bytes
                    return found
            token = page.next_token
            if not token:
                return None

    def _register(self, source: ModelVersion, copied: _Copied, reason: str | None) -> ModelVersion:
        fields = source.model_dump(include=set(VersionDraft.model_fields))
        fields.update(
            artifact=copied.artifact,
            reference_profile=copied.profile,
            explainer=copied.explainer,
            tags={**source.tags, PROMOTED_FROM_TAG: f"{self.source.name}/{source.name}/"
                  f"{source.version}"},
        )  # fmt: skip
        draft = VersionDraft.model_validate(fields)
        return self.target.registry.register(
            draft,
            actor=self.target_actor,
            reason=reason,
            extra={"promoted_from": self._origin(source.name, source.version)},
        )

    def _record_in(
        self,
        source: ModelVersion,
        registration: AuditEntry,
        target: ModelVersion,
        reason: str | None,
    ) -> AuditEntry:
        head = self.source.registry.audit.head(source.name)
        details = {
            "source": {
                **self._origin(source.name, source.version),
                "registration": _link(registration),
                "head": {"seq": head.seq, "hash": head.hash} if head else None,
            },
            "artifact_sha256": target.artifact.sha256,
            "reference_profile_sha256": (
                target.reference_profile.sha256 if target.reference_profile else None
            ),
        }
        record = RecordWrite(
            key=promotion_key(source.name, self.source.name, source.version),
            doc={"target_version": target.version, "artifact_sha256": target.artifact.sha256},
        )
        draft = AuditDraft(
            model=source.name,
            action=AuditAction.STAGE_PROMOTED_IN,
            actor=self.target_actor,
            version=target.version,
            reason=reason,
            details=details,
        )
        return self.target.registry.record(draft, records=(record,))

    def _record_out(
        self, source: ModelVersion, in_entry: AuditEntry, reason: str | None
    ) -> AuditEntry:
        draft = AuditDraft(
            model=source.name,
            action=AuditAction.STAGE_PROMOTED_OUT,
            actor=self.actor,
            version=source.version,
            reason=reason,
            details={
                "target": {
                    "stage": self.target.name,
                    "model": source.name,
                    "version": in_entry.version,
                    "entry": _link(in_entry),
                },
                "artifact_sha256": source.artifact.sha256,
            },
        )
        return self.source.registry.record(draft)

    def _find_in_entry(self, name: str, version: int) -> AuditEntry | None:
        if self.target.records.get_record(promotion_key(name, self.source.name, version)) is None:
            return None
        return next(
            (
                e
                for e in _promotions_in(self.target.registry.audit.entries(name), self.source.name)
                if e.details["source"]["version"] == version
            ),
            None,
        )

    def _find_out_entry(self, name: str, version: int, in_entry: AuditEntry) -> AuditEntry | None:
        for entry in _promotions_out(self.source.registry.audit.entries(name), self.target.name):
            target = entry.details["target"]
            if entry.version == version and target["entry"] == _link(in_entry):
                return entry
        return None

    @staticmethod
    def _model_missing(registry: RegistryService, name: str) -> bool:
        from flywheel.errors import ModelNotFoundError

        try:
            registry.get_model(name)
        except ModelNotFoundError:
            return True
        return False

    def _stopped(
        self,
        name: str,
        version: int,
        step: PromotionStep,
        target_version: ModelVersion | None,
        err: FlywheelError,
    ) -> StagePromotionError:
        src, dst = self.source.name, self.target.name
        if step in (PromotionStep.COPY, PromotionStep.REGISTER) or target_version is None:
            state = f"nothing was registered in {dst} and nothing recorded in {src}"
        elif step is PromotionStep.RECORD_OUT:
            state = (
                f"{dst} holds it as version {target_version.version}, but {src}'s trail does "
                "not say so yet"
            )
        else:
            state = (
                f"{dst} holds it as version {target_version.version} without its promotion "
                f"record; nothing recorded in {src}"
            )
        return StagePromotionError(
            f"promotion of {name!r} version {version} from {src} to {dst} stopped at {step} "
            f"({err}); {state}; run the same command again to finish it",
            field=err.field,
            details={
                "step": str(step),
                "cause": err.code,
                "target_version": target_version.version if target_version else None,
            },
        )


def _promotions_in(entries: Iterable[AuditEntry], stage: str) -> list[AuditEntry]:
    return [
        e
        for e in entries
        if e.action is AuditAction.STAGE_PROMOTED_IN
        and e.details.get("source", {}).get("stage") == stage
    ]


def _promotions_out(entries: Iterable[AuditEntry], stage: str) -> list[AuditEntry]:
    return [
        e
        for e in entries
        if e.action is AuditAction.STAGE_PROMOTED_OUT
        and e.details.get("target", {}).get("stage") == stage
    ]


def _content_type(ref: ArtifactRef) -> str:
    from flywheel.artifacts.ports import DEFAULT_CONTENT_TYPE, JSON_CONTENT_TYPE

    return JSON_CONTENT_TYPE if ref.format == "json" else DEFAULT_CONTENT_TYPE


def verify_promotions(name: str, *, source: StageRef, target: StageRef) -> PromotionCheck:
    """Follow every promotion of ``name`` between two stages' chains, both ways.

    Each ``stage_promoted_in`` must name a source registration and head that the source
    chain holds, with that hash, and a ``stage_promoted_out`` must name it back (and
    come after that head); each ``stage_promoted_out`` must name an entry the target holds.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> dev, prod = InMemoryPlatform(), InMemoryPlatform()
    >>> verify_promotions("churn", source=StageRef("dev", dev.registry, dev.records,
    ...     dev.artifacts), target=StageRef("prod", prod.registry, prod.records,
    ...     prod.artifacts)).ok
    True
    """
    src_entries = list(source.registry.audit.entries(name))
    dst_entries = list(target.registry.audit.entries(name))
    src_by_seq = {e.seq: e for e in src_entries}
    dst_by_seq = {e.seq: e for e in dst_entries}
    outs = _promotions_out(src_entries, target.name)
    found: list[tuple[int, int]] = []
    problems: list[str] = []
    where_in = f"{target.name} #"
    for entry in _promotions_in(dst_entries, source.name):
        origin = entry.details["source"]
        number = int(origin["version"])
        found.append((number, int(entry.version or 0)))
        here = f"{where_in}{entry.seq} (from {source.name} version {number})"
        registration = origin.get("registration") or {}
        held = src_by_seq.get(int(registration.get("seq", 0)))
        if held is None or held.hash != registration.get("hash") or held.version != number:
            problems.append(f"{here}: {source.name}'s trail lacks the registration it names")
        elif held.details.get("artifact_sha256") != entry.details.get("artifact_sha256"):
            problems.append(f"{here}: the digest differs from the one {source.name} registered")
        head = origin.get("head") or {}
        at_head = src_by_seq.get(int(head.get("seq", 0)))
        if at_head is None or at_head.hash != head.get("hash"):
            problems.append(f"{here}: {source.name}'s trail does not hold the head it names")
        back = [o for o in outs if o.details["target"]["entry"] == _link(entry)]
        if not back:
            problems.append(
                f"{here}: {source.name}'s trail has no stage_promoted_out naming it (an "
                "unfinished promotion: run it again)"
            )
        elif at_head is not None and back[0].seq <= at_head.seq:
            problems.append(f"{here}: {source.name}'s out-entry precedes the head it names")
    for out in outs:
        link = out.details["target"]["entry"]
        held = dst_by_seq.get(int(link.get("seq", 0)))
        if held is None or held.hash != link.get("hash"):
            problems.append(
                f"{source.name} #{out.seq}: {target.name}'s trail does not hold the entry it names"
            )
    return PromotionCheck(promotions=tuple(found), problems=tuple(problems))
