"""Fixtures shared by the inference-handler tests (each module provides its own ``sdk``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.serving_support import MODEL


@pytest.fixture
def lambda_handler(sdk: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The deployed entry point, pinned to version 1 (as a published Lambda version is)."""
    monkeypatch.setenv("FLYWHEEL_MODEL_NAME", MODEL)
    monkeypatch.setenv("FLYWHEEL_MODEL_VERSION", "1")
    from functions.inference import handler as module

    module._service_for.cache_clear()
    yield module
    for service in _services(module):
        service.close()
    module._service_for.cache_clear()


def _services(module: Any) -> list[Any]:
    # functools.cache keeps no public view of its values; rebuild from the current pin
    return [module._service()] if module._service_for.cache_info().currsize else []
