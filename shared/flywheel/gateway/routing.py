"""Which version of a prompt answers a call, read from the registry and kept fresh in the
background.

:class:`PromptRouter` reads a prompt's routing on its first call, then every
``ttl_seconds`` in the background (:class:`~flywheel.serving.routing.RoleTracker`): after
the first call, a call never waits for the registry.  The specs of the routed versions
are loaded (SHA-256 verified) with the routing, once per version.

Notes
-----
A prompt's routing is the registry's state, written by the promotion workflow and the
experiments (never by the gateway):

- alias ``champion``: the version answering as variant ``champion``;
- alias ``challenger`` on a version whose status is ``canary``: variant ``canary``, for a
  share of calls drawn at random per call (like Lambda's weighted aliases): the weight of
  the ``MODEL#<name>`` / ``CANARY`` record when it names that version, else the stage's
  ``canary_weight``; with no champion the canary answers every call;
- a running ``MODEL#<name>`` / ``EXPERIMENT`` record started against the champion:
  ``ab`` splits the champion's calls by :func:`~flywheel.serving.routing.assign_arm` on the
  call's ``assignment_key`` (arm ``a``: the champion, arm ``b``: the experiment's version;
  sticky per key), ``shadow`` has its version answer a copy of every call the champion
  answers, in the background.

No champion and no canary is a 404 (``no_champion``); a name that holds no prompt is a
404 (``prompt_not_found``).

Examples
--------
>>> routes = PromptRoutes(name="greet", champion=1, canary=2, canary_weight=0.25)
>>> routes.choose(None, draw=0.1), routes.choose(None, draw=0.9)
((2, <Variant.CANARY: 'canary'>), (1, <Variant.CHAMPION: 'champion'>))
>>> PromptRoutes(name="greet").choose(None, draw=0.5)
Traceback (most recent call last):
...
flywheel.errors.NoChampionError: prompt 'greet' has no champion and no canary: ...
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from flywheel.errors import ModelNotFoundError, NoChampionError, NotFoundError, PromptNotFoundError
from flywheel.registry.models import RegistryKind, VersionStatus, validate_model_name
from flywheel.serving.experiments import ExperimentKind, read_experiment
from flywheel.serving.models import Variant
from flywheel.serving.routing import AbTest, RoleTracker, assign_arm
from flywheel.workflows.records import CANARY, CanaryDoc, model_key, read

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from flywheel.llm.prompts import PromptSpec
    from flywheel.registry.ports import RegistryStorage

__all__ = ["PromptRouter", "PromptRoutes", "read_routes"]

#: Locks that serialize first reads of the same prompt (names hash onto them).
_STRIPES = 64


@dataclass(frozen=True)
class PromptRoutes:
    """One prompt's routing: the versions that answer and the specs of each.

    ``ab`` is the running A/B test (arm ``b``: ``ab.challenger``; arm ``a``: the champion);
    ``shadow`` the version answering copies of the champion's calls.
    """

    name: str
    champion: int | None = None
    canary: int | None = None
    canary_weight: float = 0.1
    ab: AbTest | None = None
    shadow: int | None = None
    #: The running experiment's id, if one applies.
    experiment: str | None = None
    specs: Mapping[int, PromptSpec] = field(default_factory=dict)

    def choose(self, key: str | None, *, draw: float) -> tuple[int, Variant]:
        """The version and variant of one call: ``draw`` is uniform in ``[0, 1)``.

        Raises
        ------
        NoChampionError
            Neither a champion nor a canary.

        Examples
        --------
        >>> test = AbTest(challenger=3, weight=0.5, salt="s")
        >>> routes = PromptRoutes(name="greet", champion=1, ab=test)
        >>> {routes.choose(f"user-{i}", draw=0.5) for i in range(20)} == {
        ...     (1, Variant.A), (3, Variant.B)}
        True
        """
        if self.canary is not None and (self.champion is None or draw < self.canary_weight):
            return self.canary, Variant.CANARY
        if self.champion is None:
            raise NoChampionError(
                f"prompt {self.name!r} has no champion and no canary: promote a version first",
                field="name",
            )
        if self.ab is not None:
            arm = assign_arm(key, weight=self.ab.weight, salt=self.ab.salt)
            return (self.ab.challenger if arm is Variant.B else self.champion), arm
        return self.champion, Variant.CHAMPION

    def shadow_of(self, variant: Variant) -> int | None:
        """The shadow version answering a copy of a call answered as ``variant``.

        Examples
        --------
        >>> routes = PromptRoutes(name="greet", champion=1, shadow=2)
        >>> routes.shadow_of(Variant.CHAMPION), routes.shadow_of(Variant.CANARY)
        (2, None)
        """
        return self.shadow if variant in (Variant.CHAMPION, Variant.A) else None

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version this routing may call."""
        found = (
            self.champion,
            self.canary,
            self.ab.challenger if self.ab is not None else None,
            self.shadow,
        )
        return tuple(dict.fromkeys(v for v in found if v is not None))


