"""At most one training run per model, a cooldown between runs, and no duplicate runs.

The lock is the ``MODEL#<name>`` / ``RUNLOCK`` record. Acquiring it is a conditional
write on the revision read, in the same transaction as the ``retrain_triggered`` audit
entry; a suppressed trigger writes only a ``retrain_suppressed`` entry with the reason.
The decision itself (:func:`decide`) is a pure function of the lock, the trigger, the
policy and the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.clock import isoformat
from flywheel.errors import ConcurrentModificationError
from flywheel.workflows.records import RUN_LOCK, RunLockDoc, model_key, read, write
from flywheel.workflows.state import TriggerReason

if TYPE_CHECKING:
    from datetime import datetime

    from flywheel.clock import Clock
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.workflows.config import RetrainingPolicy
    from flywheel.workflows.state import RunContext, Trigger

#: How many recent trigger event ids the lock remembers for deduplication.
RECENT_EVENTS = 50
#: Attempts at the conditional write before giving up (the ASL retries the step too).
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class LockDecision:
    """Whether a trigger may start a run, and why."""

    acquire: bool
    reason: str
    took_over: bool = False
    reentrant: bool = False


def decide(
    lock: RunLockDoc | None,
    *,
    trigger: Trigger,
    run: RunContext,
    policy: RetrainingPolicy,
    now: datetime,
) -> LockDecision:
    """Decide whether ``trigger`` may start run ``run``.

    In order: the same execution asking again gets its lock back (a retried step); a
    disabled trigger, a duplicate event and a run in progress are suppressed; the
    cooldown since the last run's start suppresses all but manual triggers (when the
    policy lets them bypass it). An expired lock (a run that died without releasing it)
    is taken over.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.workflows.config import RetrainingPolicy
    >>> from flywheel.workflows.state import RunContext, Trigger
    >>> run = RunContext(execution_id="arn:2", execution_name="2", started_at="t",
    ...                  state_machine="training")
    >>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> busy = RunLockDoc(holder="arn:1", run_id="1",
    ...                   expires_at=datetime(2026, 1, 2, tzinfo=UTC))
    >>> decide(busy, trigger=Trigger(reason="drift"), run=run,
    ...        policy=RetrainingPolicy(), now=now).reason
    'run 1 is in progress (lock held until 2026-01-02T00:00:00.000000Z)'
    """
    if lock is not None and lock.holder == run.execution_id:
        return LockDecision(True, "this run already holds the lock", reentrant=True)
    if not policy.allows(trigger.reason):
        return LockDecision(False, f"trigger {trigger.reason!s} is disabled for this model")
    if lock is None:
        return LockDecision(True, f"{trigger.reason!s} trigger; no previous run")
    if trigger.event_id and trigger.event_id in lock.recent_event_ids:
        return LockDecision(False, f"duplicate event {trigger.event_id}: it already started a run")
    held = lock.holder is not None and lock.expires_at is not None and lock.expires_at > now
    if held:
        assert lock.expires_at is not None
        return LockDecision(
            False,
            f"run {lock.run_id} is in progress (lock held until {isoformat(lock.expires_at)})",
        )
    took_over = lock.holder is not None
    cooldown = timedelta(minutes=policy.cooldown_minutes)
    if lock.last_started_at is not None and now - lock.last_started_at < cooldown:
        next_allowed = isoformat(lock.last_started_at + cooldown)
        if trigger.reason is TriggerReason.MANUAL and policy.manual_bypasses_cooldown:
            return LockDecision(
                True,
                f"manual trigger bypasses the cooldown (next automatic run after {next_allowed})",
                took_over=took_over,
            )
        return LockDecision(
            False,
            f"cooldown: the last run started at {isoformat(lock.last_started_at)}; "
            f"next run allowed after {next_allowed}",
        )
    reason = f"{trigger.reason!s} trigger"
    if took_over:
        reason += f"; took over the expired lock of run {lock.run_id}"
    return LockDecision(True, reason, took_over=took_over)


class RunLocks:
    """Acquire and release a model's training lock, auditing every trigger.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> from flywheel.clock import FixedClock
    >>> from flywheel.registry.service import RegistryService
    >>> from flywheel.workflows.config import RetrainingPolicy
    >>> from flywheel.workflows.state import RunContext, Trigger
    >>> audit = InMemoryAuditLog()
    >>> registry = InMemoryModelRegistry(audit)
    >>> locks = RunLocks(RegistryService(registry, audit), registry,
    ...                  clock=FixedClock(datetime(2026, 1, 1, tzinfo=UTC)), ttl_seconds=3600)
    >>> run = RunContext(execution_id="arn:1", execution_name="1", started_at="t",
    ...                  state_machine="training")
    >>> locks.acquire("churn", trigger=Trigger(reason="schedule"), run=run,
    ...               policy=RetrainingPolicy()).acquire
    True
    >>> locks.release("churn", run=run, outcome="done")
    True
    """

    def __init__(
        self,
        registry: RegistryService,
        records: RecordStore,
        *,
        clock: Clock,
        ttl_seconds: int,
    ) -> None:
        self._registry = registry
        self._records = records
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)

    def acquire(
        self, model: str, *, trigger: Trigger, run: RunContext, policy: RetrainingPolicy
    ) -> LockDecision:
        """Take the lock for ``run`` or say why not; either way the trigger is audited once.

        Raises
        ------
        ConcurrentModificationError
            Another trigger kept winning the race (the workflow retries the step).
        """
        for _ in range(MAX_ATTEMPTS):
            found = read(self._records, model_key(model, RUN_LOCK), RunLockDoc)
            lock, revision = found if found else (None, None)
            now = self._clock.now()
            decision = decide(lock, trigger=trigger, run=run, policy=policy, now=now)
            if decision.reentrant:
                return decision
            details = {
                "trigger": str(trigger.reason),
                "event_id": trigger.event_id,
                "source": trigger.source,
                "requested_by": trigger.requested_by,
                "execution_id": run.execution_id,
                "run_id": run.execution_name,
            }
            if not decision.acquire:
                self._registry.record(
                    AuditDraft(
                        model=model,
                        action=AuditAction.RETRAIN_SUPPRESSED,
                        actor=run.actor,
                        reason=decision.reason,
                        details=details,
                    )
                )
                return decision
            recent = (lock.recent_event_ids if lock else ())[-(RECENT_EVENTS - 1) :]
            taken = RunLockDoc(
                holder=run.execution_id,
                run_id=run.execution_name,
                trigger=str(trigger.reason),
                event_id=trigger.event_id,
                acquired_at=now,
                expires_at=now + self._ttl,
                last_started_at=now,
                last_finished_at=lock.last_finished_at if lock else None,
                last_outcome=lock.last_outcome if lock else None,
                recent_event_ids=(*recent, trigger.event_id) if trigger.event_id else recent,
            )
            try:
                self._registry.record(
                    AuditDraft(
                        model=model,
                        action=AuditAction.RETRAIN_TRIGGERED,
                        actor=run.actor,
                        reason=decision.reason,
                        details={**details, "took_over": decision.took_over},
                    ),
                    records=(write(model_key(model, RUN_LOCK), taken, revision),),
                )
            except ConcurrentModificationError:
                continue  # another trigger moved the lock: decide again on what it wrote
            return decision
        raise ConcurrentModificationError(
            f"the run lock of {model!r} is contended; try again", field="lock"
        )

    def release(self, model: str, *, run: RunContext, outcome: str) -> bool:
        """Release the lock if ``run`` holds it (safe to call after any failure).

        Returns
        -------
        bool
            Whether this call released it (``False``: held by another run, or free).
        """
        for _ in range(MAX_ATTEMPTS):
            found = read(self._records, model_key(model, RUN_LOCK), RunLockDoc)
            if found is None or found[0].holder != run.execution_id:
                return False
            lock, revision = found
            released = lock.model_copy(
                update={
                    "holder": None,
                    "expires_at": None,
                    "last_finished_at": self._clock.now(),
                    "last_outcome": outcome,
                }
            )
            try:
                self._records.put_record(write(model_key(model, RUN_LOCK), released, revision))
            except ConcurrentModificationError:
                continue
            return True
        raise ConcurrentModificationError(
            f"the run lock of {model!r} is contended; try again", field="lock"
        )
