"""The composition root: the only place clients, adapters and services are wired.

Handlers, the CLI, the SDK and the local runtime ask it for services; domain and
use-case packages never import adapters.  Importing it is cheap: boto3 and the
adapters load when the first AWS service is built.

Examples
--------
>>> platform = InMemoryPlatform()
>>> platform.registry.registry.list_models(limit=1).items
[]
"""

from __future__ import annotations

from flywheel.composition.platform import (
    AwsPlatform,
    InMemoryPlatform,
    Platform,
    check_environment,
    environment_settings,
)

__all__ = [
    "AwsPlatform",
    "InMemoryPlatform",
    "Platform",
    "check_environment",
    "environment_settings",
]
