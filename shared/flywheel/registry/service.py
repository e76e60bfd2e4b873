"""Registry use cases: register, approve, reject, promote, roll back, answer questions."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, Unpack

from flywheel.audit.chain import VerifyReport, champion_at, verify_chain
from flywheel.audit.models import REASON_REQUIRED, AuditAction, AuditDraft, AuditEntry, ChainHead
from flywheel.errors import (
    IllegalTransitionError,
    InvalidInputError,
    ModelNotFoundError,
    NoPreviousChampionError,
    ReasonRequiredError,
)
from flywheel.registry.models import (
    Alias,
    AliasChange,
    Model,
    ModelVersion,
    RecordWrite,
    RegistryChange,
    StatusChange,
    VersionDraft,
    VersionStatus,
    is_allowed,
)
from flywheel.registry.reconcile import reconcile

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from flywheel.audit.models import Anchor
    from flywheel.audit.ports import AuditLog, HeadSigner
    from flywheel.registry.ports import ModelRegistry


class Transition(NamedTuple):
    """A status change of one version: the status it leads to and the action that audits it.

    It starts from any status the lifecycle lets reach ``target``
    (:data:`~flywheel.registry.models.ALLOWED_TRANSITIONS`); anything else is an
    :class:`~flywheel.errors.IllegalTransitionError`. It needs a reason when ``action`` is
    in :data:`~flywheel.audit.models.REASON_REQUIRED`. The audit entry's ``details`` hold
    ``transitions`` (``[{version, from, to}]``) and the caller's ``extra``; no aliases.

    Examples
    --------
    >>> sorted(TRANSITIONS["reject"].sources)
    [<VersionStatus.CANDIDATE: 'candidate'>, <VersionStatus.PENDING_APPROVAL: 'pending_approval'>]
    >>> TRANSITIONS["reject"].reason_required
    True
    """

    target: VersionStatus
    action: AuditAction

    @property
    def sources(self) -> frozenset[VersionStatus]:
        """The statuses a version may have for this transition to apply."""
        return frozenset(s for s in VersionStatus if is_allowed(s, self.target))

    @property
    def reason_required(self) -> bool:
        return self.action in REASON_REQUIRED


#: The one-version transitions of :class:`RegistryService`, by method name.
TRANSITIONS: Mapping[str, Transition] = MappingProxyType(
    {
        "request_approval": Transition(
            VersionStatus.PENDING_APPROVAL, AuditAction.APPROVAL_REQUESTED
        ),
        "approve": Transition(VersionStatus.APPROVED, AuditAction.APPROVED),
        "reject": Transition(VersionStatus.REJECTED, AuditAction.REJECTED),
        # withdraw(..., action=...) may audit it as another action (e.g. gate_rejected).
        "withdraw": Transition(VersionStatus.REJECTED, AuditAction.TRAINING_FAILED),
        "expire_approval": Transition(VersionStatus.REJECTED, AuditAction.APPROVAL_EXPIRED),
        "archive": Transition(VersionStatus.ARCHIVED, AuditAction.ARCHIVED),
    }
)


class Writes(TypedDict, total=False):
    """What a transition may write besides the version: records and extra audit details.

    ``records`` (an approval, a run lock) are written in the same transaction as the
    status and the audit entry; ``extra`` is merged into the entry's ``details``.
    """

    records: tuple[RecordWrite, ...]
    extra: dict[str, Any] | None


class RegistryService:
    """The governed model lifecycle on top of a :class:`ModelRegistry` and an :class:`AuditLog`.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> audit = InMemoryAuditLog()
    >>> service = RegistryService(InMemoryModelRegistry(audit), audit)
    >>> service.verify("nothing-yet").ok
    True
    """

    def __init__(self, registry: ModelRegistry, audit: AuditLog) -> None:
        self.registry = registry
        self.audit = audit

    # -- writes ------------------------------------------------------------------------------
    def register(
        self,
        draft: VersionDraft,
        *,
        actor: str,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a new candidate version (number allocated atomically) and audit it.

        ``extra`` is merged into the entry's ``details`` (a promotion names its origin).
        """
        audit = AuditDraft(
            model=draft.name,
            action=AuditAction.VERSION_REGISTERED,
            actor=actor,
            reason=reason,
            details={
                "artifact_sha256": draft.artifact.sha256,
                "artifact_uri": draft.artifact.uri,
                "metrics": draft.metrics,
                "dataset_sha256": draft.lineage.dataset_sha256,
                "training_run_id": draft.lineage.training_run_id,
                **(extra or {}),
            },
        )
        version, _ = self.registry.create_version(draft, actor=actor, audit=audit)
        return version

    def request_approval(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        **writes: Unpack[Writes],
    ) -> ModelVersion:
        """``candidate → pending_approval``; ``records`` (e.g. the approval) join the write."""
        return self._move(name, version, TRANSITIONS["request_approval"], actor, reason, **writes)

    def approve(
        self, name: str, version: int, *, actor: str, reason: str, **writes: Unpack[Writes]
    ) -> ModelVersion:
        """``pending_approval → approved``, with ``records`` in the same transaction."""
        return self._move(name, version, TRANSITIONS["approve"], actor, reason, **writes)

    def reject(
        self, name: str, version: int, *, actor: str, reason: str, **writes: Unpack[Writes]
    ) -> ModelVersion:
        """``candidate|pending_approval → rejected``, with ``records`` in the same transaction."""
        return self._move(name, version, TRANSITIONS["reject"], actor, reason, **writes)

    def withdraw(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        action: AuditAction | None = None,
        **writes: Unpack[Writes],
    ) -> ModelVersion:
        """``candidate|pending_approval → rejected``: its workflow failed.

        Audited as ``action`` (default ``training_failed``).

        Examples
        --------
        >>> service.withdraw("churn", 2, actor="wf", reason="Train failed")  # doctest: +SKIP
        """
        transition = TRANSITIONS["withdraw"]
        if action is not None:
            transition = transition._replace(action=action)
        return self._move(name, version, transition, actor, reason, **writes)

    def expire_approval(
        self, name: str, version: int, *, actor: str, reason: str, **writes: Unpack[Writes]
    ) -> ModelVersion:
        """``pending_approval → rejected`` because nobody decided in time (``approval_expired``).

        Examples
        --------
        >>> service.expire_approval("churn", 1, actor="wf", reason="72 h passed")  # doctest: +SKIP
        """
        return self._move(name, version, TRANSITIONS["expire_approval"], actor, reason, **writes)

    def archive(
        self, name: str, version: int, *, actor: str, reason: str | None = None
    ) -> ModelVersion:
        return self._move(name, version, TRANSITIONS["archive"], actor, reason)

    def start_canary(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str | None = None,
        records: tuple[RecordWrite, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """``approved → canary``; the version becomes the ``challenger``.

        ``records`` (the canary's first step, say) are written in the same transaction.
        """
        model = self.registry.get_model(name)
        current = self._expect(name, version, VersionStatus.CANARY)
        aliases: dict[Alias, int] = dict(model.aliases)
        aliases[Alias.CHALLENGER] = version
        change = RegistryChange(
            model=name,
            statuses=(
                StatusChange(version=version, expected=current, target=VersionStatus.CANARY),
            ),
            aliases=(
                AliasChange(alias=Alias.CHALLENGER, expected=model.challenger, target=version),
            ),
            records=records,
        )
        self._apply(
            change, AuditAction.CANARY_STARTED, actor, reason, version, aliases, extra=extra
        )
        return self.registry.get_version(name, version)

    def abort_canary(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """``canary → rolled_back``; the ``challenger`` alias is cleared. Champion untouched."""
        self._require_reason(AuditAction.CANARY_ABORTED, reason)
        model = self.registry.get_model(name)
        current = self._expect(name, version, VersionStatus.ROLLED_BACK)
        aliases: dict[Alias, int] = {
            k: v for k, v in model.aliases.items() if k is not Alias.CHALLENGER
        }
        change = RegistryChange(
            model=name,
            statuses=(
                StatusChange(version=version, expected=current, target=VersionStatus.ROLLED_BACK),
            ),
            aliases=(AliasChange(alias=Alias.CHALLENGER, expected=model.challenger, target=None),),
        )
        self._apply(
            change, AuditAction.CANARY_ABORTED, actor, reason, version, aliases, extra=extra
        )
        return self.registry.get_version(name, version)

    def reject_evaluated(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        records: tuple[RecordWrite, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """``approved → rejected`` for a prompt version its evaluation gate rejected
        (``evaluation_rejected``, ADR 81), with ``records`` (the gate's report) in the same
        transaction. Only prompts take this transition.

        Raises
        ------
        IllegalTransitionError
            ``name`` is a model, or the version is not approved.
        """
        self._require_reason(AuditAction.EVALUATION_REJECTED, reason)
        kind = self.registry.get_model(name).kind
        current = self.registry.get_version(name, version).status
        if current is not VersionStatus.APPROVED or not is_allowed(
            current, VersionStatus.REJECTED, kind
        ):
            raise IllegalTransitionError(
                f"version {version} of {name!r} ({kind}) is {current}; only an approved prompt "
                "version is rejected by its evaluation gate",
                current=current,
                target=VersionStatus.REJECTED,
            )
        change = RegistryChange(
            model=name,
            statuses=(
                StatusChange(version=version, expected=current, target=VersionStatus.REJECTED),
            ),
            records=records,
        )
        self._apply(
            change, AuditAction.EVALUATION_REJECTED, actor, reason, version, None, extra=extra
        )
        return self.registry.get_version(name, version)

    def fail_promotion(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        extra: dict[str, Any] | None = None,
        action: AuditAction = AuditAction.PROMOTION_FAILED,
    ) -> AuditEntry:
        """Audit ``promotion_failed``; a version left on canary is rolled back in the same write.

        The champion is never touched: a failed promotion leaves the model served by the
        version that served it before. A version still ``approved`` (the failure came
        before the canary started) stays approved. ``action``: ``evaluation_failed`` when
        the evaluation gate could not finish.

        Examples
        --------
        >>> service.fail_promotion("churn", 4, actor="wf", reason="timeout")  # doctest: +SKIP
        """
        self._require_reason(action, reason)
        model = self.registry.get_model(name)
        current = self.registry.get_version(name, version).status
        statuses: tuple[StatusChange, ...] = ()
        alias_changes: tuple[AliasChange, ...] = ()
        aliases: dict[Alias, int] = dict(model.aliases)
        if current is VersionStatus.CANARY:
            statuses = (
                StatusChange(version=version, expected=current, target=VersionStatus.ROLLED_BACK),
            )
        if model.challenger == version:
            alias_changes = (AliasChange(alias=Alias.CHALLENGER, expected=version, target=None),)
            aliases.pop(Alias.CHALLENGER)
        change = RegistryChange(model=name, statuses=statuses, aliases=alias_changes)
        return self._apply(
            change,
            action,
            actor,
            reason,
            version,
            aliases,
            extra={"status_before": str(current), **(extra or {})},
        )

    def promote(
        self,
        name: str,
        version: int,
        *,
        actor: str,
        reason: str,
        records: tuple[RecordWrite, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Make ``version`` the champion; the previous champion is archived (and remembered)."""
        self._require_reason(AuditAction.PROMOTED, reason)
        model = self.registry.get_model(name)
        current = self._expect(name, version, VersionStatus.PRODUCTION)
        statuses = [
            StatusChange(version=version, expected=current, target=VersionStatus.PRODUCTION)
        ]
        history = list(model.champion_history)
        previous = model.champion
        if previous is not None and previous != version:
            statuses.append(
                StatusChange(
                    version=previous,
                    expected=VersionStatus.PRODUCTION,
                    target=VersionStatus.ARCHIVED,
                )
            )
            history.append(previous)
        alias_changes = [AliasChange(alias=Alias.CHAMPION, expected=previous, target=version)]
        aliases: dict[Alias, int] = dict(model.aliases)
        aliases[Alias.CHAMPION] = version
        if model.challenger == version:
            alias_changes.append(AliasChange(alias=Alias.CHALLENGER, expected=version, target=None))
            aliases.pop(Alias.CHALLENGER)
        change = RegistryChange(
            model=name,
            statuses=tuple(statuses),
            aliases=tuple(alias_changes),
            champion_history=tuple(history[-20:]),
            records=records,
        )
        self._apply(
            change,
            AuditAction.PROMOTED,
            actor,
            reason,
            version,
            aliases,
            extra={"previous_champion": previous, **(extra or {})},
        )
        return self.registry.get_version(name, version)

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str,
        records: tuple[RecordWrite, ...] = (),
    ) -> ModelVersion:
        """Point ``champion`` back at the previous production version, in one audited write.

        ``records`` are written in the same transaction (the serving record, say).
        """
        self._require_reason(AuditAction.ROLLED_BACK, reason)
        model = self.registry.get_model(name)
        current = model.champion
        if current is None or not model.champion_history:
            raise NoPreviousChampionError(
                f"model {name!r} has no previous champion to roll back to", field="name"
            )
        history = list(model.champion_history)
        previous = history.pop()
        prev_version = self.registry.get_version(name, previous)
        if not is_allowed(prev_version.status, VersionStatus.PRODUCTION):
            raise IllegalTransitionError(
                f"version {previous} of {name!r} is {prev_version.status}; cannot restore it",
                current=prev_version.status,
                target=VersionStatus.PRODUCTION,
            )
        aliases: dict[Alias, int] = dict(model.aliases)
        aliases[Alias.CHAMPION] = previous
        change = RegistryChange(
            model=name,
            statuses=(
                StatusChange(
                    version=current,
                    expected=VersionStatus.PRODUCTION,
                    target=VersionStatus.ROLLED_BACK,
                ),
                StatusChange(
                    version=previous, expected=prev_version.status, target=VersionStatus.PRODUCTION
                ),
            ),
            aliases=(AliasChange(alias=Alias.CHAMPION, expected=current, target=previous),),
            champion_history=tuple(history),
            records=records,
        )
        self._apply(
            change,
            AuditAction.ROLLED_BACK,
            actor,
            reason,
            previous,
            aliases,
            extra={"from_version": current, "to_version": previous},
        )
        return self.registry.get_version(name, previous)

    def record(self, draft: AuditDraft, *, records: tuple[RecordWrite, ...] = ()) -> AuditEntry:
        """Append an audit entry that changes no version (e.g. a suppressed retrain).

        ``records`` (a run lock, a model config) are written in the same transaction as
        the entry; the model need not be registered yet.
        """
        self._require_reason(draft.action, draft.reason)
        if not records:
            return self.audit.append(draft)
        change = RegistryChange(model=draft.model, records=records)
        return self.registry.apply(change, actor=draft.actor, audit=draft)

    # -- reads -------------------------------------------------------------------------------
    def get_model(self, name: str) -> Model:
        return self.registry.get_model(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.registry.get_version(name, version)

    def resolve(self, name: str, ref: str | int) -> ModelVersion:
        """A version by number or by alias (``champion``/``challenger``)."""
        if isinstance(ref, int) or str(ref).isdigit():
            return self.registry.get_version(name, int(ref))
        try:
            alias = Alias(str(ref))
        except ValueError:
            raise InvalidInputError(
                f"version {ref!r} is neither a number nor an alias "
                f"({', '.join(a.value for a in Alias)})",
                field="version",
            ) from None
        model = self.registry.get_model(name)
        number = model.aliases.get(alias)
        if number is None:
            from flywheel.errors import VersionNotFoundError

            raise VersionNotFoundError(f"model {name!r} has no {alias} yet", field="version")
        return self.registry.get_version(name, number)

    def verify(
        self,
        name: str,
        *,
        anchor: ChainHead | None = None,
        verifier: HeadSigner | None = None,
        anchors: Sequence[Anchor] = (),
    ) -> VerifyReport:
        """Verify ``name``'s chain (links, signed head, anchors) and reconcile the registry.

        Every status, alias and artifact digest the registry holds must be what the
        chain's entries say; a difference is a ``registry_mismatch`` problem.
        """
        entries = list(self.audit.entries(name))
        report = verify_chain(
            name,
            entries,
            recorded_head=self.audit.head(name),
            anchor=anchor,
            verifier=verifier,
            anchors=anchors,
        )
        model = self._model_or_none(name)
        versions = self._all_versions(name) if model is not None else []
        mismatches = reconcile(entries, model, versions)
        if not mismatches:
            return report
        return report.model_copy(update={"problems": (*report.problems, *mismatches)})

    def _model_or_none(self, name: str) -> Model | None:
        try:
            return self.registry.get_model(name)
        except ModelNotFoundError:
            return None

    def _all_versions(self, name: str) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token: str | None = None
        while True:
            page = self.registry.list_versions(name, limit=100, page_token=token)
            found.extend(page.items)
            token = page.next_token
            if not token:
                return found

    def champion_at(self, name: str, when: datetime) -> int | None:
        return champion_at(self.audit.entries(name), when)

    # -- internals ---------------------------------------------------------------------------
    def _expect(self, name: str, version: int, target: VersionStatus) -> VersionStatus:
        current = self.registry.get_version(name, version).status
        if not is_allowed(current, target):
            raise IllegalTransitionError(
                f"version {version} of {name!r} is {current}; it cannot become {target}",
                current=current,
                target=target,
            )
        return current

    def _move(
        self,
        name: str,
        version: int,
        transition: Transition,
        actor: str,
        reason: str | None,
        *,
        records: tuple[RecordWrite, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Apply one row of :data:`TRANSITIONS` to ``version``, audited, with ``records``."""
        self._require_reason(transition.action, reason)
        current = self._expect(name, version, transition.target)
        change = RegistryChange(
            model=name,
            statuses=(StatusChange(version=version, expected=current, target=transition.target),),
            records=records,
        )
        self._apply(change, transition.action, actor, reason, version, None, extra=extra)
        return self.registry.get_version(name, version)

    def _apply(
        self,
        change: RegistryChange,
        action: AuditAction,
        actor: str,
        reason: str | None,
        version: int,
        aliases: dict[Alias, int] | None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Apply ``change`` with its audit entry, which records ``aliases`` unless ``None``."""
        details: dict[str, Any] = {
            "transitions": [
                {"version": s.version, "from": str(s.expected), "to": str(s.target)}
                for s in change.statuses
            ],
        }
        if aliases is not None:
            details["aliases"] = {str(k): v for k, v in sorted(aliases.items())}
        if extra:
            details.update(extra)
        audit = AuditDraft(
            model=change.model,
            action=action,
            actor=actor,
            version=version,
            reason=reason,
            details=details,
        )
        return self.registry.apply(change, actor=actor, audit=audit)

    @staticmethod
    def _require_reason(action: AuditAction, reason: str | None) -> None:
        if action in REASON_REQUIRED and not (reason and reason.strip()):
            raise ReasonRequiredError(f"a reason is required to record '{action}'", field="reason")
