"""Scheduled LLM quality monitoring: a seeded sample of each serving prompt version's
captured calls scored by the evaluators (ADR 82).

One run per prompt, for its champion and its canary: the version's calls of the window
(``llm-capture/prompt=/version=/dt=/hour=``; no shadow calls, no failed calls), those a
guardrail blocked counted apart, those whose text the capture policy did not keep counted
as unscorable, the rest sampled by request id and cut to the prompt's daily budget. The
rates are judged by the prompt's :class:`~flywheel.llm.monitor_policy.PromptMonitorPolicy`;
a JSON and an HTML report go under ``reports/<prompt>/quality/`` (texts redacted by the
current capture policy); the verdict is recorded with the version and audited in one
transaction; a breach outside the cooldown publishes ``LlmQualityDegraded``. An evaluator
still unavailable after the retries fails the run, audited, never a healthy verdict.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.errors import (
    EvaluationUnavailableError,
    ModelNotFoundError,
    ProviderError,
    ProviderThrottledError,
    ProviderTimeoutError,
)
from flywheel.llm.evaluation import EvaluationInput, EvaluationScore
from flywheel.llm.monitor_policy import PromptMonitorPolicy, sampled
from flywheel.llm.policy import CaptureMode, CapturePolicy, LlmPolicy, redact
from flywheel.llm.quality import (
    MetricFigure,
    QualityBudgetDoc,
    QualityVerdictDoc,
    ScoredCall,
    WorstCall,
    aggregate,
    judge,
    worst_calls,
)
from flywheel.registry.models import RegistryKind
from flywheel.serving.capture import decode_capture
from flywheel.workflows.records import QUALITY, model_key, quality_key, read, write

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from flywheel.artifacts.ports import ArtifactStore
    from flywheel.clock import Clock
    from flywheel.llm.catalog import PromptCatalog
    from flywheel.llm.evaluation import Evaluator
    from flywheel.llm.prompts import PromptSpec
    from flywheel.registry.models import RecordWrite
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService
    from flywheel.serving.capture import CaptureSource
    from flywheel.workflows.ports import EventPublisher

__all__ = ["LLM_QUALITY_DEGRADED", "LlmMonitorRun", "LlmQualityMonitor", "VersionQuality"]

LLM_QUALITY_DEGRADED = "LlmQualityDegraded"
#: Who the monitor's audit entries name.
MONITOR_ACTOR = "llm-quality-monitor"
#: Longest answer excerpt in a report (characters).
EXCERPT_CHARS = 400
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_PARAGRAPHS = re.compile(r"\n\s*\n")
_MAX_REASON = 2048


class VersionQuality(BaseModel):
    """What one run found for one prompt version."""

    model_config = ConfigDict(frozen=True)

    version: int
    variant: str
    outcome: str  # healthy | degraded | insufficient | failed | skipped
    reason: str
    #: Calls captured in the window (answered, not shadow).
    calls: int = 0
    #: Calls a guardrail blocked (their answer never shown; not scored).
    blocked: int = 0
    sampled: int = 0
    scored: int = 0
    #: Sampled calls whose text the capture policy did not keep.
    unscorable: int = 0
    #: Sampled calls the daily budget left unscored.
    over_budget: int = 0
    metrics: dict[str, MetricFigure] = {}
    breaches: tuple[str, ...] = ()
    event_id: str | None = None


class LlmMonitorRun(BaseModel):
    """One monitoring run of one prompt: its versions' figures and the report."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    status: str  # scored | skipped
    reason: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    versions: tuple[VersionQuality, ...] = ()
    report_json: str | None = None
    report_html: str | None = None

    @property
    def degraded(self) -> bool:
        return any(v.outcome == "degraded" for v in self.versions)


