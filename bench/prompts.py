"""Prompt benchmark: what a call costs before and after the provider, one run.

Run: ``.venv/bin/python bench/prompts.py [--quick]``

For the example prompt ``ticket-summary`` (v1: text; v2: JSON by an output schema) and
tickets of 200 and 8,000 characters, p50 and p99 (ms, warm calls) of:

- ``render``: variables checked against the spec and both templates filled, hashed;
- ``render + request + cost``: the above, the provider request built, the price looked
  up and the cost computed (what a gateway does besides I/O);
- ``load verified``: the version's spec read back from the in-memory artifact store,
  SHA-256 checked and parsed (once per cold start, or per version change);
- ``stand-in``: the local stand-in answering through the provider port (it is not a
  model; the figure is its own overhead).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from _timing import p50_p99_ms as _p50_p99_ms  # noqa: E402


def _rows(repeats: int) -> list[tuple[str, str, float, float]]:
    from flywheel.adapters.local_llm import LocalProvider
    from flywheel.llm.prices import default_prices
    from flywheel.llm.prompts import PromptSpec, render
    from flywheel.llm.providers import Usage, request_for
    from flywheel.sdk import Flywheel

    fw = Flywheel.in_memory(actor="bench")
    prices = default_prices()
    provider = LocalProvider()

    def costed(spec: PromptSpec, values: dict[str, Any]) -> None:
        request = request_for(spec, render(spec, values))
        usage = Usage(input_tokens=len(request.user) // 4, output_tokens=200)
        prices.cost(usage, spec.model_id, spec.provider)

    def answered(spec: PromptSpec, values: dict[str, Any]) -> None:
        provider.complete(request_for(spec, render(spec, values)))

    rows: list[tuple[str, str, float, float]] = []
    for number in (1, 2):
        fw.register_prompt(ROOT / "examples" / "prompts" / f"ticket-summary.v{number}.yaml")
        spec = fw.prompt("ticket-summary", number).spec
        for size in (200, 8000):
            words = "The export to CSV fails with a timeout for accounts over 10k rows. "
            ticket = (words * (size // len(words) + 1))[:size]
            values = {"customer": "ACME Corp", "area": "performance", "ticket": ticket}
            label = f"v{number} ({'json' if spec.output_schema else 'text'}), {size} chars"
            for step, call, times in (
                ("render", render, repeats),
                ("render + request + cost", costed, repeats),
                ("stand-in", answered, repeats // 4),
            ):
                p50, p99 = _p50_p99_ms(lambda c=call, s=spec, v=values: c(s, v), times)
                rows.append((label, step, p50, p99))
        p50, p99 = _p50_p99_ms(lambda n=number: fw.prompt("ticket-summary", n), repeats // 4)
        rows.append((f"v{number}", "load verified", p50, p99))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    repeats = 200 if parser.parse_args().quick else 2000
    print(f"{'prompt':28} {'step':26} {'p50 ms':>8} {'p99 ms':>8}")
    for label, step, p50, p99 in _rows(repeats):
        print(f"{label:28} {step:26} {p50:8.3f} {p99:8.3f}")


if __name__ == "__main__":
    main()
