"""At most one run per model, cooldown and dedupe; every trigger audited with its reason."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from flywheel.workflows.config import RetrainingPolicy
from flywheel.workflows.records import RUN_LOCK, RunLockDoc, model_key, read
from flywheel.workflows.runs import decide
from flywheel.workflows.state import RunContext, Trigger, TriggerReason
from tests.unit.workflows.conftest import World
from tests.workflow_support import MODEL


def run(name: str) -> RunContext:
    return RunContext(
        execution_id=f"arn:aws:states:us-east-1:1:execution:training:{name}",
        execution_name=name,
        started_at="2026-01-01T00:00:00Z",
        state_machine="flywheel-test-training",
    )


def trigger(reason: str, event_id: str | None = None) -> Trigger:
    return Trigger(reason=TriggerReason(reason), event_id=event_id)


def acquire(world: World, name: str, reason: str, event_id: str | None = None) -> bool:
    policy = world.configs.get(MODEL).config.retraining
    return world.training.locks.acquire(
        MODEL, trigger=trigger(reason, event_id), run=run(name), policy=policy
    ).acquire


def last_entry(world: World) -> tuple[str, str | None]:
    entry = list(world.audit.entries(MODEL))[-1]
    return str(entry.action), entry.reason


def test_a_trigger_within_the_cooldown_is_suppressed_and_audited(world: World) -> None:
    assert acquire(world, "r1", "schedule")
    world.training.locks.release(MODEL, run=run("r1"), outcome="approved")
    world.clock.advance(timedelta(minutes=30))

    assert not acquire(world, "r2", "drift")

    action, reason = last_entry(world)
    assert action == "retrain_suppressed"
    assert reason == (
        "cooldown: the last run started at 2026-01-01T12:00:00.000000Z; "
        "next run allowed after 2026-01-01T13:00:00.000000Z"
    )


def test_after_the_cooldown_the_next_trigger_runs(world: World) -> None:
    assert acquire(world, "r1", "schedule")
    world.training.locks.release(MODEL, run=run("r1"), outcome="approved")
    world.clock.advance(timedelta(minutes=61))

    assert acquire(world, "r2", "performance")
    assert last_entry(world) == ("retrain_triggered", "performance trigger")


def test_manual_triggers_bypass_the_cooldown_but_never_the_lock(world: World) -> None:
    assert acquire(world, "r1", "schedule")
    # While r1 runs, even a manual trigger is suppressed ...
    assert not acquire(world, "r2", "manual")
    assert last_entry(world)[1] == (
        "run r1 is in progress (lock held until 2026-01-01T18:00:00.000000Z)"
    )
    # ... but once it is done, a manual trigger may skip the cooldown.
    world.training.locks.release(MODEL, run=run("r1"), outcome="gate_rejected")
    assert acquire(world, "r3", "manual")
    action, reason = last_entry(world)
    assert action == "retrain_triggered"
    assert reason is not None
    assert reason.startswith("manual trigger bypasses the cooldown")


def test_a_redelivered_event_starts_no_second_run(world: World) -> None:
    assert acquire(world, "r1", "drift", event_id="evt-1")
    world.training.locks.release(MODEL, run=run("r1"), outcome="approved")
    world.clock.advance(timedelta(hours=2))

    assert not acquire(world, "r2", "drift", event_id="evt-1")
    assert last_entry(world) == (
        "retrain_suppressed",
        "duplicate event evt-1: it already started a run",
    )


def test_a_disabled_trigger_is_suppressed(world: World) -> None:
    world.configure(retraining={"triggers": ["manual", "schedule"]})

    assert not acquire(world, "r1", "drift")
    assert last_entry(world) == ("retrain_suppressed", "trigger drift is disabled for this model")


def test_a_retried_step_gets_its_own_lock_back_without_a_second_audit_entry(world: World) -> None:
    assert acquire(world, "r1", "schedule")
    before = world.actions()

    assert acquire(world, "r1", "schedule")
    assert world.actions() == before


def test_an_expired_lock_is_taken_over(world: World) -> None:
    assert acquire(world, "r1", "schedule")  # r1 dies without releasing
    world.clock.advance(timedelta(hours=7))  # past the 6 h TTL

    assert acquire(world, "r2", "schedule")
    entry = list(world.audit.entries(MODEL))[-1]
    assert entry.details["took_over"] is True
    assert entry.reason == "schedule trigger; took over the expired lock of run r1"


def test_only_the_holder_releases_the_lock(world: World) -> None:
    assert acquire(world, "r1", "schedule")

    assert world.training.locks.release(MODEL, run=run("r2"), outcome="failed") is False
    found = read(world.store, model_key(MODEL, RUN_LOCK), RunLockDoc)
    assert found is not None
    assert found[0].holder == run("r1").execution_id


def test_concurrent_triggers_start_exactly_one_run(world: World) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        results.append(acquire(world, f"r{i}", "drift"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [False] * 7 + [True]
    actions = world.actions()
    assert actions.count("retrain_triggered") == 1
    assert actions.count("retrain_suppressed") == 7
    assert world.registry.verify(MODEL).ok


NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
offsets = st.one_of(st.none(), st.integers(min_value=-600, max_value=600))


@given(
    holder=st.sampled_from([None, "arn:other", "arn:me"]),
    expires=offsets,
    last_started=offsets,
    reason=st.sampled_from(list(TriggerReason)),
    cooldown=st.integers(min_value=0, max_value=300),
    bypass=st.booleans(),
)
def test_decide_never_lets_two_runs_hold_the_lock_or_skip_the_cooldown(
    holder: str | None,
    expires: int | None,
    last_started: int | None,
    reason: TriggerReason,
    cooldown: int,
    bypass: bool,
) -> None:
    lock = RunLockDoc(
        holder=holder,
        run_id="other",
        expires_at=NOW + timedelta(minutes=expires) if expires is not None else None,
        last_started_at=NOW + timedelta(minutes=last_started) if last_started is not None else None,
    )
    me = RunContext(execution_id="arn:me", execution_name="me", started_at="t", state_machine="m")
    policy = RetrainingPolicy(cooldown_minutes=cooldown, manual_bypasses_cooldown=bypass)

    decision = decide(lock, trigger=Trigger(reason=reason), run=me, policy=policy, now=NOW)

    held_by_other = holder == "arn:other" and lock.expires_at is not None and lock.expires_at > NOW
    in_cooldown = lock.last_started_at is not None and NOW - lock.last_started_at < timedelta(
        minutes=cooldown
    )
    if holder == "arn:me":
        assert decision.acquire
    elif decision.acquire:
        assert not held_by_other
        assert not in_cooldown or (reason is TriggerReason.MANUAL and bypass)
