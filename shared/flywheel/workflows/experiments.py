"""Shadow and A/B experiments as registry state: start, stop, report, pick the winner.

Of model versions or of prompt versions: the same records, rules and audit entries; the
inference function applies a model's experiment, the LLM gateway a prompt's, and the
report compares predictions (with labels) or calls (calls, errors, latency, cost).

An experiment is the model's ``EXPERIMENT`` record (:mod:`flywheel.serving.experiments`),
changed only with its audit entry in one transaction (``experiment_started``,
``experiment_stopped``: the ``operations`` capability of the records writer). One
experiment per model at a time, never while a canary runs; the inference function
picks it up from the registry. Its winner is promoted through the promotion workflow
(:mod:`flywheel.workflows.promotion_requests`), never by moving alias ``live`` here.

Examples
--------
>>> from flywheel.composition import InMemoryPlatform
>>> service = InMemoryPlatform().experiments()
>>> service.current("churn") is None
True
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import (
    ExperimentInProgressError,
    ExperimentNotFoundError,
    ExperimentRefusedError,
    InvalidInputError,
    PromotionInProgressError,
)
from flywheel.llm.comparison import (
    PromptComparison,
    compare_prompt_variants,
    prompt_capture_prefix,
    prompt_partition_hour,
    rows_since,
)
from flywheel.monitoring.feedback import read_labels
from flywheel.registry.models import RegistryKind, VersionStatus
from flywheel.serving.capture import decode_capture
from flywheel.serving.comparison import compare_variants, partition_hour
from flywheel.serving.experiments import (
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    experiment_key,
    read_experiment,
)
from flywheel.workflows.records import write

if TYPE_CHECKING:
    from flywheel.clock import Clock
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.serving.comparison import VariantComparison

__all__ = ["ExperimentReport", "ExperimentService"]

#: Statuses a version may have to be shadowed (its answers never reach a caller).
SHADOW_STATUSES = frozenset(
    {
        VersionStatus.CANDIDATE,
        VersionStatus.PENDING_APPROVAL,
        VersionStatus.APPROVED,
        VersionStatus.ARCHIVED,
        VersionStatus.ROLLED_BACK,
    }
)
#: Arm ``b`` answers real callers: only a version that passed approval.
AB_STATUSES = frozenset({VersionStatus.APPROVED})


class ExperimentReport:
    """An experiment with the comparison of what its variants answered since it started:
    a model's predictions (:class:`~flywheel.serving.comparison.VariantComparison`) or a
    prompt's calls (:class:`~flywheel.llm.comparison.PromptComparison`)."""

    def __init__(
        self, experiment: Experiment, comparison: VariantComparison | PromptComparison
    ) -> None:
        self.experiment = experiment
        self.comparison = comparison