def read_routes(
    records: RegistryStorage,
    name: str,
    *,
    load: Callable[[str, int], PromptSpec],
    default_canary_weight: float,
) -> PromptRoutes:
    """``name``'s routing as the registry holds it now, with the routed versions' specs.

    ``load(name, version)`` reads a version's verified spec (cache it: versions never
    change).

    Raises
    ------
    PromptNotFoundError
        No such name, or it holds model versions.
    """
    try:
        model = records.get_model(name)
    except ModelNotFoundError:
        raise PromptNotFoundError(f"prompt {name!r} does not exist", field="name") from None
    if model.kind is not RegistryKind.PROMPT:
        raise PromptNotFoundError(
            f"{name!r} holds model versions, not prompt versions", field="name"
        )
    champion, challenger = model.champion, model.challenger
    canary = None
    if challenger is not None and challenger != champion:
        status = records.get_version(name, challenger).status
        canary = challenger if status is VersionStatus.CANARY else None
    weight = default_canary_weight
    if canary is not None:
        step = read(records, model_key(name, CANARY), CanaryDoc)
        if step is not None and step[0].version == canary:
            weight = step[0].weight
    ab: AbTest | None = None
    shadow = experiment_id = None
    found = read_experiment(records, name)
    if found is not None:
        experiment = found[0]
        if experiment.running and champion is not None and experiment.control == champion:
            experiment_id = experiment.id
            ab = experiment.ab_test()
            shadow = experiment.version if experiment.kind is ExperimentKind.SHADOW else None
    routes = PromptRoutes(
        name=name,
        champion=champion,
        canary=canary,
        canary_weight=weight,
        ab=ab,
        shadow=shadow,
        experiment=experiment_id,
    )
    specs = {version: load(name, version) for version in routes.versions}
    return replace(routes, specs=specs)


class PromptRouter:
    """Each prompt's :class:`PromptRoutes`, read on its first call and refreshed in the
    background every ``ttl_seconds``; thread-safe.

    A name that holds no prompt is remembered as such (and looked up again after the
    TTL, in the background), so unknown names do not reach the registry on every call.
    At most ``max_prompts`` names are kept; the oldest is forgotten first. A refresh that
    fails keeps the last routing (counted in the tracker's ``failures``).

    Examples
    --------
    >>> router = PromptRouter(lambda name: PromptRoutes(name=name, champion=1))
    >>> router.routes("greet").champion
    1
    >>> router.routes("Not A Name")
    Traceback (most recent call last):
    ...
    flywheel.errors.PromptNotFoundError: prompt 'Not A Name' does not exist
    """

    def __init__(
        self,
        lookup: Callable[[str], PromptRoutes],
        *,
        ttl_seconds: float = 30.0,
        max_prompts: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl_seconds
        self._max = max_prompts
        self._clock = clock
        self._trackers: dict[str, RoleTracker[PromptRoutes | NotFoundError]] = {}
        self._lock = threading.Lock()
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))

    def routes(self, name: str) -> PromptRoutes:
        """``name``'s routing now (the first call of a name reads the registry).

        Raises
        ------
        PromptNotFoundError
            Not a prompt (also for a name that is not a valid registry name).
        """
        tracker = self._trackers.get(name) or self._track(name)
        found = tracker.current()
        if isinstance(found, NotFoundError):
            raise type(found)(found.message, field=found.field, details=dict(found.details))
        return found

    def refresh(self) -> None:
        """Read every known prompt's routing again, now (tests, the local runtime)."""
        with self._lock:
            trackers = list(self._trackers.values())
        for tracker in trackers:
            tracker.refresh()

    def _resolve(self, name: str) -> PromptRoutes | NotFoundError:
        try:
            return self._lookup(name)
        except NotFoundError as err:
            return err

    def _track(self, name: str) -> RoleTracker[PromptRoutes | NotFoundError]:
        try:
            validate_model_name(name)
        except ValueError:
            raise PromptNotFoundError(f"prompt {name!r} does not exist", field="name") from None
        with self._stripes[hash(name) % _STRIPES]:
            tracker = self._trackers.get(name)
            if tracker is not None:
                return tracker
            tracker = RoleTracker(
                lambda: self._resolve(name),
                initial=self._resolve(name),
                ttl_seconds=self._ttl,
                clock=self._clock,
            )
            with self._lock:
                while len(self._trackers) >= self._max:
                    self._trackers.pop(next(iter(self._trackers)))
                self._trackers[name] = tracker
            return tracker
