"""Inference functions' versions and metrics in memory: the ``ServingUsage`` port for tests
and the in-memory platform (nothing is reported unless a test adds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from flywheel.serving.costs import LambdaVersion, LambdaVersionUsage

__all__ = ["InMemoryServingUsage"]


@dataclass
class InMemoryServingUsage:
    """Published versions per function, and daily invocations and duration per version.

    Examples
    --------
    >>> usage = InMemoryServingUsage()
    >>> usage.add_version("fn", "2", memory_mb=512, model_version=1)
    >>> usage.add_usage("fn", "2", date(2026, 12, 7), invocations=3, duration_ms=30)
    >>> start, end = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)
    >>> usage.alias_usage("fn", "live", ["2"], start, end)[0].invocations
    3
    """

    published: dict[str, list[LambdaVersion]] = field(default_factory=dict)
    #: (function, version, day) -> (invocations, duration in ms)
    daily: dict[tuple[str, str, date], tuple[int, Decimal]] = field(default_factory=dict)

    def add_version(
        self,
        function: str,
        version: str,
        *,
        memory_mb: int,
        model_version: int | None,
        architecture: str = "x86_64",
    ) -> None:
        self.published.setdefault(function, []).append(
            LambdaVersion(
                version=version,
                memory_mb=memory_mb,
                model_version=model_version,
                architecture=architecture,
            )
        )

    def add_usage(
        self, function: str, version: str, day: date, *, invocations: int, duration_ms: float
    ) -> None:
        calls, duration = self.daily.get((function, version, day), (0, Decimal(0)))
        self.daily[(function, version, day)] = (
            calls + invocations,
            duration + Decimal(str(duration_ms)),
        )

    def versions(self, function: str) -> list[LambdaVersion]:
        return list(self.published.get(function, []))

    def alias_usage(
        self,
        function: str,
        alias: str,  # noqa: ARG002 - one alias in memory
        versions: list[str],
        start: datetime,
        end: datetime,
    ) -> list[LambdaVersionUsage]:
        found = []
        for version in versions:
            calls, duration = 0, Decimal(0)
            for (fn, v, day), (n, ms) in self.daily.items():
                moment = datetime.combine(day, time(), tzinfo=UTC)
                if fn == function and v == version and start <= moment < end:
                    calls, duration = calls + n, duration + ms
            if calls or duration:
                found.append(
                    LambdaVersionUsage(version=version, invocations=calls, duration_ms=duration)
                )
        return found
