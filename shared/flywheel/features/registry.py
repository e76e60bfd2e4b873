"""Feature view versions, stored next to the model registry and audited like models.

A registration writes three things in one transaction (through
:meth:`RegistryService.record`): the version record, the catalog (every view's
latest version, conditional on the revision read), and an audit entry
``feature_view_registered`` on the chain ``feature-view#<name>``. Registering a
definition identical to the latest version changes nothing and returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.audit.models import AuditAction, AuditDraft
from flywheel.clock import Clock, SystemClock
from flywheel.errors import ConcurrentModificationError, NotFoundError
from flywheel.features.models import RegisteredView, ViewSummary
from flywheel.registry.models import RecordKey, RecordWrite

if TYPE_CHECKING:
    from flywheel.audit.chain import VerifyReport
    from flywheel.audit.models import AuditEntry
    from flywheel.features.models import FeatureView
    from flywheel.registry.ports import RecordStore
    from flywheel.registry.service import RegistryService

CATALOG_KEY = RecordKey(partition="FEATURE_VIEWS", sort="CATALOG")


class FeatureViewNotFoundError(NotFoundError):
    code = "feature_view_not_found"


def audit_stream(name: str) -> str:
    """The audit chain of a feature view (``flywheel audit show feature-view#<name>``).

    Examples
    --------
    >>> audit_stream("customer-stats")
    'feature-view#customer-stats'
    """
    return f"feature-view#{name}"


def version_key(name: str, version: int) -> RecordKey:
    return RecordKey(partition=f"FEATURE_VIEW#{name}", sort=f"VERSION#{version:010d}")


def watermark_key(name: str, version: int) -> RecordKey:
    return RecordKey(partition=f"FEATURE_VIEW#{name}", sort=f"WATERMARK#{version:010d}")


class FeatureRegistry:
    """Register, resolve and list feature views.

    Examples
    --------
    >>> from flywheel.adapters.memory import InMemoryAuditLog, InMemoryModelRegistry
    >>> from flywheel.registry.service import RegistryService
    >>> audit = InMemoryAuditLog()
    >>> store = InMemoryModelRegistry(audit)
    >>> FeatureRegistry(RegistryService(store, audit), store).catalog()
    []
    """

    def __init__(
        self,
        registry: RegistryService,
        records: RecordStore,
        *,
        clock: Clock | None = None,
        max_attempts: int = 10,
    ) -> None:
        self._registry = registry
        self._records = records
        self._clock = clock or SystemClock()
        self._max_attempts = max_attempts

    def register(
        self, view: FeatureView, *, actor: str, reason: str | None = None
    ) -> RegisteredView:
        """Store ``view`` as its next version (or return the latest when it is identical)."""
        fingerprint = view.fingerprint()
        for _ in range(self._max_attempts):
            catalog = self._records.get_record(CATALOG_KEY)
            views: dict[str, Any] = dict(catalog.doc.get("views", {})) if catalog else {}
            current = views.get(view.name)
            if current is not None and current["fingerprint"] == fingerprint:
                return self.get(view.name, int(current["latest"]))
            version = int(current["latest"]) + 1 if current else 1
            registered = RegisteredView(
                view=view,
                version=version,
                fingerprint=fingerprint,
                registered_at=self._clock.now(),
                registered_by=actor,
            )
            views[view.name] = self._summary(registered).model_dump(mode="json")
            writes = (
                RecordWrite(
                    key=CATALOG_KEY,
                    doc={"views": views},
                    expected_revision=catalog.revision if catalog else None,
                ),
                RecordWrite(
                    key=version_key(view.name, version),
                    doc=registered.model_dump(mode="json"),
                ),
            )
            audit = AuditDraft(
                model=audit_stream(view.name),
                action=AuditAction.FEATURE_VIEW_REGISTERED,
                actor=actor,
                version=version,
                reason=reason,
                details={
                    "fingerprint": fingerprint,
                    "entity": view.entity.name,
                    "features": view.feature_names,
                    "transformation": view.transformation.model_dump(mode="json"),
                    "ttl_seconds": view.ttl.total_seconds() if view.ttl else None,
                },
            )
            try:
                self._registry.record(audit, records=writes)
            except ConcurrentModificationError:
                continue  # another registration moved the catalog: re-read and decide again
            return registered
        raise ConcurrentModificationError(
            f"feature view {view.name!r}: too many concurrent registrations", field="name"
        )

    def get(self, name: str, version: int | None = None) -> RegisteredView:
        """A registered version (the latest by default).

        Raises
        ------
        FeatureViewNotFoundError
            No such view, or no such version of it.
        """
        if version is None:
            version = self.latest_version(name)
        record = self._records.get_record(version_key(name, version))
        if record is None:
            self.latest_version(name)
            raise FeatureViewNotFoundError(
                f"feature view {name!r} has no version {version}", field="version"
            )
        return RegisteredView.model_validate(record.doc)

    def latest_version(self, name: str) -> int:
        catalog = self._records.get_record(CATALOG_KEY)
        entry = (catalog.doc.get("views", {}) if catalog else {}).get(name)
        if entry is None:
            raise FeatureViewNotFoundError(f"feature view {name!r} does not exist", field="view")
        return int(entry["latest"])

    def catalog(self) -> list[ViewSummary]:
        """Every view's latest version, by name."""
        catalog = self._records.get_record(CATALOG_KEY)
        views = catalog.doc.get("views", {}) if catalog else {}
        return [ViewSummary.model_validate(views[name]) for name in sorted(views)]

    def verify(self, name: str) -> VerifyReport:
        """Check the view's audit chain (also ``flywheel audit verify feature-view#<name>``)."""
        return self._registry.verify(audit_stream(name))

    def history(self, name: str) -> list[AuditEntry]:
        """The view's audit entries, oldest first."""
        return list(self._registry.audit.entries(audit_stream(name)))

    @staticmethod
    def _summary(registered: RegisteredView) -> ViewSummary:
        view = registered.view
        return ViewSummary(
            name=view.name,
            latest=registered.version,
            entity=view.entity.name,
            join_key=view.entity.join_key,
            features=len(view.features),
            ttl_seconds=view.ttl.total_seconds() if view.ttl else None,
            transformation=str(view.transformation),
            fingerprint=registered.fingerprint,
            registered_at=registered.registered_at,
            registered_by=registered.registered_by,
        )
