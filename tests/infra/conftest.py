"""Synthesize the real app once per stage per test session (stub layer assets, no pip).

The first synthesis of a session starts jsii's Node.js runtime (~10-17 s); every
assertion afterwards reads the templates written to a temporary ``cdk.out``.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tests.infra.synth import Synth, synthesize


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
