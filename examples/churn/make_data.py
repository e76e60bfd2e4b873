"""Write a churn-like customer table with the columns teams really have.

Numbers with gaps, a whole-number column, categories (one with gaps), a yes/no column,
and a short free-text note from the last support contact; ``churned`` is the label.
Deterministic: the same file every time.

    python examples/churn/make_data.py [OUT.csv] [--rows N]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

NOTES = {
    "happy": ["love the product", "great support thanks", "works well for our team"],
    "neutral": ["asked about invoices", "changed billing address", "question about exports"],
    "unhappy": [
        "cancel my account please",
        "too expensive for what we use",
        "slow support again, thinking of leaving",
        "billing error twice this month",
    ],
}


def rows(n: int, seed: int = 7) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    out: list[dict[str, str]] = []
    for _ in range(n):
        plan = str(rng.choice(["basic", "pro", "team", "enterprise"], p=[0.4, 0.3, 0.2, 0.1]))
        region = str(rng.choice(["eu", "us", "apac", "latam"]))
        tenure = int(rng.integers(1, 72))
        tier = 1 + ["basic", "pro", "team", "enterprise"].index(plan)
        spend = float(rng.gamma(2.0, 30.0) * tier)
        autopay = bool(rng.random() < 0.6)
        mood = str(rng.choice(["happy", "neutral", "unhappy"], p=[0.4, 0.35, 0.25]))
        note = str(rng.choice(NOTES[mood]))
        risk = -1.2 + 1.6 * (mood == "unhappy") - 0.8 * (mood == "happy") - 0.03 * tenure
        risk += 0.6 * (plan == "basic") - 0.7 * autopay + 0.004 * spend
        churned = rng.random() < 1 / (1 + np.exp(-risk))
        age = "" if rng.random() < 0.08 else f"{rng.normal(41, 11):.0f}"
        out.append(
            {
                "age": age,
                "tenure_months": str(tenure),
                "monthly_spend": f"{spend:.2f}",
                "plan": plan,
                "region": "" if rng.random() < 0.05 else region,
                "autopay": "true" if autopay else "false",
                "support_note": note,
                "churned": "yes" if churned else "no",
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("churn.csv")))
    parser.add_argument("--rows", type=int, default=3000)
    args = parser.parse_args()
    table = rows(args.rows)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {len(table)} rows to {args.out}")


if __name__ == "__main__":
    main()
