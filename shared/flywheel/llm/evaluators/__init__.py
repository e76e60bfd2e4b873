"""Evaluators that need no service: toxicity, groundedness, relevance and format.

They implement :class:`~flywheel.llm.evaluation.Evaluator` with numpy and the standard
library only: no network, no download, nothing unpickled at run time. They serve the
local runtime, tests and a first screen; in production, Amazon Bedrock Guardrails
(:mod:`flywheel.adapters.bedrock_guardrails`) or a judge prompt
(:mod:`flywheel.llm.evaluators.judge`) judge better (what each misses is measured by
``bench/llm_eval.py``). The self-consistency check
(:mod:`flywheel.llm.evaluators.consistency`) reuses groundedness's machinery but asks
the answering model for more samples, so it is built apart, by the gate that sets
``consistency_min``.

Examples
--------
>>> from flywheel.llm.evaluation import EvaluationInput
>>> evaluators = embedded_evaluators({"groundedness": 1.0})
>>> sorted(evaluators)
['format', 'groundedness', 'relevance', 'toxicity']
>>> item = EvaluationInput(answer="Exports time out above 10k rows.",
...                        question="Why do my exports fail?",
...                        context=("Exports of more than 10k rows time out.",))
>>> {name: e.evaluate(item).verdict.value for name, e in sorted(evaluators.items())}
{'format': 'pass', 'groundedness': 'pass', 'relevance': 'pass', 'toxicity': 'pass'}
>>> embedded_evaluators({"tone": 0.5})
Traceback (most recent call last):
...
flywheel.errors.ConfigError: thresholds.tone: not an embedded evaluator (format, ...)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError
from flywheel.llm.evaluators.groundedness import GroundednessEvaluator
from flywheel.llm.evaluators.output_format import FormatEvaluator
from flywheel.llm.evaluators.relevance import RelevanceEvaluator
from flywheel.llm.evaluators.toxicity import ToxicityEvaluator

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flywheel.llm.evaluation import Evaluator

__all__ = [
    "DEFAULT_THRESHOLDS",
    "FormatEvaluator",
    "GroundednessEvaluator",
    "RelevanceEvaluator",
    "ToxicityEvaluator",
    "embedded_evaluators",
]

#: Each embedded evaluator's threshold unless told otherwise (toxicity: lower is better).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.5,
    "groundedness": 0.8,
    "relevance": 0.3,
    "format": 1.0,
}


def embedded_evaluators(thresholds: Mapping[str, float] | None = None) -> dict[str, Evaluator]:
    """The four embedded evaluators by name, with ``thresholds`` overriding the defaults.

    Raises
    ------
    ConfigError
        A threshold names no embedded evaluator or is not a number in [0, 1]; ``field``
        is ``thresholds.<name>``.
    """
    chosen = dict(DEFAULT_THRESHOLDS)
    for name, value in (thresholds or {}).items():
        field = f"thresholds.{name}"
        if name not in chosen:
            known = ", ".join(sorted(chosen))
            raise ConfigError(f"{field}: not an embedded evaluator ({known})", field=field)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 <= value <= 1
        ):
            raise ConfigError(f"{field}: a number from 0 to 1, not {value!r}", field=field)
        chosen[name] = float(value)
    return {
        "toxicity": ToxicityEvaluator(chosen["toxicity"]),
        "groundedness": GroundednessEvaluator(chosen["groundedness"]),
        "relevance": RelevanceEvaluator(chosen["relevance"]),
        "format": FormatEvaluator(chosen["format"]),
    }
