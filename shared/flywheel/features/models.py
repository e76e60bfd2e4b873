"""Feature store definitions (entities, feature views) and what the stores report.

Definitions are code: a :class:`FeatureView` names its :class:`Entity`, the raw
:class:`Source` columns it reads, the :class:`Feature` columns its transformation
produces, its timestamps and its TTL. Registering a view gives it a version
(:class:`RegisteredView`); stored data always belongs to one view version.

Nothing here imports pyarrow: the serving path (online reads) uses these models
in Lambda layers that ship numpy only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from flywheel.audit.models import canonical_json
from flywheel.models import Frozen
from flywheel.registry.models import validate_model_name

COLUMN_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")

#: One feature value as the stores hand it back (``None`` is a stored null).
FeatureValue = float | int | bool | str | None


class FeatureType(StrEnum):
    """The value types a column can have (offline: Arrow type; online: DynamoDB type)."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STRING = "string"


def _column_name(name: str) -> str:
    if not COLUMN_NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid column name {name!r}: use 1-128 lowercase letters, digits and '_'"
        )
    return name


#: A column, feature or join key name: lowercase letters, digits and ``_``.
ColumnName = Annotated[str, AfterValidator(_column_name)]
#: A view or entity name, spelled like a model name.
ResourceName = Annotated[str, AfterValidator(validate_model_name)]


class Column(Frozen):
    """A typed column with a nulls policy (``nullable=False`` rejects rows with a null).

    Examples
    --------
    >>> Column(name="amount", dtype="float").nullable
    False
    """

    name: ColumnName
    dtype: FeatureType = FeatureType.FLOAT
    nullable: bool = False
    description: str = ""


class Feature(Column):
    """A column the view's transformation produces and the stores keep."""


class Entity(Frozen):
    """What features describe (a customer, a card), identified by ``join_key``.

    Examples
    --------
    >>> Entity(name="customer", join_key="customer_id").dtype
    'string'
    """

    name: ResourceName
    join_key: ColumnName
    dtype: Literal["string", "int"] = "string"
    description: str = ""


class Source(Frozen):
    """Where a view's raw rows come from and the columns its transformation reads.

    ``name`` documents the origin (a table, a stream, an S3 prefix); ingestion checks
    every batch against ``columns`` (types and nulls) before the transformation runs.
    """

    name: str = Field(min_length=1, max_length=512)
    columns: tuple[Column, ...] = ()


class TransformationRef(Frozen):
    """A transformation pinned by name, version and a fingerprint of its code.

    The fingerprint lets ingestion refuse a function whose body changed without a
    version bump (the offline data would otherwise mix two definitions).
    """

    name: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=1)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")

    def __str__(self) -> str:
        return f"{self.name}@v{self.version}"


