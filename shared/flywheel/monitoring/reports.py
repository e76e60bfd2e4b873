"""The monitors' reports in the artifacts bucket: list them, fetch one.

Both monitors, and the training workflow's data validation, write a JSON result and an
HTML page per run::

    reports/<model>/drift/<YYYY-MM-DDTHHMMSS>.{json,html}
    reports/<model>/performance/<YYYY-MM-DDTHHMMSS>.{json,html}
    reports/<model>/data/<YYYY-MM-DDTHHMMSS>-<execution>.{json,html}
    reports/<prompt>/quality/<YYYY-MM-DDTHHMMSS>.{json,html}    (the LLM quality monitor)

A monitor's run id is the timestamp (UTC) of the window's end, a training run's the time
it started and its execution name, so ids sort by time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from flywheel.errors import ArtifactNotFoundError

if TYPE_CHECKING:
    from flywheel.serving.capture import CaptureSource

__all__ = ["KINDS", "ReportEntry", "ReportIndex"]

Kind = Literal["drift", "performance", "data", "quality"]
KINDS: tuple[Kind, ...] = ("drift", "performance", "data", "quality")


class ReportEntry(BaseModel):
    """One monitoring run's report."""

    model_config = ConfigDict(frozen=True)

    model: str
    kind: Kind
    run_id: str
    html_key: str | None
    json_key: str | None


class ReportIndex:
    """Find and read reports through any ``keys``/``get`` object source (S3, memory).

    Examples
    --------
    >>> from flywheel.adapters.memory_capture import InMemoryCaptureSink
    >>> bucket = InMemoryCaptureSink()
    >>> bucket.put("reports/churn/drift/2026-01-01T120000.html", b"<html>")
    >>> bucket.put("reports/churn/drift/2026-01-01T120000.json", b"{}")
    >>> index = ReportIndex(bucket)
    >>> [(r.kind, r.run_id) for r in index.list("churn")]
    [('drift', '2026-01-01T120000')]
    >>> index.html(index.find("churn"))
    b'<html>'
    """

    def __init__(self, source: CaptureSource, *, prefix: str = "reports/") -> None:
        self.source = source
        self.prefix = prefix

    def list(self, model: str, *, kind: Kind | None = None) -> list[ReportEntry]:
        """Every report of ``model`` (of ``kind``), newest first."""
        entries: list[ReportEntry] = []
        for each in (kind,) if kind else KINDS:
            base = f"{self.prefix}{model}/{each}/"
            runs: dict[str, dict[str, str]] = {}
            for key in self.source.keys(base):
                name = key.removeprefix(base)
                run_id, dot, extension = name.rpartition(".")
                if dot and "/" not in run_id and extension in ("html", "json"):
                    runs.setdefault(run_id, {})[extension] = key
            entries += [
                ReportEntry(
                    model=model,
                    kind=each,
                    run_id=run_id,
                    html_key=files.get("html"),
                    json_key=files.get("json"),
                )
                for run_id, files in runs.items()
            ]
        return sorted(entries, key=lambda e: (e.run_id, e.kind), reverse=True)

    def find(
        self, model: str, *, run_id: str | None = None, kind: Kind | None = None
    ) -> ReportEntry:
        """The report of run ``run_id`` (the newest when omitted) that has an HTML page.

        Raises
        ------
        ArtifactNotFoundError
            No such report.
        """
        for entry in self.list(model, kind=kind):
            if entry.html_key is not None and run_id in (None, entry.run_id):
                return entry
        what = f"run {run_id!r}" if run_id else "any run"
        raise ArtifactNotFoundError(
            f"no {kind or 'monitoring'} report of model {model!r} for {what}; "
            f"list them with `flywheel monitor reports {model}`",
            field="run" if run_id else "model",
        )

    def html(self, entry: ReportEntry) -> bytes:
        if entry.html_key is None:
            raise ArtifactNotFoundError(f"run {entry.run_id} has no HTML report", field="run")
        return self.source.get(entry.html_key)
