"""Drift: reference profiles, drift statistics and verdicts, bias metrics, HTML reports.

- :mod:`~flywheel.drift.profile`: mergeable per-feature profiles (quantile bins on a
  fine grid, moments, category counts) built at training and observed on windows.
- :mod:`~flywheel.drift.statistics`: PSI, KS, Wasserstein, Jensen-Shannon, χ², z on
  shared bins; :class:`~flywheel.drift.statistics.DriftPolicy` and the verdict rules.
- :mod:`~flywheel.drift.scorer`: :func:`~flywheel.drift.scorer.score_window`, Parquet
  windows, the JSON-serialisable :class:`~flywheel.drift.scorer.DriftResult`.
- :mod:`~flywheel.monitoring.report`: the self-contained HTML report.
- :mod:`~flywheel.drift.bias`: group fairness gaps for a protected attribute.

numpy only at runtime (pyarrow for Parquet windows); see docs/monitoring.md.
"""
