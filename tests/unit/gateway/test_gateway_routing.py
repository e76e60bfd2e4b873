"""Which prompt version answers: champion, canary by its recorded weight, A/B arms sticky per
key, shadow copies of the champion's calls; 404s; routing refreshed without blocking."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flywheel.adapters.memory_metrics import InMemoryGatewayMetrics
from flywheel.composition import InMemoryPlatform
from flywheel.errors import NoChampionError, PromptNotFoundError
from flywheel.gateway.routing import PromptRouter, PromptRoutes
from flywheel.gateway.settings import GatewaySettings
from flywheel.llm.invocation import InvokeRequest
from flywheel.serving import http
from tests.factories import version_draft
from tests.gateway_support import (
    NAME,
    VARIABLES,
    add_prompt,
    captured,
    draws,
    gateway,
    promote,
    start_canary,
    start_experiment,
)


def _platform() -> InMemoryPlatform:
    return InMemoryPlatform(GatewaySettings(backend="local", canary_weight=0.1))


def _answer(gw: Any, key: str | None = None) -> tuple[int, str]:
    answer = gw.invoke(NAME, InvokeRequest(variables=VARIABLES, assignment_key=key), request_id="r")
    return answer.version, str(answer.variant)


def test_the_champion_answers_every_call() -> None:
    platform = _platform()
    add_prompt(platform)
    promote(platform, add_prompt(platform, system="Version two."))
    gw = gateway(platform, draw=draws(0.0))

    assert {_answer(gw) for _ in range(5)} == {(2, "champion")}


def test_a_canary_takes_the_share_its_canary_record_gives_it() -> None:
    platform = _platform()
    promote(platform, add_prompt(platform))
    start_canary(platform, add_prompt(platform, system="Version two."), weight=0.3)
    # draws below the weight go to the canary, the rest to the champion
    gw = gateway(platform, draw=draws(0.29, 0.31, 0.0, 0.99))

    assert [_answer(gw) for _ in range(4)] == [
        (2, "canary"), (1, "champion"), (2, "canary"), (1, "champion"),
    ]  # fmt: skip


def test_a_canary_record_of_another_version_leaves_the_stages_default_weight() -> None:
    platform = _platform()
    promote(platform, add_prompt(platform))
    start_canary(platform, add_prompt(platform, system="Version two."), weight=0.9, recorded=7)
    gw = gateway(platform, draw=draws(0.2))

    assert _answer(gw) == (1, "champion")  # 0.2 is above the default 0.1, below 0.9
    assert gw.router.routes(NAME).canary_weight == 0.1


def test_a_canary_without_a_champion_answers_every_call() -> None:
    platform = _platform()
    start_canary(platform, add_prompt(platform), weight=0.1)
    gw = gateway(platform, draw=draws(0.99))

    assert _answer(gw) == (1, "canary")


def test_no_champion_and_no_canary_is_a_404_no_champion() -> None:
    platform = _platform()
    add_prompt(platform)
    metrics = InMemoryGatewayMetrics()
    gw = gateway(platform, metrics=metrics)

    with pytest.raises(NoChampionError) as missing:
        _answer(gw)

    assert http.error_response(missing.value, request_id="r")[0] == 404
    assert missing.value.code == "no_champion"
    assert metrics.calls == []


@pytest.mark.parametrize("name", ["nobody", "churn", "Not A Name", "x" * 80])
def test_a_name_that_holds_no_prompt_is_a_404(name: str) -> None:
    platform = _platform()
    platform.registry.register(version_draft(), actor="ci")  # model "churn"
    gw = gateway(platform)

    with pytest.raises(PromptNotFoundError) as missing:
        gw.invoke(name, InvokeRequest(variables=VARIABLES), request_id="r")

    assert http.error_response(missing.value, request_id="r")[0] == 404


def test_ab_arms_are_sticky_per_assignment_key() -> None:
    platform = _platform()
    champion = add_prompt(platform)
    promote(platform, champion)
    challenger = add_prompt(platform, system="Version two.")
    start_experiment(platform, "ab", challenger, control=champion, weight=0.5, salt="spring")
    gw = gateway(platform)

    seen: dict[str, set[tuple[int, str]]] = {}
    for i in range(40):
        key = f"user-{i % 10}"
        seen.setdefault(key, set()).add(_answer(gw, key))

    assert all(len(arms) == 1 for arms in seen.values())
    assert set().union(*seen.values()) == {(1, "a"), (2, "b")}
    assert _answer(gw, None) == (1, "a")  # no key: arm a


def test_an_experiment_started_against_an_earlier_champion_does_not_apply() -> None:
    platform = _platform()
    first = add_prompt(platform)
    promote(platform, first)
    second = add_prompt(platform, system="Version two.")
    start_experiment(platform, "ab", second, control=first, weight=0.5, salt="s")
    promote(platform, add_prompt(platform, system="Version three."))
    gw = gateway(platform)

    assert {_answer(gw, f"user-{i}") for i in range(20)} == {(3, "champion")}


def test_the_shadow_answers_copies_of_the_champions_calls_only() -> None:
    platform = _platform()
    champion = add_prompt(platform)
    promote(platform, champion)
    shadow = add_prompt(platform, system="The shadow.")
    start_experiment(platform, "shadow", shadow, control=champion)
    start_canary(platform, add_prompt(platform, system="Version three."), weight=0.5)
    gw = gateway(platform, draw=draws(0.9, 0.1))

    assert [_answer(gw), _answer(gw)] == [(1, "champion"), (3, "canary")]

    rows = captured(platform, gw)
    assert sorted((r["version"], r["variant"]) for r in rows) == [
        (1, "champion"), (2, "shadow"), (3, "canary"),
    ]  # fmt: skip


# -- the router ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_refresh_never_blocks_a_call_and_its_answer_is_used_once_read() -> None:
    clock = Clock()
    reading = threading.Event()
    release = threading.Event()
    answers = iter([PromptRoutes(name=NAME, champion=1), PromptRoutes(name=NAME, champion=2)])

    def lookup(name: str) -> PromptRoutes:
        found = next(answers)
        if found.champion == 2:  # the background refresh: a slow registry
            reading.set()
            release.wait(10)
        return found

    router = PromptRouter(lookup, ttl_seconds=30, clock=clock)
    assert router.routes(NAME).champion == 1
    clock.now = 31.0

    assert router.routes(NAME).champion == 1  # the refresh started, the call did not wait
    assert reading.wait(5)
    assert router.routes(NAME).champion == 1
    release.set()
    for _ in range(200):
        if router.routes(NAME).champion == 2:
            break
        threading.Event().wait(0.01)
    assert router.routes(NAME).champion == 2


def test_unknown_names_are_remembered_and_looked_up_again_only_after_the_ttl() -> None:
    clock = Clock()
    looked_up: list[str] = []

    def lookup(name: str) -> PromptRoutes:
        looked_up.append(name)
        raise PromptNotFoundError(f"prompt {name!r} does not exist", field="name")

    router = PromptRouter(lookup, ttl_seconds=30, clock=clock)
    for _ in range(5):
        with pytest.raises(PromptNotFoundError):
            router.routes("nobody")

    assert looked_up == ["nobody"]


def test_invalid_names_never_reach_the_registry_and_the_router_stays_bounded() -> None:
    looked_up: list[str] = []

    def lookup(name: str) -> PromptRoutes:
        looked_up.append(name)
        return PromptRoutes(name=name, champion=1)

    router = PromptRouter(lookup, max_prompts=2)
    with pytest.raises(PromptNotFoundError):
        router.routes("../etc/passwd")
    for name in ("a", "b", "c", "a"):
        router.routes(name)

    assert looked_up == ["a", "b", "c", "a"]  # "a" was forgotten when "c" came
