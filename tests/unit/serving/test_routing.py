"""Variant routing: sticky A/B arms, the canary role, non-blocking role refresh."""

from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from flywheel.serving.models import Variant
from flywheel.serving.routing import RoleTracker, arm_bucket, assign_arm, role_of


@given(st.text(min_size=1, max_size=64))
def test_the_same_key_always_gets_the_same_arm(key):
    arms = {assign_arm(key, weight=0.3, salt="exp-1") for _ in range(3)}
    assert len(arms) == 1


def test_the_arm_share_follows_the_weight_and_the_salt_reshuffles():
    keys = [f"user-{i}" for i in range(20_000)]
    share = sum(assign_arm(k, weight=0.2, salt="exp-1") is Variant.B for k in keys) / len(keys)
    assert abs(share - 0.2) < 0.01
    moved = sum(
        assign_arm(k, weight=0.5, salt="exp-1") != assign_arm(k, weight=0.5, salt="exp-2")
        for k in keys
    )
    assert 0.4 < moved / len(keys) < 0.6


def test_raising_the_weight_only_moves_keys_from_a_to_b():
    keys = [f"k{i}" for i in range(5_000)]
    before = {k for k in keys if assign_arm(k, weight=0.1, salt="s") is Variant.B}
    after = {k for k in keys if assign_arm(k, weight=0.3, salt="s") is Variant.B}
    assert before < after


def test_no_key_means_the_control_arm():
    assert assign_arm(None, weight=0.99, salt="s") is Variant.A
    assert 0 <= arm_bucket("", "s") < 1


def test_the_challenger_is_the_canary_and_everything_else_serves_as_champion():
    assert role_of(5, champion=4, challenger=5) is Variant.CANARY
    assert role_of(4, champion=4, challenger=5) is Variant.CHAMPION
    assert role_of(3, champion=4, challenger=None) is Variant.CHAMPION


def test_a_stale_role_is_refreshed_in_the_background_without_blocking():
    # Given a registry lookup that waits until released and now says "canary"
    release = threading.Event()
    finished = threading.Event()

    def slow_lookup() -> Variant:
        release.wait(5)
        finished.set()
        return Variant.CANARY

    now = [0.0]
    tracker = RoleTracker(
        slow_lookup, initial=Variant.CHAMPION, ttl_seconds=30, clock=lambda: now[0]
    )
    # When the TTL has passed and the role is asked for
    now[0] = 31.0
    answer = tracker.current()
    # Then the cached answer comes back while the lookup is still running (it did not
    # wait for it), and the new one after the lookup
    assert answer is Variant.CHAMPION
    assert not finished.is_set()
    release.set()
    deadline = time.monotonic() + 2
    while tracker.current() is not Variant.CANARY and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.current() is Variant.CANARY


def test_a_failing_lookup_keeps_the_last_known_role():
    def broken() -> Variant:
        raise RuntimeError("registry down")

    tracker = RoleTracker(broken, initial=Variant.CANARY, ttl_seconds=30)
    assert tracker.refresh() is Variant.CANARY
    assert tracker.failures == 1
