"""Shared fixtures: fake AWS credentials, moto, and provisioned Flywheel resources."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _share_botocore_data() -> None:
    """One botocore data loader per data path for this process, instead of one per session.

    moto's ``mock_aws`` gives each test a new default boto3 session, and every new session
    would parse botocore's JSON (endpoints, partitions, each service's model and rule set)
    again: about a third of an integration test's setup. The parsed data is the same for
    every session (one session's clients already share it), so the sessions share it too.
    boto3 adds its resource models' folder to a session's loader: once is enough.
    """
    import boto3.session
    import botocore.loaders
    import botocore.session

    make_loader = functools.cache(botocore.loaders.create_loader)
    botocore.session.create_loader = make_loader  # type: ignore[attr-defined]
    resources = os.path.join(os.path.dirname(boto3.session.__file__), "data")

    def setup_loader(session: boto3.session.Session) -> None:
        loader = session._session.get_component("data_loader")
        session._loader = loader  # type: ignore[attr-defined]
        if resources not in loader.search_paths:
            loader.search_paths.append(resources)

    boto3.session.Session._setup_loader = setup_loader  # type: ignore[method-assign]


_share_botocore_data()

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "flywheel-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "FlywheelTests",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Each test makes its own boto3 clients (its own credentials, region and moto state)."""
    from flywheel.composition.clients import ClientFactory

    ClientFactory.forget()
    yield
    ClientFactory.forget()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "FLYWHEEL_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    return AWS_ENV


@pytest.fixture
def moto_aws(aws_env: dict[str, str]) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def local_names(moto_aws: None) -> dict[str, str]:
    """Provision every Flywheel table and bucket on moto; return their names by env var."""
    from flywheel.local.provision import default_names, provision

    names = default_names("test")
    provision(boto3.client("dynamodb"), boto3.client("s3"), names, kms=boto3.client("kms"))
    return names


@pytest.fixture
def dynamodb_client(moto_aws: None) -> Any:
    return boto3.client("dynamodb")


#: Test modules that mostly wait on a long subprocess (mypy over the whole code base takes
#: a minute or two without its cache, as in CI): they run first, so that the other tests
#: overlap them instead of the run ending on them.
FIRST = ("tests/test_code_quality.py",)


@pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by fixture parameter
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in FIRST)
