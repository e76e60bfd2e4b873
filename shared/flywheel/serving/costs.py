"""What serving the classic models cost over a period: requests and Lambda GB-seconds per
model version, from the inference functions' metrics, and an estimate at Lambda's
published on-demand prices (``flywheel cost report``).

Each model's inference function is invoked through alias ``live``; Lambda reports
``Invocations`` and ``Duration`` per alias and executed version (``AWS/Lambda``,
dimensions ``FunctionName``, ``Resource`` = ``<function>:live``, ``ExecutedVersion``).
Every published version pins its model version (``FLYWHEEL_MODEL_VERSION``) and has its
own memory size, so GB-seconds = the sum of Duration (s) times memory (GB) per Lambda version, added
up per model version. Versions without a pin (the bootstrap version, which serves the
champion of its start) are reported as such.

Notes
-----
The estimate leaves out the free tier, SnapStart's cache and restore charges,
provisioned concurrency, API Gateway, data transfer and the volume tiers; where no
metric was reported for a model (the local runtime has none), the report says so and
shows no figures.

Examples
--------
>>> from flywheel.adapters.memory_serving_usage import InMemoryServingUsage
>>> usage = InMemoryServingUsage()
>>> usage.add_version("fn-churn", "4", memory_mb=1024, model_version=3)
>>> usage.add_usage("fn-churn", "4", date(2026, 12, 7), invocations=2000, duration_ms=100_000)
>>> report = model_cost_report(usage, {"churn": "fn-churn"}, since=date(2026, 12, 1),
...                            until=date(2026, 12, 7))
>>> v = report.models[0].versions[0]
>>> v.model_version, v.requests, v.gb_seconds, v.cost
(3, 2000, Decimal('100'), Decimal('0.0020666700'))
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from pydantic import Field

from flywheel.llm.prices import LambdaPriceTable, default_lambda_prices
from flywheel.models import Frozen

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "LambdaVersion",
    "LambdaVersionUsage",
    "ModelCost",
    "ModelCostReport",
    "ModelVersionCost",
    "ServingUsage",
    "model_cost_report",
]

_MB_PER_GB = Decimal(1024)
_MS_PER_S = Decimal(1000)


class LambdaVersion(Frozen):
    """A published version of an inference function: its memory and pinned model version."""

    version: str
    memory_mb: int = Field(ge=128)
    architecture: str = "x86_64"
    #: ``FLYWHEEL_MODEL_VERSION`` of the version (``None``: not pinned).
    model_version: int | None = None


class LambdaVersionUsage(Frozen):
    """What Lambda reported for one executed version of an alias over a period."""

    version: str
    invocations: int = Field(ge=0)
    duration_ms: Decimal = Field(ge=0)


class ServingUsage(Protocol):
    """The inference functions' versions and metrics (Lambda and CloudWatch)."""

    def versions(self, function: str) -> list[LambdaVersion]:
        """The function's published versions."""
        ...

    def alias_usage(
        self, function: str, alias: str, versions: list[str], start: datetime, end: datetime
    ) -> list[LambdaVersionUsage]:
        """Invocations and summed duration of ``function:alias`` per executed version in
        ``versions``, between ``start`` and ``end``; versions with no data left out."""
        ...


class ModelVersionCost(Frozen):
    """One model version's requests, GB-seconds and estimated cost over the period."""

    #: ``None``: Lambda versions that pin no model version.
    model_version: int | None
    lambda_versions: tuple[str, ...]
    requests: int
    gb_seconds: Decimal
    cost: Decimal

    @property
    def cost_per_1k_requests(self) -> Decimal | None:
        return self.cost * 1000 / self.requests if self.requests else None


class ModelCost(Frozen):
    """A model's serving over the period; ``versions`` empty: no metrics were reported."""

    model: str
    function: str
    versions: tuple[ModelVersionCost, ...]

    @property
    def has_metrics(self) -> bool:
        return bool(self.versions)

    @property
    def requests(self) -> int:
        return sum(v.requests for v in self.versions)

    @property
    def gb_seconds(self) -> Decimal:
        return sum((v.gb_seconds for v in self.versions), Decimal(0))

    @property
    def cost(self) -> Decimal:
        return sum((v.cost for v in self.versions), Decimal(0))


class ModelCostReport(Frozen):
    """Serving costs of the deployed models over UTC days ``since`` to ``until``."""

    since: date
    until: date
    currency: str
    #: Where the prices come from (the price entry's page and date).
    prices: str
    models: tuple[ModelCost, ...]


def _window(since: date, until: date) -> tuple[datetime, datetime]:
    start = datetime.combine(since, time(), tzinfo=UTC)
    return start, datetime.combine(until, time(), tzinfo=UTC) + timedelta(days=1)


def model_cost_report(
    source: ServingUsage,
    functions: Mapping[str, str],
    *,
    since: date,
    until: date,
    alias: str = "live",
    prices: LambdaPriceTable | None = None,
) -> ModelCostReport:
    """Requests, GB-seconds and estimated cost per model version of each model in
    ``functions`` (model name -> inference function), UTC days ``since`` to ``until``."""
    table = prices or default_lambda_prices()
    start, end = _window(since, until)
    models = []
    for model in sorted(functions):
        function = functions[model]
        versions = {v.version: v for v in source.versions(function)}
        usage = source.alias_usage(function, alias, sorted(versions, key=_number), start, end)
        by_model: dict[int | None, list[tuple[LambdaVersion, LambdaVersionUsage]]] = {}
        for used in usage:
            if used.invocations == 0 and used.duration_ms == 0:
                continue
            config = versions.get(used.version)
            if config is None:  # not asked about: not this function's version
                continue
            by_model.setdefault(config.model_version, []).append((config, used))
        costs = []
        for model_version in sorted(by_model, key=lambda v: (v is None, v or 0)):
            parts = by_model[model_version]
            requests = sum(u.invocations for _, u in parts)
            seconds_by_part = [
                (c, u.duration_ms / _MS_PER_S * Decimal(c.memory_mb) / _MB_PER_GB) for c, u in parts
            ]
            gb_seconds = sum((s for _, s in seconds_by_part), Decimal(0))
            cost = sum(
                (
                    table.cost(gb_seconds=s, requests=u.invocations, architecture=c.architecture)
                    for (c, s), (_, u) in zip(seconds_by_part, parts, strict=True)
                ),
                Decimal(0),
            )
            costs.append(
                ModelVersionCost(
                    model_version=model_version,
                    lambda_versions=tuple(sorted((c.version for c, _ in parts), key=_number)),
                    requests=requests,
                    gb_seconds=gb_seconds,
                    cost=cost,
                )
            )
        models.append(ModelCost(model=model, function=function, versions=tuple(costs)))
    first = table.prices[0]
    return ModelCostReport(
        since=since,
        until=until,
        currency=table.currency,
        prices=f"{first.source}, as of {first.as_of}",
        models=tuple(models),
    )


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)
