"""A labelled set for the self-consistency check, built in memory from the groundedness
set's facts (:data:`tests.labelled_sets.FACTS`), deterministically.

Each row is an answer of two claim-bearing sentences (two facts, as their passages say
them) and three sampled answers; ``label`` is ``consistent`` or ``inconsistent``, and
``kind`` says how the samples were made:

- consistent: ``same`` (the two sentences, in either order), ``paraphrase`` (the facts'
  paraphrases), ``reworded`` (in other words, which lexical support misses), ``partial``
  (one sample leaves the second sentence out);
- inconsistent: two of the three samples change the first sentence by one of the
  groundedness set's hard negatives (``changed_number``, ``negated``, ``antonym``,
  ``entity_swap``, ``scope_change``, ``fabricated``: another claim instead).

What it cannot hold: an answer the samples agree on that is wrong anyway. Agreement is
not truth, and no row here says otherwise.
"""

from __future__ import annotations

import random
from typing import Any

from tests.labelled_sets import FACTS, SEED, Fact, Quality, _other

#: The number of samples of every row.
SAMPLES = 3


def _variants(fact: Fact, values: dict[str, str], rng: random.Random) -> dict[str, list[str]]:
    """The fact's sentences by kind, filled with ``values`` (changed numbers twice, with
    two other values)."""
    found: dict[str, list[str]] = {
        "paraphrase": [p.format(**values) for p in fact.paraphrases],
        "reworded": [r.format(**values) for r in fact.reworded],
    }
    numeric = [k for k in fact.slots if any(ch.isdigit() for ch in values[k])]
    if numeric:
        slot = rng.choice(numeric)
        found["changed_number"] = [
            fact.passage.format(**{**values, slot: _other(values[slot], fact.slots[slot], rng)})
            for _ in range(2)
        ]
    for kind, text in (
        ("negated", fact.negated),
        ("antonym", fact.antonym),
        ("entity_swap", fact.entity_swap),
        ("scope_change", fact.scope),
        ("fabricated", fact.fabricated),
    ):
        if text is not None:
            found[kind] = [text.format(**values)]
    return {kind: texts for kind, texts in found.items() if texts}


def consistency_rows() -> list[dict[str, Any]]:
    """The set: ``{id, kind, label, answer, samples}`` rows."""
    rng = random.Random(SEED + 2)
    rows: list[tuple[str, str, str, list[str]]] = []
    filled = [
        (fact, {name: rng.choice(options) for name, options in fact.slots.items()})
        for fact in FACTS
    ]
    for i, (fact, values) in enumerate(filled):
        other, other_values = filled[(i + 1) % len(filled)]
        first, second = fact.passage.format(**values), other.passage.format(**other_values)
        answer = f"{first} {second}"
        variants = _variants(fact, values, rng)

        def add(kind: str, label: str, samples: list[str]) -> None:
            rows.append((kind, label, answer, samples))  # noqa: B023

        add("same", "consistent", [answer, f"{second} {first}", answer])
        add("partial", "consistent", [first, answer, f"{second} {first}"])
        for kind in ("paraphrase", "reworded"):
            for text in variants.get(kind, []):
                add(kind, "consistent", [f"{text} {second}", f"{second} {text}", answer])
        for kind in ("changed_number", "negated", "antonym", "entity_swap", "scope_change",
                     "fabricated"):  # fmt: skip
            texts = variants.get(kind)
            if texts is None:
                continue
            wrong = [texts[0], texts[-1]]
            add(kind, "inconsistent", [f"{wrong[0]} {second}", f"{second} {wrong[1]}", answer])
    return [
        {"id": f"con-{i:03d}", "kind": kind, "label": label, "answer": answer, "samples": samples}
        for i, (kind, label, answer, samples) in enumerate(rows, 1)
    ]


def consistency_quality(threshold: float | None = None) -> Quality:
    """The agreement scoring on :func:`consistency_rows` at ``threshold`` (default: the
    evaluator's): a row is found (``inconsistent``) when its score is below it."""
    from flywheel.llm.evaluators.consistency import DEFAULT_THRESHOLD, agreement

    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    found = Quality("consistency", "inconsistent")
    for row in consistency_rows():
        score, _evidence = agreement(row["answer"], row["samples"])
        found.add(row["kind"], row["label"] == "inconsistent", score < limit)
    return found