class FeatureView(Frozen):
    """A set of features of one entity, computed by one versioned transformation.

    ``ttl`` bounds how old a value may be and still be served or joined
    (``None``: values never expire). ``created_timestamp`` is when a row became
    known; a row is visible at time ``t`` only if both its event and created
    timestamps are at or before ``t``.

    Examples
    --------
    >>> ref = TransformationRef(name="identity", version=1, fingerprint="0" * 64)
    >>> view = FeatureView(
    ...     name="customer-stats",
    ...     entity=Entity(name="customer", join_key="customer_id"),
    ...     source=Source(name="orders", columns=(Column(name="spend"),)),
    ...     features=(Feature(name="spend"),),
    ...     transformation=ref,
    ...     ttl=timedelta(days=7),
    ... )
    >>> view.feature_names
    ['spend']
    """

    name: ResourceName
    entity: Entity
    source: Source
    features: tuple[Feature, ...] = Field(min_length=1)
    transformation: TransformationRef
    event_timestamp: ColumnName = "event_timestamp"
    created_timestamp: ColumnName = "created_timestamp"
    ttl: timedelta | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureView:
        names = self.feature_names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {duplicates}")
        reserved = {self.entity.join_key, self.event_timestamp, self.created_timestamp}
        if len(reserved) < 3:
            raise ValueError("join key, event and created timestamp columns must differ")
        clashes = sorted(reserved & set(names))
        if clashes:
            raise ValueError(f"features named like a key or timestamp column: {clashes}")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive (or None for no expiry)")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def dtypes(self) -> dict[str, FeatureType]:
        return {f.name: f.dtype for f in self.features}

    def fingerprint(self) -> str:
        """SHA-256 of the canonical definition: equal definitions, equal fingerprints."""
        body = canonical_json(self.model_dump(mode="json"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


class RegisteredView(Frozen):
    """A feature view as registered: the definition plus its version number."""

    view: FeatureView
    version: int = Field(ge=1)
    fingerprint: str
    registered_at: datetime
    registered_by: str

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def key(self) -> ViewKey:
        return ViewKey(self.view.name, self.version)


class ViewSummary(Frozen):
    """One line of the catalog: a view's latest version and what it holds."""

    name: str
    latest: int = Field(ge=1)
    entity: str
    join_key: str
    features: int
    ttl_seconds: float | None
    transformation: str
    fingerprint: str
    registered_at: datetime
    registered_by: str


@dataclass(frozen=True, order=True)
class ViewKey:
    """A view version: where its data lives offline and online.

    Examples
    --------
    >>> str(ViewKey("customer-stats", 2))
    'customer-stats/v2'
    """

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}/v{self.version}"


def to_micros(moment: datetime) -> int:
    """UTC microseconds since the epoch (naive datetimes are UTC).

    Examples
    --------
    >>> to_micros(datetime(1970, 1, 1, 0, 0, 1))
    1000000
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def ttl_micros(view: FeatureView) -> int | None:
    if view.ttl is None:
        return None
    return (view.ttl.days * 86_400 + view.ttl.seconds) * 1_000_000 + view.ttl.microseconds


# -- ingestion --------------------------------------------------------------------------------
class Rejection(Frozen):
    """One rejected input row: its index in the batch and every reason it failed."""

    row: int = Field(ge=0)
    reasons: tuple[str, ...]


class IngestReport(Frozen):
    """What an ingestion did. ``rows_received == rows_written + rows_rejected``, always.

    ``reasons`` counts rejected rows per reason; ``rejected`` lists every rejected row
    (a row can fail for several reasons); ``quarantine`` holds the rejected rows
    themselves with their reasons, so they can be fixed and re-ingested.
    """

    view: str
    version: int
    batch: str
    rows_received: int
    rows_written: int
    rows_rejected: int
    reasons: dict[str, int] = Field(default_factory=dict)
    rejected: tuple[Rejection, ...] = ()
    files: tuple[str, ...] = ()
    quarantine: str | None = None
    created_timestamp_filled: bool = False

    @model_validator(mode="after")
    def _accounted(self) -> IngestReport:
        if self.rows_received != self.rows_written + self.rows_rejected:
            raise ValueError("every received row is either written or rejected")
        return self


# -- materialization --------------------------------------------------------------------------
class Watermark(Frozen):
    """How far materialization got, robust to ingestions that finish out of order.

    Every file of a batch that started before ``floor`` (17-digit µs, the batch id's
    prefix) is online, as is every file in ``done``; ``offset`` rows of ``current``
    are online too. An ingestion may finish after a later one did, so files newer
    than the floor are tracked by name: a slow batch is never skipped.
    """

    floor: str = ""
    done: tuple[str, ...] = ()
    current: str = ""
    offset: int = Field(default=0, ge=0)
    rows: int = Field(default=0, ge=0)


class MaterializationReport(Frozen):
    """What one materialization run did.

    ``written`` items changed in the online store; ``unchanged`` already held the same
    value (a re-run or a resumed chunk); ``stale`` were older than what the online store
    holds (late arrivals never overwrite newer values).
    """

    view: str
    version: int
    started_from: Watermark
    watermark: Watermark
    files: int = 0
    chunks: int = 0
    rows_read: int = 0
    written: int = 0
    unchanged: int = 0
    stale: int = 0


@dataclass(frozen=True)
class WriteCounts:
    """Outcome of a batch of conditional online writes."""

    written: int = 0
    unchanged: int = 0
    stale: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            self.written + other.written,
            self.unchanged + other.unchanged,
            self.stale + other.stale,
        )


# -- online -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnlineRow:
    """An entity's latest feature values as the online store keeps them.

    ``event_us`` and ``created_us`` are UTC microseconds since the epoch; ``digest``
    identifies the values, so re-writing the same values is recognised as a no-op.
    """

    entity_id: str
    event_us: int
    created_us: int
    values: dict[str, FeatureValue]
    digest: str = ""

    def newer_than(self, other: OnlineRow) -> bool:
        """Whether this row replaces ``other``: a later event, or a later correction of it."""
        return (self.event_us, self.created_us) > (other.event_us, other.created_us)


def values_digest(values: dict[str, FeatureValue]) -> str:
    """A short stable digest of feature values (what makes a write a no-op).

    Examples
    --------
    >>> values_digest({"a": 1.5}) == values_digest({"a": 1.5})
    True
    """
    body = canonical_json({k: values[k] for k in sorted(values)})
    return hashlib.blake2b(body.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class OnlineResult:
    """Online values for the entities asked for.

    Entities without a stored row are ``missing``; entities whose latest value is
    older than the view's TTL are ``expired``. Neither is invented: ``rows`` holds
    only what the store returned and is still valid.
    """

    view: ViewKey
    features: tuple[str, ...]
    rows: dict[str, OnlineRow] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()

    def vector(self, entity_id: str) -> list[FeatureValue]:
        """The entity's values in ``features`` order.

        Raises
        ------
        KeyError
            The entity is missing or expired (see :meth:`FeatureStore.online_vector`
            for the domain error).
        """
        row = self.rows[entity_id]
        return [row.values.get(name) for name in self.features]

    def as_records(self) -> dict[str, dict[str, Any]]:
        """``{entity_id: {feature: value}}`` for the entities found."""
        return {e: {n: r.values.get(n) for n in self.features} for e, r in self.rows.items()}
