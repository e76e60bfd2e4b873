"""Which variant answers a request: canary role, sticky A/B arms, and the shadow.

One mechanism per concern, the same in AWS and locally (ADR 20).  Canary traffic is
split *outside* the function, by the weights of Lambda alias ``live`` (set by the
promotion workflow; locally by ``flywheel serve``); :class:`RoleTracker` keeps the
pinned version's role fresh (``canary`` when it is the model's ``challenger``,
``champion`` otherwise) without ever blocking a request.  A/B arms are chosen *inside*
the function: :func:`assign_arm` hashes ``salt:key`` with SHA-256 to a number in
``[0, 1)``; below ``weight`` is arm ``b`` (the challenger), the rest arm ``a``.  The
same key always lands in the same arm, on every instance and after restarts; changing
the salt reshuffles; requests without a key go to ``a``.  The shadow version scores a
copy of each request in the background (:class:`~flywheel.serving.service.InferenceService`).

Examples
--------
>>> arm = assign_arm("user-42", weight=0.5, salt="exp-1")
>>> arm == assign_arm("user-42", weight=0.5, salt="exp-1")
True
>>> assign_arm(None, weight=0.5, salt="exp-1")
<Variant.A: 'a'>
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import Field

from flywheel.models import Frozen
from flywheel.serving.models import Variant

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["AbTest", "RoleTracker", "arm_bucket", "assign_arm", "role_of"]

_SCALE = float(2**64)
T = TypeVar("T")


class AbTest(Frozen):
    """A sticky A/B test: arm ``a`` is the pinned version, arm ``b`` the ``challenger``.

    Examples
    --------
    >>> AbTest(challenger=4, weight=0.2, salt="spring-test").weight
    0.2
    """

    challenger: int = Field(ge=1, description="Version served to arm b.")
    weight: float = Field(default=0.5, gt=0, lt=1, description="Share of keys in arm b.")
    salt: str = Field(default="ab", min_length=1, max_length=64, description="Experiment id.")


def arm_bucket(key: str, salt: str) -> float:
    """A uniform number in ``[0, 1)`` determined by ``salt`` and ``key`` only.

    Examples
    --------
    >>> 0.0 <= arm_bucket("user-1", "exp") < 1.0
    True
    """
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_arm(key: str | None, *, weight: float, salt: str) -> Variant:
    """Arm ``b`` for a ``weight`` share of keys, ``a`` for the rest and for no key.

    Examples
    --------
    >>> sum(assign_arm(f"u{i}", weight=0.3, salt="s") is Variant.B for i in range(10_000))
    3053
    """
    if key is None:
        return Variant.A
    return Variant.B if arm_bucket(key, salt) < weight else Variant.A


def role_of(version: int, *, champion: int | None, challenger: int | None) -> Variant:
    """``canary`` when ``version`` is the challenger, else ``champion``.

    A version that is neither (a bootstrap function, or one whose alias moved
    on while traffic drains) reports ``champion``: it serves production traffic.

    Examples
    --------
    >>> role_of(5, champion=4, challenger=5)
    <Variant.CANARY: 'canary'>
    >>> role_of(4, champion=4, challenger=5)
    <Variant.CHAMPION: 'champion'>
    """
    del champion  # the champion and "neither" both serve production traffic
    return Variant.CANARY if challenger == version else Variant.CHAMPION


class RoleTracker(Generic[T]):
    """The pinned version's role, refreshed in the background every ``ttl_seconds``.

    :meth:`current` never waits on I/O: when the cached answer is older than the
    TTL it starts one background refresh and returns the cached answer.  A
    failed refresh keeps the last known role (and is retried after the TTL).
    The role may be any value: the inference service tracks a
    :class:`~flywheel.serving.service.ServingPlan` (role plus the registry's experiment).

    Parameters
    ----------
    lookup
        Returns the current role (reads the registry's aliases).
    initial
        The role found at start-up.
    ttl_seconds
        How long an answer is trusted.
    clock
        Monotonic seconds (injectable for tests).

    Examples
    --------
    >>> tracker = RoleTracker(lambda: Variant.CANARY, initial=Variant.CHAMPION, ttl_seconds=60)
    >>> tracker.current()
    <Variant.CHAMPION: 'champion'>
    """

    def __init__(
        self,
        lookup: Callable[[], T],
        *,
        initial: T,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._role = initial
        self._ttl = ttl_seconds
        self._clock = clock
        self._checked = clock()
        self._lock = threading.Lock()
        self._refreshing = False
        self.failures = 0

    def current(self) -> T:
        """The role to report now (never blocks on the registry)."""
        if self._clock() - self._checked >= self._ttl and not self._refreshing:
            self._start_refresh()
        return self._role

    def refresh(self) -> T:
        """Look the role up now, synchronously (start-up, tests)."""
        try:
            self._role = self._lookup()
        except Exception:
            self.failures += 1
        finally:
            self._checked = self._clock()
        return self._role

    def _start_refresh(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                self.refresh()
            finally:
                self._refreshing = False

        threading.Thread(target=run, name="flywheel-role-refresh", daemon=True).start()
