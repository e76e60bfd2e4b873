"""Fixtures shared by the integration tests: each its own local runtime port and home;
the inference handler (each module provides its own ``sdk``)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.local_support import local_runtime  # noqa: F401 (autouse fixture: used by name)
from tests.serving_support import MODEL, POWERTOOLS_ENV


@pytest.fixture
def deployed_sdk(local_names: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An SDK on the provisioned moto resources, with the inference function's environment."""
    from flywheel.composition import AwsPlatform
    from flywheel.sdk import Flywheel
    from flywheel.settings import Settings

    monkeypatch.setenv("FLYWHEEL_BACKEND", "aws")
    for key, value in {**local_names, **POWERTOOLS_ENV}.items():
        monkeypatch.setenv(key, value)
    # The SDK's constructor takes the actor as given (Flywheel.connect would use the STS
    # identity in AWS mode); the tables are written directly, as in a test account.
    return Flywheel(AwsPlatform(Settings()), actor="ops@example.com")


@pytest.fixture
def lambda_handler(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The deployed entry point, pinned to version 1 (as a published Lambda version is).

    Every service the module builds during the test is closed at its end, including those a
    test dropped with ``_service_for.cache_clear()``: a dropped service's capture thread would
    otherwise flush its buffer later, into the next test's runtime."""
    monkeypatch.setenv("FLYWHEEL_MODEL_NAME", MODEL)
    monkeypatch.setenv("FLYWHEEL_MODEL_VERSION", "1")
    from functions.inference import handler as module

    build = module._service_for.__wrapped__
    built: list[Any] = []

    def tracked(pin: tuple[str | None, ...]) -> Any:
        service = build(pin)
        built.append(service)
        return service

    monkeypatch.setattr(module, "_service_for", functools.cache(tracked))
    yield module
    for service in built:
        service.close()
