"""Model cards: what the registry, the audit chain and the config know about one version.

:func:`build_card` assembles a :class:`ModelCard` from records that already exist (the
version, its approval's evaluation summary, its training run, its audit entries, the
model config); it computes nothing new. :mod:`flywheel.workflows.card_pages` renders
it as Markdown (:func:`~flywheel.workflows.card_pages.render_markdown`) or as a
self-contained HTML page (:func:`~flywheel.workflows.card_pages.render_html`).

Examples
--------
>>> from flywheel.sdk import Flywheel
>>> from flywheel.workflows.card_pages import render_markdown
>>> card = Flywheel.connect().model_card("breast-cancer")  # doctest: +SKIP
>>> render_markdown(card).splitlines()[0]  # doctest: +SKIP
'# breast-cancer v1 (production, champion)'
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, JsonValue

from flywheel.audit.models import AuditAction
from flywheel.models import Frozen
from flywheel.registry.models import (
    ArtifactRef,
    FeatureSpec,
    Lineage,
    ParityReport,
    Task,
)
from flywheel.runs.models import Run
from flywheel.workflows.importance import ImportanceComparison
from flywheel.workflows.state import GateCheck, ModelScore

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from flywheel.audit.chain import VerifyReport
    from flywheel.audit.models import AuditEntry
    from flywheel.drift.bias import BiasResult
    from flywheel.registry.models import Model, ModelVersion
    from flywheel.workflows.config import ModelConfig
    from flywheel.workflows.records import ApprovalDoc

__all__ = [
    "CardEvaluation",
    "CardEvent",
    "CardOverview",
    "ChainStatus",
    "ModelCard",
    "TrainingData",
    "build_card",
]

#: Audit actions that make up a version's approval history.
HISTORY_ACTIONS: frozenset[AuditAction] = frozenset(
    {
        AuditAction.VERSION_REGISTERED,
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.APPROVED,
        AuditAction.REJECTED,
        AuditAction.APPROVAL_REFUSED,
        AuditAction.APPROVAL_EXPIRED,
        AuditAction.CANARY_STARTED,
        AuditAction.CANARY_ABORTED,
        AuditAction.PROMOTED,
        AuditAction.PROMOTION_FAILED,
        AuditAction.ROLLED_BACK,
        AuditAction.ARCHIVED,
        AuditAction.STAGE_PROMOTED_IN,
        AuditAction.STAGE_PROMOTED_OUT,
    }
)


class CardOverview(Frozen):
    """Who and what: the version, its status, its owner and what it is for."""

    model: str
    version: int
    status: str
    #: Aliases pointing at this version (``champion``, ``challenger``).
    aliases: tuple[str, ...] = ()
    task: Task
    classes: tuple[str, ...] = ()
    description: str = ""
    owner: str | None = None
    intended_use: str | None = None
    limitations: tuple[str, ...] = ()
    #: Where owner, intended use and limitations come from: the training config the
    #: version was trained with (``version``) or the model's current config (``config``).
    declared_in: str | None = None
    created_at: datetime
    created_by: str


class TrainingData(Frozen):
    """Where the version came from: data, code, parameters and the run that trained it."""

    dataset: str | None = None
    dataset_sha256: str | None = None
    code_version: str | None = None
    estimator: str | None = None
    #: The configured hyperparameters (every fitted one when none was configured).
    hyperparameters: dict[str, JsonValue] = Field(default_factory=dict)
    #: The search that tuned the rest: ``method``, ``metric``, ``trials``, ``best_params``, ...
    search: dict[str, JsonValue] | None = None
    random_seed: int | None = None
    test_size: float | None = None
    library_versions: dict[str, str] = Field(default_factory=dict)
    dependency_lock_hash: str | None = None
    training_run_id: str
    #: The training run as the run log recorded it (``None``: not in the run log).
    run: Run | None = None
    #: The runs this version descends from: its training run, then that run's search trials.
    parent_runs: tuple[str, ...] = ()
    #: Set when the training set was joined from a feature view.
    feature_view: str | None = None
    #: Set for models trained elsewhere (``flywheel register``): what is not known.
    unknown: tuple[str, ...] = ()
    reproducible: bool = True
    features: tuple[FeatureSpec, ...] = ()
    artifact: ArtifactRef


class CardEvaluation(Frozen):
    """The evaluation its approval was asked with: the candidate and the champion on one
    holdout, the gate's checks, per-group metrics and the importance comparison."""

    holdout_rows: int | None = None
    candidate: ModelScore
    champion: ModelScore | None = None
    gate: tuple[GateCheck, ...] = ()
    importance: ImportanceComparison | None = None

    @property
    def bias(self) -> BiasResult | None:
        return self.candidate.bias


