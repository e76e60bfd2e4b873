"""Feature store: definitions as code, S3 offline store, DynamoDB online store.

Define an :class:`~flywheel.features.models.Entity` and a
:class:`~flywheel.features.models.FeatureView` with a registered
:func:`~flywheel.features.transformations.transformation`; register the view with
:class:`~flywheel.features.store.FeatureStore`, ingest source rows, build
point-in-time correct training sets, materialize to the online store and read
feature vectors for serving. See ``docs/features.md``.

Importing this package does not import pyarrow (online reads run without it).
"""

from flywheel.features.models import (
    Column,
    Entity,
    Feature,
    FeatureType,
    FeatureView,
    IngestReport,
    MaterializationReport,
    OnlineResult,
    RegisteredView,
    Source,
    ViewKey,
)
from flywheel.features.store import EntityNotFoundError, FeatureStore
from flywheel.features.transformations import (
    IDENTITY,
    TRANSFORMATIONS,
    Transformation,
    TransformationRegistry,
    transformation,
)

__all__ = [
    "IDENTITY",
    "TRANSFORMATIONS",
    "Column",
    "Entity",
    "EntityNotFoundError",
    "Feature",
    "FeatureStore",
    "FeatureType",
    "FeatureView",
    "IngestReport",
    "MaterializationReport",
    "OnlineResult",
    "RegisteredView",
    "Source",
    "Transformation",
    "TransformationRegistry",
    "ViewKey",
    "transformation",
]