class LlmQualityMonitor:
    """Score prompt versions' production answers and judge them (see the module docstring).

    Parameters
    ----------
    evaluators
        A prompt's evaluators for its policy, by name (``toxicity``, ``groundedness``,
        ``relevance``, ``format``): embedded ones locally, the policy's Bedrock guardrail
        in AWS (the composition root).
    policies
        Each prompt's monitor policy; a prompt without one gets the defaults.
    llm_policy
        The stage's LLM policy: each prompt's capture policy redacts the report's texts.
    cost
        What scoring one answer costs under a policy, USD (paid evaluators; ``None``:
        nothing, the embedded evaluators).
    attempts, backoff_seconds, sleep
        An evaluator throttled or unavailable is asked again ``attempts`` times in all,
        waiting ``backoff_seconds`` doubled each time.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from flywheel.clock import FixedClock
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.monitoring.settings import MonitoringSettings
    >>> platform = InMemoryPlatform(MonitoringSettings(backend="local"),
    ...                             clock=FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC)))
    >>> platform.llm_quality_monitor().run("ticket-summary").reason
    'not registered'
    """

    def __init__(
        self,
        *,
        registry: RegistryService,
        records: RecordStore,
        catalog: PromptCatalog,
        evaluators: Callable[[PromptMonitorPolicy], Mapping[str, Evaluator]],
        artifacts: ArtifactStore,
        capture: CaptureSource,
        events: EventPublisher,
        clock: Clock,
        policies: Mapping[str, PromptMonitorPolicy] | None = None,
        llm_policy: LlmPolicy | None = None,
        capture_prefix: str = "llm-capture/",
        reports_prefix: str = "reports/",
        cost: Callable[[PromptMonitorPolicy, EvaluationInput], Decimal] | None = None,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.records = records
        self.catalog = catalog
        self.evaluators = evaluators
        self.artifacts = artifacts
        self.capture = capture
        self.events = events
        self.clock = clock
        self.policies = dict(policies or {})
        self.llm_policy = llm_policy or LlmPolicy()
        self.capture_prefix = capture_prefix
        self.reports_prefix = reports_prefix
        self.cost = cost
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def policy(self, prompt: str) -> PromptMonitorPolicy:
        """``prompt``'s monitor policy (the defaults when the project file declares none)."""
        return self.policies.get(prompt) or PromptMonitorPolicy()

    def partitions(self, prompt: str, version: int, start: datetime, end: datetime) -> list[str]:
        """Capture prefixes of the window: every hour from ``start``'s to ``end``'s.

        Examples
        --------
        >>> from flywheel.composition import InMemoryPlatform
        >>> from flywheel.monitoring.settings import MonitoringSettings
        >>> monitor = InMemoryPlatform(MonitoringSettings(backend="local")).llm_quality_monitor()
        >>> monitor.partitions("faq", 2, datetime(2026, 1, 1, 23, 30, tzinfo=UTC),
        ...                    datetime(2026, 1, 2, 0, 5, tzinfo=UTC))[-1]
        'llm-capture/prompt=faq/version=2/dt=2026-01-02/hour=00/'
        """
        base = f"{self.capture_prefix}prompt={prompt}/version={version}/"
        moment = start.replace(minute=0, second=0, microsecond=0)
        prefixes = []
        while moment <= end:
            prefixes.append(f"{base}dt={moment:%Y-%m-%d}/hour={moment:%H}/")
            moment += timedelta(hours=1)
        return prefixes

    def run(self, prompt: str) -> LlmMonitorRun:
        """Monitor ``prompt``'s champion and canary over the policy's window.

        Raises
        ------
        EvaluationUnavailableError
            An evaluator stayed unavailable after the retries (the failure is audited).
        """
        try:
            model = self.registry.get_model(prompt)
        except ModelNotFoundError:
            return LlmMonitorRun(prompt=prompt, status="skipped", reason="not registered")
        if model.kind is not RegistryKind.PROMPT:
            return LlmMonitorRun(prompt=prompt, status="skipped", reason="not a prompt")
        serving = [(v, "champion") for v in (model.champion,) if v is not None]
        if model.challenger is not None and model.challenger != model.champion:
            serving.append((model.challenger, "canary"))
        if not serving:
            return LlmMonitorRun(prompt=prompt, status="skipped", reason="no version serves")
        policy = self.policy(prompt)
        end = self.clock.now()
        start = end - timedelta(hours=policy.window_hours)
        budget = self._budget(prompt, end)
        results: list[VersionQuality] = []
        calls_by_version: dict[int, list[ScoredCall]] = {}
        for version, variant in serving:
            quality, scored_calls = self._version(
                prompt, version, variant, policy, budget, start, end
            )
            results.append(quality)
            calls_by_version[version] = scored_calls
        if all(r.calls == 0 for r in results):
            return LlmMonitorRun(
                prompt=prompt,
                status="skipped",
                reason=f"no captured calls from {start:%Y-%m-%dT%H:%M}Z on",
                window_start=_iso(start),
                window_end=_iso(end),
                versions=tuple(results),
            )
        base = f"{self.reports_prefix}{prompt}/quality/{end:%Y-%m-%dT%H%M%S}"
        json_uri, html_uri = self._report(
            base, prompt, policy, results, calls_by_version, start, end
        )
        recorded = tuple(
            self._record(prompt, quality, policy, budget, start, end, html_uri)
            if quality.calls
            else quality
            for quality in results
        )
        return LlmMonitorRun(
            prompt=prompt,
            status="scored",
            window_start=_iso(start),
            window_end=_iso(end),
            versions=recorded,
            report_json=json_uri,
            report_html=html_uri,
        )

    # -- one version -------------------------------------------------------------------------
    def _version(
        self,
        prompt: str,
        version: int,
        variant: str,
        policy: PromptMonitorPolicy,
        budget: _Budget,
        start: datetime,
        end: datetime,
    ) -> tuple[VersionQuality, list[ScoredCall]]:
        rows = list(self._rows(prompt, version, start, end))
        blocked = [r for r in rows if _blocked(r)]
        shown = [r for r in rows if not _blocked(r)]
        draw = sorted(
            (
                r
                for r in shown
                if sampled(policy.seed, str(r.get("request_id")), policy.sample_rate)
            ),
            key=lambda r: _order(policy.seed, str(r.get("request_id"))),
        )
        if not rows:
            return VersionQuality(
                version=version, variant=variant, outcome="skipped", reason="no captured calls"
            ), []
        spec = self.catalog.get(prompt, version).spec
        unscorable = 0
        over_budget = 0
        scored: list[ScoredCall] = []
        evaluators = self.evaluators(policy)
        for row in draw:
            item = _input(row, spec)
            if item is None:
                unscorable += 1
                continue
            cost = self.cost(policy, item) if self.cost is not None else Decimal(0)
            if not budget.allows(policy, cost):
                over_budget += 1
                continue
            try:
                scores = {name: self._score(name, e, item) for name, e in evaluators.items()}
            except EvaluationUnavailableError as err:
                self._fail(prompt, version, variant, err, start, end)
                raise
            budget.spend(cost)
            scored.append(
                ScoredCall(
                    request_id=str(row.get("request_id")),
                    variant=str(row.get("variant") or variant),
                    answer=item.answer,
                    scores=scores,
                )
            )
        figures = aggregate(scored)
        outcome, breaches = judge(policy, figures, scored=len(scored))
        counted = (
            f"{len(scored)} of {len(draw)} sampled calls scored ({len(shown)} shown, "
            f"{len(blocked)} blocked by a guardrail, {unscorable} without text, "
            f"{over_budget} over the daily budget)"
        )
        if outcome == "degraded":
            reason = f"quality degraded: {'; '.join(breaches)}; {counted}"
        elif outcome == "insufficient":
            reason = f"no verdict: {counted}; {policy.min_scored} needed"
        else:
            reason = f"healthy: {counted}"
        return VersionQuality(
            version=version,
            variant=variant,
            outcome=outcome,
            reason=reason[:_MAX_REASON],
            calls=len(shown) + len(blocked),
            blocked=len(blocked),
            sampled=len(draw),
            scored=len(scored),
            unscorable=unscorable,
            over_budget=over_budget,
            metrics=figures,
            breaches=breaches,
        ), scored

    def _rows(
        self, prompt: str, version: int, start: datetime, end: datetime
    ) -> Iterator[dict[str, Any]]:
        """The window's answered, non-shadow calls of ``version``."""
        since, until = _iso(start), _iso(end)
        for prefix in self.partitions(prompt, version, start, end):
            for key in self.capture.keys(prefix):
                for row in decode_capture(self.capture.get(key)):
                    if row.get("variant") == "shadow" or row.get("status") != 200:
                        continue
                    if not since <= str(row.get("timestamp")) <= until:
                        continue
                    yield row

    def _score(self, name: str, evaluator: Evaluator, item: EvaluationInput) -> EvaluationScore:
        """One evaluator's score, asking again while it is throttled or unavailable."""
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return evaluator.evaluate(item)
            except ProviderError as err:
                retryable = isinstance(err, ProviderThrottledError | ProviderTimeoutError) or bool(
                    err.details.get("retryable")
                )
                if not retryable or attempt == self.attempts:
                    raise EvaluationUnavailableError(
                        f"evaluator {name} could not answer after {attempt} attempts: "
                        f"{err.message}",
                        field="evaluators",
                        details={"cause": err.code, "attempts": attempt},
                    ) from err
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    # -- records -----------------------------------------------------------------------------
    def _budget(self, prompt: str, now: datetime) -> _Budget:
        found = read(self.records, model_key(prompt, QUALITY), QualityBudgetDoc)
        day = f"{now:%Y-%m-%d}"
        if found is None or found[0].day != day:
            return _Budget(day, 0, Decimal(0), found[1] if found is not None else None)
        doc, revision = found
        return _Budget(day, doc.scored, Decimal(doc.spent_usd), revision)

    def _record(
        self,
        prompt: str,
        quality: VersionQuality,
        policy: PromptMonitorPolicy,
        budget: _Budget,
        start: datetime,
        end: datetime,
        report_uri: str,
    ) -> VersionQuality:
        """Publish ``LlmQualityDegraded`` when due, then record the verdict with its audit
        entry and the day's budget in one transaction."""
        key = quality_key(prompt, quality.version)
        previous = read(self.records, key, QualityVerdictDoc)
        alerted_at = previous[0].alerted_at if previous is not None else None
        event_id = previous[0].event_id if previous is not None else None
        metrics = {name: round(f.value, 4) for name, f in quality.metrics.items()}
        due = alerted_at is None or end - alerted_at >= timedelta(minutes=policy.cooldown_minutes)
        published = None
        if quality.outcome == "degraded" and due:
            published = self.events.publish(
                LLM_QUALITY_DEGRADED,
                {
                    "prompt_name": prompt,
                    "version": quality.version,
                    "variant": quality.variant,
                    "window_start": _iso(start),
                    "window_end": _iso(end),
                    "sampled": quality.sampled,
                    "scored": quality.scored,
                    "metrics": metrics,
                    "breaches": list(quality.breaches),
                    "report_uri": report_uri,
                },
            )
            alerted_at, event_id = end, published
        doc = QualityVerdictDoc(
            version=quality.version,
            outcome=quality.outcome,
            reason=quality.reason,
            breaches=quality.breaches,
            metrics=metrics,
            sampled=quality.sampled,
            scored=quality.scored,
            window_start=start,
            window_end=end,
            checked_at=end,
            report_uri=report_uri,
            alerted_at=alerted_at,
            event_id=event_id,
        )
        action = (
            AuditAction.LLM_QUALITY_DEGRADED
            if quality.outcome == "degraded"
            else AuditAction.LLM_QUALITY_CHECKED
        )
        details: dict[str, object] = {
            "outcome": quality.outcome,
            "variant": quality.variant,
            "calls": quality.calls,
            "blocked": quality.blocked,
            "sampled": quality.sampled,
            "scored": quality.scored,
            "unscorable": quality.unscorable,
            "metrics": metrics,
            "breaches": list(quality.breaches),
            "report": report_uri,
            "event_id": published,
        }
        self.registry.record(
            AuditDraft(
                model=prompt,
                action=action,
                actor=MONITOR_ACTOR,
                version=quality.version,
                reason=quality.reason,
                details=details,
            ),
            records=(
                write(key, doc, previous[1] if previous is not None else None),
                budget.write(prompt),
            ),
        )
        budget.revision = (budget.revision or 0) + 1
        return quality.model_copy(update={"event_id": published})

    def _fail(
        self,
        prompt: str,
        version: int,
        variant: str,
        error: EvaluationUnavailableError,
        start: datetime,
        end: datetime,
    ) -> None:
        """Audit the failed run and record ``failed`` as the version's verdict."""
        key = quality_key(prompt, version)
        previous = read(self.records, key, QualityVerdictDoc)
        reason = f"no verdict for version {version}: {error.message}"[:_MAX_REASON]
        doc = QualityVerdictDoc(
            version=version,
            outcome="failed",
            reason=reason,
            window_start=start,
            window_end=end,
            checked_at=end,
            alerted_at=previous[0].alerted_at if previous is not None else None,
            event_id=previous[0].event_id if previous is not None else None,
        )
        self.registry.record(
            AuditDraft(
                model=prompt,
                action=AuditAction.LLM_QUALITY_FAILED,
                actor=MONITOR_ACTOR,
                version=version,
                reason=reason,
                details={"variant": variant, "cause": error.details.get("cause")},
            ),
            records=(write(key, doc, previous[1] if previous is not None else None),),
        )

    # -- report ------------------------------------------------------------------------------
    def _report(
        self,
        base: str,
        prompt: str,
        policy: PromptMonitorPolicy,
        results: list[VersionQuality],
        calls: Mapping[int, list[ScoredCall]],
        start: datetime,
        end: datetime,
    ) -> tuple[str, str]:
        capture = self.llm_policy.prompt(prompt).capture
        worst = {
            version: [_redacted(w, capture) for w in worst_calls(found)]
            for version, found in calls.items()
        }
        document = {
            "prompt": prompt,
            "window_start": _iso(start),
            "window_end": _iso(end),
            "policy": policy.model_dump(mode="json"),
            "capture_mode": str(capture.mode),
            "versions": [
                {
                    **q.model_dump(mode="json"),
                    "worst": [w.model_dump(mode="json") for w in worst[q.version]],
                }
                for q in results
            ],
        }
        json_uri = self.artifacts.put_json(f"{base}.json", document).uri
        page = _html(prompt, start, end, results, worst)
        html_uri = self.artifacts.put(
            f"{base}.html", page.encode("utf-8"), content_type="text/html; charset=utf-8"
        ).uri
        return json_uri, html_uri


class _Budget:
    """The prompt's scoring budget for the day, as the runs of the day spent it."""

    def __init__(self, day: str, scored: int, spent: Decimal, revision: int | None) -> None:
        self.day = day
        self.scored = scored
        self.spent = spent
        self.revision = revision

    def allows(self, policy: PromptMonitorPolicy, cost: Decimal) -> bool:
        if self.scored >= policy.budget.max_calls:
            return False
        limit = policy.budget.max_usd
        return limit is None or self.spent + cost <= limit

    def spend(self, cost: Decimal) -> None:
        self.scored += 1
        self.spent += cost

    def write(self, prompt: str) -> RecordWrite:
        doc = QualityBudgetDoc(day=self.day, scored=self.scored, spent_usd=format(self.spent, "f"))
        return write(model_key(prompt, QUALITY), doc, self.revision)


def _iso(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _order(seed: int, request_id: str) -> bytes:
    """The order the sample is scored in (and cut by the budget): seeded, stable."""
    return hashlib.blake2b(f"order:{seed}:{request_id}".encode(), digest_size=8).digest()


def _blocked(row: Mapping[str, Any]) -> bool:
    guardrail = row.get("guardrail")
    return isinstance(guardrail, dict) and guardrail.get("action") == "blocked"


def _text(value: object, mode: str) -> str | None:
    """A captured text, or ``None`` when the capture policy kept none of it."""
    if not isinstance(value, str) or mode in (CaptureMode.HASH, CaptureMode.NONE):
        return None
    return value


def _input(row: Mapping[str, Any], spec: PromptSpec) -> EvaluationInput | None:
    """What the evaluators judge of a captured call (``None``: its text was not kept)."""
    mode = str((row.get("_capture") or {}).get("mode") or CaptureMode.REDACT)
    answer = _text(row.get("answer"), mode)
    if answer is None:
        return None
    variables = row.get("variables") if isinstance(row.get("variables"), dict) else {}
    assert isinstance(variables, dict)
    texts = {k: v for k, v in variables.items() if isinstance(v, str)}
    question = _PLACEHOLDER.sub(lambda m: texts.get(m.group(1), ""), spec.template).strip()
    name = spec.evaluation.context_variable if spec.evaluation is not None else None
    value = texts.get(name) if name is not None else None
    context = tuple(p.strip() for p in _PARAGRAPHS.split(value) if p.strip()) if value else ()
    try:
        return EvaluationInput(
            answer=answer,
            question=question or None,
            context=context,
            output_schema=spec.output_schema,
        )
    except ValidationError:
        return None


def _redacted(worst: WorstCall, capture: CapturePolicy) -> WorstCall:
    """``worst`` with its texts as the prompt's current capture policy allows them."""
    if capture.mode in (CaptureMode.HASH, CaptureMode.NONE):
        hidden = f"[withheld: capture mode {capture.mode}]"
        return worst.model_copy(
            update={
                "answer": hidden,
                "evidence": tuple(
                    e.model_copy(update={"sentence": None, "passage": None, "words": ()})
                    for e in worst.evidence
                ),
            }
        )
    patterns = capture.compiled() if capture.mode is CaptureMode.REDACT else ()

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        cut = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
        return redact(cut, patterns)[0] if patterns else cut

    return worst.model_copy(
        update={
            "answer": clean(worst.answer) or "",
            "evidence": tuple(
                e.model_copy(update={"sentence": clean(e.sentence), "passage": clean(e.passage)})
                for e in worst.evidence
            ),
        }
    )


def _html(
    prompt: str,
    start: datetime,
    end: datetime,
    results: list[VersionQuality],
    worst: Mapping[int, list[WorstCall]],
) -> str:
    """The report's page: per version the figures, the verdict and the worst answers."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>LLM quality: {e(prompt)}</title></head><body>",
        f"<h1>LLM quality: {e(prompt)}</h1>",
        f"<p>Window {e(_iso(start))} to {e(_iso(end))}</p>",
    ]
    for q in results:
        parts.append(f"<h2>Version {q.version} ({e(q.variant)}): {e(q.outcome)}</h2>")
        parts.append(f"<p>{e(q.reason)}</p>")
        parts.append("<table><tr><th>metric</th><th>value</th><th>answers</th><th>failed</th></tr>")
        for name, figure in sorted(q.metrics.items()):
            failed = "" if figure.failed is None else str(figure.failed)
            parts.append(
                f"<tr><td>{e(name)}</td><td>{figure.value:.3f}</td>"
                f"<td>{figure.count}</td><td>{failed}</td></tr>"
            )
        parts.append("</table>")
        if worst.get(q.version):
            parts.append("<h3>Worst answers</h3><ul>")
            for w in worst[q.version]:
                notes = "; ".join(
                    ", ".join(x for x in (ev.note, " ".join(ev.words), ev.sentence) if x)
                    for ev in w.evidence
                )
                parts.append(
                    f"<li><b>{html.escape(w.metric)}</b> {w.score:.3f} "
                    f"({html.escape(w.request_id)}): {html.escape(w.answer)}"
                    f"<br><small>{html.escape(notes)}</small></li>"
                )
            parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)