class CardEvent(Frozen):
    """One audit entry of the version's history."""

    seq: int
    timestamp: str
    action: str
    actor: str
    reason: str | None = None
    #: The principal a workflow asked for approval on behalf of (``approval_requested``).
    requested_by: str | None = None
    hash: str


class ChainStatus(Frozen):
    """Whether the audit chain the history comes from verified when the card was built."""

    ok: bool
    entries: int
    evidence: str
    problem: str | None = None


class ModelCard(Frozen):
    """One version's model card (see the module)."""

    overview: CardOverview
    data: TrainingData
    metrics: dict[str, float] = Field(default_factory=dict)
    evaluation: CardEvaluation | None = None
    #: Whether the gate checked the group metrics at evaluation (``gate.bias``), or they
    #: were only reported (``monitoring.bias``); ``None`` without an evaluation.
    bias_gated: bool | None = None
    parity: ParityReport | None = None
    importance: dict[str, float] = Field(default_factory=dict)
    history: tuple[CardEvent, ...] = ()
    chain: ChainStatus | None = None
    generated_at: datetime | None = None

    @property
    def requested(self) -> CardEvent | None:
        """The approval request (the last one, if it was asked twice)."""
        return _last(self.history, AuditAction.APPROVAL_REQUESTED)

    @property
    def decision(self) -> CardEvent | None:
        """The approval or rejection, if the version was decided."""
        return _last(self.history, AuditAction.APPROVED, AuditAction.REJECTED)


def _last(events: Iterable[CardEvent], *actions: AuditAction) -> CardEvent | None:
    found = None
    for event in events:
        if event.action in actions:
            found = event
    return found


def build_card(
    model: Model,
    version: ModelVersion,
    *,
    entries: Iterable[AuditEntry],
    approval: ApprovalDoc | None = None,
    config: ModelConfig | None = None,
    run: Run | None = None,
    trials: Iterable[Run] = (),
    chain: VerifyReport | None = None,
    now: datetime | None = None,
) -> ModelCard:
    """The model card of ``version`` from what is already recorded about it.

    Parameters
    ----------
    model, version
        The registered model and the version the card describes.
    entries
        The model's audit chain; the entries about ``version`` are its history.
    approval
        Its approval record, whose summary holds the evaluation it was approved on.
    config
        The model's current config: owner, intended use and limitations when the
        version's own training config declares none.
    run, trials
        Its training run and that run's search trials, from the run log.
    chain
        The chain's verification, shown with the history.

    Examples
    --------
    >>> from flywheel.composition import InMemoryPlatform
    >>> from flywheel.registry.models import VersionDraft
    >>> platform = InMemoryPlatform()
    >>> draft = VersionDraft.model_validate({
    ...     "name": "churn", "input_schema": {"features": [{"name": "age"}]},
    ...     "artifact": {"uri": "memory://m.onnx", "sha256": "0" * 64, "size_bytes": 1},
    ...     "output_schema": {"task": "regression"}, "importance": {"age": 1.5},
    ...     "lineage": {"dependency_lock_hash": "-", "training_run_id": "r1",
    ...                 "training_config": {"owner": "growth"}, "reproducible": False},
    ... })
    >>> version = platform.registry.register(draft, actor="ana")
    >>> card = build_card(platform.registry.get_model("churn"), version,
    ...                   entries=platform.registry.audit.entries("churn"))
    >>> card.overview.owner, card.importance, [event.action for event in card.history]
    ('growth', {'age': 1.5}, ['version_registered'])
    """
    training = version.lineage.training_config
    declared, source = _declared(training), "version"
    if not any(declared.values()) and config is not None:
        declared, source = _declared(config.training.model_dump(mode="json")), "config"
    overview = CardOverview(
        model=version.name,
        version=version.version,
        status=str(version.status),
        aliases=tuple(str(a) for a, n in sorted(model.aliases.items()) if n == version.version),
        task=version.output_schema.task,
        classes=version.output_schema.classes,
        description=version.description,
        owner=declared["owner"],
        intended_use=declared["intended_use"],
        limitations=tuple(declared["limitations"] or ()),
        declared_in=source if any(declared.values()) else None,
        created_at=version.created_at,
        created_by=version.created_by,
    )
    evaluation = _evaluation(approval, version)
    return ModelCard(
        overview=overview,
        data=_training_data(version, run, trials),
        metrics=dict(version.metrics),
        evaluation=evaluation,
        bias_gated=None if evaluation is None else any(c.name == "bias" for c in evaluation.gate),
        parity=version.parity,
        importance=dict(version.importance),
        history=tuple(
            CardEvent(
                seq=e.seq,
                timestamp=e.timestamp,
                action=str(e.action),
                actor=e.actor,
                reason=e.reason,
                requested_by=_text(e.details.get("requested_by")),
                hash=e.hash,
            )
            for e in entries
            if e.version == version.version and e.action in HISTORY_ACTIONS
        ),
        chain=None
        if chain is None
        else ChainStatus(
            ok=chain.ok,
            entries=chain.entries_checked,
            evidence=chain.evidence,
            problem=None if chain.first_problem is None else chain.first_problem.message,
        ),
        generated_at=now,
    )


