"""The promotion gate: a candidate's holdout results against the model's gate policy.

Pure: the same policy and numbers give the same verdict locally and in AWS. Every
check is reported, passed or not, so a rejected candidate's audit entry says exactly
which rule it broke and by how much.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flywheel.drift.bias import fairness_regressions
from flywheel.workflows.state import GateCheck, GateResult

if TYPE_CHECKING:
    from flywheel.monitoring.policy import BiasGatePolicy
    from flywheel.registry.models import ParityReport
    from flywheel.workflows.config import GatePolicy
    from flywheel.workflows.state import EvaluationResult


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def evaluate_gate(
    policy: GatePolicy, evaluation: EvaluationResult, parity: ParityReport
) -> GateResult:
    """Apply ``policy`` to the candidate (and champion) scores.

    Checks, in order: ONNX parity; absolute minimums and maximums; beating the champion
    by ``min_improvement`` on ``metric``; the fairness no-regression rule; the bias
    limits on a protected attribute (and no bias regression against the champion).

    Examples
    --------
    >>> from flywheel.registry.models import ArtifactRef, ParityReport
    >>> from flywheel.workflows.config import GatePolicy
    >>> from flywheel.workflows.state import EvaluationResult, ModelScore
    >>> ref = ArtifactRef(uri="memory://r", sha256="0" * 64, size_bytes=1, format="json")
    >>> evaluation = EvaluationResult(
    ...     candidate=ModelScore(metrics={"roc_auc": 0.97}),
    ...     champion=ModelScore(version=1, metrics={"roc_auc": 0.98}),
    ...     holdout_rows=100, report=ref,
    ... )
    >>> parity = ParityReport(rows=100, precision="float64", max_abs_diff=0.0,
    ...                       p99_abs_diff=0.0, passed=True)
    >>> verdict = evaluate_gate(GatePolicy(metric="roc_auc"), evaluation, parity)
    >>> verdict.passed, verdict.reasons
    (False, ['champion: roc_auc 0.97 vs champion v1 0.98: improvement -0.01 < required 0'])
    """
    checks: list[GateCheck] = []
    candidate = evaluation.candidate.metrics
    if policy.require_parity:
        checks.append(
            GateCheck(
                name="parity",
                passed=parity.passed,
                detail=f"{parity.precision} max|Δ| {_fmt(parity.max_abs_diff)}"
                + ("" if parity.passed else ": the ONNX model does not match scikit-learn"),
            )
        )
    for metric, floor in sorted(policy.minimums.items()):
        value = candidate.get(metric)
        checks.append(
            GateCheck(
                name=f"minimum.{metric}",
                passed=value is not None and value >= floor,
                detail="not computed on this holdout"
                if value is None
                else f"{_fmt(value)} {'>=' if value >= floor else '<'} {_fmt(floor)}",
            )
        )
    for metric, ceiling in sorted(policy.maximums.items()):
        value = candidate.get(metric)
        checks.append(
            GateCheck(
                name=f"maximum.{metric}",
                passed=value is not None and value <= ceiling,
                detail="not computed on this holdout"
                if value is None
                else f"{_fmt(value)} {'<=' if value <= ceiling else '>'} {_fmt(ceiling)}",
            )
        )

    value = candidate.get(policy.metric)
    champion = evaluation.champion
    champion_value: float | None = None
    if value is None:
        checks.append(
            GateCheck(name="metric", passed=False, detail=f"{policy.metric} was not computed")
        )
    elif champion is None:
        checks.append(
            GateCheck(name="champion", passed=True, detail="no champion yet: nothing to beat")
        )
    elif not champion.comparable:
        ignore = policy.on_incomparable_champion == "ignore"
        checks.append(
            GateCheck(
                name="champion",
                passed=ignore,
                detail=f"champion v{champion.version} cannot be scored on this holdout "
                f"({champion.reason})" + ("; comparison skipped by policy" if ignore else ""),
            )
        )
    else:
        champion_value = champion.metrics.get(policy.metric)
        if champion_value is None:
            checks.append(
                GateCheck(
                    name="champion",
                    passed=False,
                    detail=f"{policy.metric} of champion v{champion.version} was not computed",
                )
            )
        else:
            gain = policy.improvement(candidate=value, champion=champion_value)
            passed = gain >= policy.min_improvement
            checks.append(
                GateCheck(
                    name="champion",
                    passed=passed,
                    detail=f"{policy.metric} {_fmt(value)} vs champion v{champion.version} "
                    f"{_fmt(champion_value)}: improvement {_fmt(gain)} "
                    f"{'>=' if passed else '<'} required {_fmt(policy.min_improvement)}",
                )
            )

    if policy.fairness is not None:
        checks.append(_fairness_check(policy, evaluation))
    if policy.bias is not None:
        checks.append(_bias_check(policy.bias, evaluation))
    return GateResult(
        passed=all(c.passed for c in checks),
        metric=policy.metric,
        candidate_value=value,
        champion_value=champion_value,
        checks=tuple(checks),
    )


def _fairness_check(policy: GatePolicy, evaluation: EvaluationResult) -> GateCheck:
    fairness = policy.fairness
    assert fairness is not None
    groups = f"{fairness.group_feature} <= {_fmt(fairness.threshold)} vs above"
    gap = evaluation.candidate.fairness_gap
    if gap is None:
        return GateCheck(
            name="fairness",
            passed=False,
            detail=f"{fairness.metric} gap ({groups}) could not be measured on the holdout",
        )
    champion = evaluation.champion
    baseline = champion.fairness_gap if champion is not None and champion.comparable else None
    if baseline is None:
        return GateCheck(
            name="fairness",
            passed=True,
            detail=f"{fairness.metric} gap ({groups}) {_fmt(gap)}; no champion gap to compare",
        )
    allowed = baseline + fairness.max_gap_increase
    passed = gap <= allowed
    return GateCheck(
        name="fairness",
        passed=passed,
        detail=f"{fairness.metric} gap ({groups}) {_fmt(gap)} {'<=' if passed else '>'} "
        f"champion's {_fmt(baseline)} + {_fmt(fairness.max_gap_increase)}",
    )


def _bias_check(policy: BiasGatePolicy, evaluation: EvaluationResult) -> GateCheck:
    """The candidate's holdout group gaps within limits, and not worse than the champion's."""
    result = evaluation.candidate.bias
    if result is None:
        return GateCheck(
            name="bias",
            passed=False,
            detail=f"group metrics on {policy.attribute!r} could not be measured on the holdout",
        )
    gaps = (
        f"demographic parity difference {_opt(result.demographic_parity_difference)}, "
        f"disparate impact ratio {_opt(result.disparate_impact_ratio)}, "
        f"equal opportunity difference {_opt(result.equal_opportunity_difference)}"
    )
    problems = list(result.violations)
    champion = evaluation.champion
    if (
        policy.max_regression is not None
        and champion is not None
        and champion.comparable
        and champion.bias is not None
    ):
        problems += [
            f"{text} vs champion v{champion.version}"
            for text in fairness_regressions(result, champion.bias, tolerance=policy.max_regression)
        ]
    return GateCheck(
        name="bias",
        passed=not problems,
        detail=f"{policy.attribute} (favorable {policy.favorable}): "
        + ("; ".join(problems) if problems else f"{gaps}: within limits"),
    )


def _opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
