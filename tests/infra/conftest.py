"""Synthesize the real app once per stage per test session (stub layer assets, no pip).

The first synthesis of a session starts jsii's Node.js runtime (~10-17 s); every
assertion afterwards reads the templates written to a temporary ``cdk.out``. The
assemblies are shared by the session's xdist workers (``tests/infra/synth.py``): one
worker synthesizes each, the others read it; a worker builds a stage's construct tree
only if one of its tests reads it (``synth.app``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tests.infra.synth import Synth, synthesize, use_cache


@pytest.fixture(scope="session", autouse=True)
def _shared_assemblies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's assembly cache: under the base temporary directory that every xdist
    worker's own one sits in (a worker's is ``<base>/popen-gw<n>``)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    use_cache(shared / "cdk-assemblies")
    yield
    use_cache(None)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(scope="session")
def subscribed(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Prod with people to notify: two email addresses and a Slack channel."""
    from infra.config import StageConfig, load_stage_config

    config = StageConfig.model_validate(
        {
            **load_stage_config("prod").model_dump(),
            "notifications": {
                "emails": ["ana@example.com", "ops@example.com"],
                "slack": {"workspace_id": "T0123ABCD", "channel_id": "C0123ABCD"},
            },
        }
    )
    return synthesize("prod", tmp_path_factory.mktemp("cdk-subscribed"), config)


@pytest.fixture(scope="session", params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each stage in turn."""
    return request.getfixturevalue(request.param)
