"""The gateway follows a prompt's promotion workflow: during each canary step it sends the
canary the share the workflow recorded, and after the workflow promotes, the champion."""

from __future__ import annotations

from flywheel.llm.invocation import InvokeRequest
from tests.gateway_support import draws, gateway
from tests.unit.workflows.test_prompt_promotion import NAME, stage

VARIABLES = {"customer": "ACME", "ticket": "The export fails."}


def test_each_canary_step_gets_its_recorded_share_and_then_the_champion_answers() -> None:
    world = stage()  # two steps: 10 %, then 50 %
    first = world.register("Customer {{ customer }} wrote:\n\n{{ ticket }}")
    assert world.approve_and_promote(first).status == "SUCCEEDED"
    second = world.register("Summarize.\n{{ customer }}: {{ ticket }}")
    seen: list[tuple[int, float, list[tuple[int, str]]]] = []

    def during_bake(step: int) -> None:
        # a fresh execution environment reads the routing the step left in the registry
        gw = gateway(world.platform, draw=draws(0.09, 0.11, 0.49, 0.51))
        answers = [
            gw.invoke(NAME, InvokeRequest(variables=VARIABLES), request_id=f"{step}-{i}")
            for i in range(4)
        ]
        weight = gw.router.routes(NAME).canary_weight
        seen.append((step, weight, [(a.version, a.variant) for a in answers]))

    world.during_bake = during_bake
    assert world.approve_and_promote(second).status == "SUCCEEDED"

    assert seen == [
        (1, 0.1, [(2, "canary"), (1, "champion"), (1, "champion"), (1, "champion")]),
        (2, 0.5, [(2, "canary"), (2, "canary"), (2, "canary"), (1, "champion")]),
    ]
    after = gateway(world.platform, draw=draws(0.0))
    answer = after.invoke(NAME, InvokeRequest(variables=VARIABLES), request_id="after")
    assert (answer.version, answer.variant) == (second, "champion")