class ExperimentService:
    """The use cases behind ``flywheel experiment``.

    Parameters
    ----------
    registry, records
        The registry (audited writes) and its records (the experiment record).
    capture
        Captured predictions and delayed labels, and the LLM gateway's captured calls
        (the report); ``None``: no report.
    clock
        Start and stop times, and the report's window.
    llm_capture_prefix
        Where the gateway captures a prompt's calls (``llm-capture/``).
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        clock: Clock,
        capture: CaptureSource | None = None,
        capture_prefix: str = "capture/",
        labels_prefix: str = "labels/",
        llm_capture_prefix: str = "llm-capture/",
    ) -> None:
        self._registry = registry
        self._records = records
        self._clock = clock
        self._capture = capture
        self._capture_prefix = capture_prefix
        self._labels_prefix = labels_prefix
        self._llm_capture_prefix = llm_capture_prefix

    # -- reads ---------------------------------------------------------------------------------
    def current(self, name: str) -> Experiment | None:
        """``name``'s latest experiment, running or stopped (``None``: never had one)."""
        found = read_experiment(self._records, name)
        return found[0] if found is not None else None

    def running(self, name: str) -> Experiment:
        """``name``'s running experiment.

        Raises
        ------
        ModelNotFoundError
            No such model.
        ExperimentNotFoundError
            No experiment is running.
        """
        self._registry.get_model(name)
        found = self.current(name)
        if found is None or not found.running:
            raise ExperimentNotFoundError(
                f"no experiment is running for {name!r} (flywheel experiment start)", field="name"
            )
        return found

    def check_none_running(self, name: str) -> None:
        """Refuse what an experiment would confuse (a canary, a hand promotion).

        Raises
        ------
        ExperimentInProgressError
            An experiment is running: stop it, or promote its winner.
        """
        found = self.current(name)
        if found is not None and found.running:
            raise ExperimentInProgressError(
                f"{name!r} runs {_describe(found)}: stop it (flywheel experiment stop) or "
                "promote its winner (flywheel experiment promote-winner) first",
                field="experiment",
                details={"experiment": found.id, "version": found.version},
            )

    # -- start and stop ------------------------------------------------------------------------
    def start(
        self,
        name: str,
        *,
        kind: ExperimentKind,
        version: int,
        actor: str,
        weight: float | None = None,
        salt: str | None = None,
        reason: str | None = None,
    ) -> Experiment:
        """Start a shadow or A/B experiment of ``version`` against the champion; audited.

        ``name`` is a model (the inference function applies it) or a prompt (the LLM
        gateway does: a shadow version answers a copy of each call, an A/B test splits
        calls by their ``assignment_key``).

        Raises
        ------
        ModelNotFoundError, VersionNotFoundError
            No such model or version.
        ExperimentInProgressError
            The model already runs an experiment.
        PromotionInProgressError
            A canary is running.
        ExperimentRefusedError
            No champion, ``version`` is the champion, or its status does not allow it
            (A/B: approved only; shadow: not rejected).
        """
        model = self._registry.get_model(name)
        candidate = self._registry.get_version(name, version)
        self.check_none_running(name)
        if model.challenger is not None:
            raise PromotionInProgressError(
                f"version {model.challenger} of {name!r} is on canary: an experiment starts "
                "once the promotion workflow has promoted or rolled it back",
                field="version",
                details={"challenger": model.challenger},
            )
        if model.champion is None:
            raise ExperimentRefusedError(
                f"{name!r} has no champion to compare version {version} with", field="name"
            )
        if version == model.champion:
            raise ExperimentRefusedError(
                f"version {version} is the champion of {name!r}; experiment with another one",
                field="version",
            )
        allowed = AB_STATUSES if kind is ExperimentKind.AB else SHADOW_STATUSES
        if candidate.status not in allowed:
            need = "approved" if kind is ExperimentKind.AB else "not rejected"
            article = "an A/B" if kind is ExperimentKind.AB else "a shadow"
            raise ExperimentRefusedError(
                f"version {version} of {name!r} is {candidate.status}; {article} experiment "
                f"needs a version that is {need}"
                + (" (arm b answers real callers)" if kind is ExperimentKind.AB else ""),
                field="version",
            )
        experiment_id = f"{name}-{uuid.uuid4().hex[:8]}"
        experiment = Experiment(
            id=experiment_id,
            model=name,
            kind=kind,
            version=version,
            control=model.champion,
            weight=(0.5 if weight is None else weight) if kind is ExperimentKind.AB else None,
            salt=(salt or experiment_id) if kind is ExperimentKind.AB else None,
            started_by=actor,
            started_at=self._clock.now(),
            reason=reason,
        )
        found = read_experiment(self._records, name)
        self._registry.record(
            AuditDraft(
                model=name,
                action=AuditAction.EXPERIMENT_STARTED,
                actor=actor,
                version=version,
                reason=reason,
                details=_details(experiment),
            ),
            records=(write(experiment_key(name), experiment, found[1] if found else None),),
        )
        return experiment

    def stop(
        self,
        name: str,
        *,
        actor: str,
        reason: str,
        winner: int | None = None,
        outcome: str = "stopped",
    ) -> Experiment:
        """Stop ``name``'s running experiment; audited with ``reason`` (and the winner).

        Raises
        ------
        ExperimentNotFoundError
            No experiment is running.
        ReasonRequiredError
            ``reason`` is empty.
        """
        experiment = self.running(name)
        found = read_experiment(self._records, name)
        revision = found[1] if found is not None else None
        stopped = experiment.model_copy(
            update={
                "status": ExperimentStatus.STOPPED,
                "stopped_by": actor,
                "stopped_at": self._clock.now(),
                "stop_reason": reason,
                "winner": winner,
                "outcome": outcome,
            }
        )
        self._registry.record(
            AuditDraft(
                model=name,
                action=AuditAction.EXPERIMENT_STOPPED,
                actor=actor,
                version=experiment.version,
                reason=reason,
                details={**_details(stopped), "winner": winner, "outcome": outcome},
            ),
            records=(write(experiment_key(name), stopped, revision),),
        )
        return stopped

    # -- the comparison ------------------------------------------------------------------------
    def report(self, name: str, *, now: datetime | None = None) -> ExperimentReport:
        """The latest experiment and what its variants answered since it started, with
        the delayed labels that came back (``POST /v1/feedback``).

        For a prompt: the gateway's captured calls of both versions since it started,
        per variant (calls, errors, latency, tokens, cost) and the A/B split
        (:func:`~flywheel.llm.comparison.compare_prompt_variants`); no labels.

        Raises
        ------
        ExperimentNotFoundError
            The model never ran an experiment.
        """
        model = self._registry.get_model(name)
        experiment = self.current(name)
        if experiment is None:
            raise ExperimentNotFoundError(
                f"{name!r} has never run an experiment (flywheel experiment start)", field="name"
            )
        if model.kind is RegistryKind.PROMPT:
            return ExperimentReport(experiment, self._prompt_comparison(experiment))
        start = experiment.started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        # A running experiment's rows have no upper bound: serving may run on a clock ahead
        # of the caller's (the local runtime's simulated one).
        end = experiment.stopped_at
        since = _iso(experiment.started_at)
        rows = [
            row
            for row in self._rows(name, {experiment.version, experiment.control}, start, end)
            if str(row.get("timestamp")) >= since
            and (end is None or str(row.get("timestamp")) <= _iso(end))
        ]
        until = (end or now or self._clock.now()) + timedelta(days=1)
        labels = self._labels(name, start, until) if rows else {}
        share = experiment.weight if experiment.kind is ExperimentKind.AB else None
        comparison = compare_variants(name, rows, labels or None, expected_share_b=share)
        return ExperimentReport(experiment, comparison)

    def _rows(
        self, name: str, versions: set[int], start: datetime, end: datetime | None
    ) -> list[dict[str, Any]]:
        if self._capture is None:
            return []
        rows: list[dict[str, Any]] = []
        for version in sorted(versions):
            prefix = f"{self._capture_prefix}model={name}/version={version}/"
            for key in self._capture.keys(prefix):
                hour = partition_hour(key)
                if hour is not None and hour >= start and (end is None or hour <= end):
                    rows.extend(decode_capture(self._capture.get(key)))
        return rows

    def _prompt_comparison(self, experiment: Experiment) -> PromptComparison:
        """The prompt's captured calls of both versions between start and stop."""
        start, end = experiment.started_at.astimezone(UTC), experiment.stopped_at
        first_hour = start.replace(minute=0, second=0, microsecond=0)
        rows: list[dict[str, Any]] = []
        if self._capture is not None:
            for version in sorted({experiment.version, experiment.control}):
                prefix = prompt_capture_prefix(self._llm_capture_prefix, experiment.model, version)
                for key in self._capture.keys(prefix):
                    hour = prompt_partition_hour(key)
                    if hour is not None and hour >= first_hour and (end is None or hour <= end):
                        rows.extend(decode_capture(self._capture.get(key)))
        share = experiment.weight if experiment.kind is ExperimentKind.AB else None
        return compare_prompt_variants(
            experiment.model, rows_since(rows, start, end), expected_share_b=share
        )

    def _labels(self, name: str, start: datetime, end: datetime) -> dict[tuple[str, int], Any]:
        assert self._capture is not None
        received = read_labels(self._capture, name, start, end, prefix=self._labels_prefix)
        return {(str(r["request_id"]), int(r["row"])): r["label"] for r in received}

    @staticmethod
    def winner(report: ExperimentReport, named: int | None = None) -> int:
        """The version that won: ``named`` (one of the two), the shadow version, or the A/B
        arm with the significantly better metric on the delayed labels.

        Raises
        ------
        InvalidInputError
            ``named`` is neither the experiment's version nor its control.
        ExperimentRefusedError
            An A/B test without a verdict (no labels yet, no significant difference, or a
            sample-ratio mismatch): name the winner to decide anyway.
        """
        experiment = report.experiment
        if named is not None:
            if named not in (experiment.version, experiment.control):
                raise InvalidInputError(
                    f"version {named} is not in the experiment (it compares version "
                    f"{experiment.version} with the champion {experiment.control})",
                    field="version",
                )
            return named
        if experiment.kind is ExperimentKind.SHADOW:
            return experiment.version
        if isinstance(report.comparison, PromptComparison):
            raise ExperimentRefusedError(
                f"the A/B test of prompt {experiment.model!r} has no automatic winner (its "
                "answers have no labels); name the winner with --version",
                field="version",
            )
        ab = report.comparison.ab
        if ab is None or ab.difference is None:
            why = "no labelled rows in both arms yet"
        elif ab.sample_ratio_mismatch:
            why = "a sample-ratio mismatch: assignment is broken"
        elif not ab.difference.significant:
            why = f"no significant difference in {ab.difference.metric} (p={ab.difference.p_value})"
        else:
            difference = ab.difference.difference
            # Accuracy: higher is better; mean absolute error: lower is.
            b_wins = difference < 0 if ab.difference.metric == "mae" else difference > 0
            return experiment.version if b_wins else experiment.control
        raise ExperimentRefusedError(
            f"the A/B test of {experiment.model!r} has no winner: {why}; name the winner with "
            "--version to decide anyway",
            field="version",
        )


def _describe(experiment: Experiment) -> str:
    if experiment.kind is ExperimentKind.SHADOW:
        return f"a shadow experiment of version {experiment.version} ({experiment.id})"
    return (
        f"an A/B experiment of version {experiment.version} at {experiment.weight:.0%} "
        f"({experiment.id})"
    )


def _details(experiment: Experiment) -> dict[str, Any]:
    return {
        "experiment": experiment.id,
        "kind": str(experiment.kind),
        "control": experiment.control,
        "weight": experiment.weight,
        "salt": experiment.salt,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