def _declared(training: Mapping[str, Any]) -> dict[str, Any]:
    limitations = training.get("limitations") or ()
    return {
        "owner": _text(training.get("owner")),
        "intended_use": _text(training.get("intended_use")),
        "limitations": tuple(str(item) for item in limitations if item),
    }


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _training_data(version: ModelVersion, run: Run | None, trials: Iterable[Run]) -> TrainingData:
    lineage: Lineage = version.lineage
    training = lineage.training_config
    dataset = training.get("dataset")
    source = dataset.get("source") if isinstance(dataset, dict) else None
    estimator = training.get("estimator") or training.get("entrypoint")
    if lineage.imported is not None:
        estimator = f"imported ONNX ({lineage.imported.producer or 'unknown producer'})"
    view = lineage.feature_view
    return TrainingData(
        dataset=lineage.dataset_id or _text(source),
        dataset_sha256=lineage.dataset_sha256,
        code_version=lineage.code_commit,
        estimator=_text(estimator),
        hyperparameters=dict(training.get("hyperparameters") or version.hyperparameters),
        search=lineage.search,
        random_seed=lineage.random_seed,
        test_size=training.get("test_size"),
        library_versions=dict(lineage.library_versions),
        dependency_lock_hash=lineage.dependency_lock_hash,
        training_run_id=lineage.training_run_id,
        run=run,
        parent_runs=(lineage.training_run_id, *(t.run_id for t in trials)),
        feature_view=None if view is None else f"{view.name} v{view.version}",
        unknown=() if lineage.imported is None else lineage.imported.unknown,
        reproducible=lineage.reproducible,
        features=version.input_schema.features,
        artifact=version.artifact,
    )


def _evaluation(approval: ApprovalDoc | None, version: ModelVersion) -> CardEvaluation | None:
    """The approval's evaluation summary, if it is about these very bytes."""
    if approval is None or approval.artifact_sha256 != version.artifact.sha256:
        return None
    summary = approval.summary
    if not summary.get("candidate"):
        return None
    champion = summary.get("champion")
    importance = summary.get("importance")
    return CardEvaluation(
        holdout_rows=version.parity.rows if version.parity is not None else None,
        candidate=ModelScore.model_validate(summary["candidate"]),
        champion=ModelScore.model_validate(champion) if champion else None,
        gate=tuple(GateCheck.model_validate(c) for c in summary.get("gate") or ()),
        importance=ImportanceComparison.model_validate(importance) if importance else None,
    )
