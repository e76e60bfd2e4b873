"""Smoke tests of a deployed stage: what CI runs after ``cdk deploy`` (``pytest -m deployed``).

They need ``FLYWHEEL_BACKEND=aws``, ``FLYWHEEL_STAGE`` and credentials that may read the
stage's platform record and call the retrain route (the ``GitHubDeployAccess`` role may).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

pytestmark = [
    pytest.mark.deployed,
    pytest.mark.skipif(
        os.environ.get("FLYWHEEL_BACKEND") != "aws" or not os.environ.get("FLYWHEEL_STAGE"),
        reason="needs FLYWHEEL_BACKEND=aws and FLYWHEEL_STAGE (a deployed stage)",
    ),
]


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    import boto3

    from flywheel.adapters.ssm import read_platform_record

    prefix = f"{os.environ.get('FLYWHEEL_PROJECT', 'flywheel')}-{os.environ['FLYWHEEL_STAGE']}"
    client = boto3.client("ssm", region_name=os.environ.get("FLYWHEEL_REGION") or None)
    found: dict[str, Any] = read_platform_record(client, prefix)
    return found


def test_the_stage_describes_itself_with_its_api_and_workflows(record: dict[str, Any]) -> None:
    assert record["stage"] == os.environ["FLYWHEEL_STAGE"]
    assert record["api_url"].startswith("https://")
    assert record["state_machines"]


def test_the_api_refuses_unsigned_requests(record: dict[str, Any]) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        record["api_url"].rstrip("/") + "/v1/models/no-such-model/retrain",
        data=b'{"reason": "smoke test"}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=20)
    assert refused.value.code == 403


def test_a_signed_request_reaches_the_retrain_route(record: dict[str, Any]) -> None:
    import boto3

    from flywheel.adapters.api_client import HttpApi
    from flywheel.errors import FlywheelError

    api = HttpApi(record["api_url"], session=boto3.Session(), region=record["region"])
    # A model nobody configured: the route answers (404), so auth and routing work and
    # nothing trains.
    with pytest.raises(FlywheelError) as refused:
        api.request_retrain("no-such-model", reason="smoke test")
    assert "no-such-model" in str(refused.value)
