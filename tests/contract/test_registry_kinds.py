"""A registry name holds model versions or prompt versions, never both; each kind is listed
apart. Identical for every backend, and names stored before prompts existed are models."""

from __future__ import annotations

import hashlib

import boto3
import pytest

from flywheel.errors import InvalidPageTokenError, RegistryKindError
from flywheel.llm.catalog import prompt_draft
from flywheel.llm.prompts import canonical_bytes
from flywheel.registry.models import ArtifactRef, RegistryKind, VersionDraft, VersionStatus
from tests.contract.conftest import Backend
from tests.factories import prompt_spec, version_draft


def _prompt(name: str) -> VersionDraft:
    spec = prompt_spec(name=name)
    data = canonical_bytes(spec)
    artifact = ArtifactRef(
        uri=f"s3://artifacts/prompts/{name}/prompt.json",
        version_id="v1",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format="json",
    )
    return prompt_draft(spec, artifact, registration_id=f"{name}-r1", environment="e" * 64)


def test_a_prompt_version_goes_through_the_same_lifecycle(backend: Backend) -> None:
    svc = backend.service
    number = svc.register(_prompt("greeting"), actor="ana").version
    svc.request_approval("greeting", number, actor="ana")
    svc.approve("greeting", number, actor="bo", reason="read it")
    svc.promote("greeting", number, actor="bo", reason="first")

    stored = svc.get_version("greeting", number)
    assert (stored.kind, stored.status) == (RegistryKind.PROMPT, VersionStatus.PRODUCTION)
    assert svc.get_model("greeting").kind is RegistryKind.PROMPT
    assert svc.get_model("greeting").champion == number
    assert svc.verify("greeting").ok


def test_one_name_never_holds_both_kinds(backend: Backend) -> None:
    svc = backend.service
    svc.register(version_draft("churn"), actor="ci")
    svc.register(_prompt("greeting"), actor="ana")

    with pytest.raises(RegistryKindError, match="'churn' holds model versions"):
        svc.register(_prompt("churn"), actor="ana")
    with pytest.raises(RegistryKindError, match="'greeting' holds prompt versions"):
        svc.register(version_draft("greeting"), actor="ci")

    assert svc.get_model("churn").latest_version == 1
    assert svc.get_model("greeting").latest_version == 1
    assert len(list(backend.audit.entries("churn"))) == 1


def test_models_and_prompts_are_listed_apart(backend: Backend) -> None:
    svc = backend.service
    for name in ("alpha", "beta"):
        svc.register(version_draft(name), actor="ci")
    for name in ("greeting", "summary", "triage"):
        svc.register(_prompt(name), actor="ana")

    models = backend.registry.list_models(limit=10)
    prompts: list[str] = []
    token = None
    while True:
        page = backend.registry.list_models(limit=2, page_token=token, kind=RegistryKind.PROMPT)
        prompts.extend(m.name for m in page.items)
        token = page.next_token
        if token is None:
            break

    assert [m.name for m in models.items] == ["alpha", "beta"]
    assert prompts == ["greeting", "summary", "triage"]
    first = backend.registry.list_models(limit=1).next_token
    assert first is not None
    with pytest.raises(InvalidPageTokenError):
        backend.registry.list_models(limit=1, page_token=first, kind=RegistryKind.PROMPT)


def test_a_name_stored_before_prompts_existed_is_a_model(backend: Backend) -> None:
    if backend.kind != "dynamodb":
        pytest.skip("only the table keeps items written by an earlier release")
    assert backend.names is not None
    table = backend.names["FLYWHEEL_REGISTRY_TABLE"]
    client = boto3.client("dynamodb", region_name="us-east-1")
    backend.service.register(version_draft("legacy"), actor="ci")
    client.update_item(
        TableName=table,
        Key={"pk": {"S": "MODEL#legacy"}, "sk": {"S": "META"}},
        UpdateExpression="REMOVE kind",
    )
    item = client.get_item(
        TableName=table, Key={"pk": {"S": "MODEL#legacy"}, "sk": {"S": "V#0000000001"}}
    )
    doc = item["Item"]["doc"]["S"].replace('"kind":"model",', "")
    client.update_item(
        TableName=table,
        Key={"pk": {"S": "MODEL#legacy"}, "sk": {"S": "V#0000000001"}},
        UpdateExpression="SET doc = :d",
        ExpressionAttributeValues={":d": {"S": doc}},
    )

    assert '"kind"' not in doc
    assert backend.service.get_model("legacy").kind is RegistryKind.MODEL
    assert backend.service.get_version("legacy", 1).kind is RegistryKind.MODEL
    assert backend.service.register(version_draft("legacy", seed=2), actor="ci").version == 2
    with pytest.raises(RegistryKindError):
        backend.service.register(_prompt("legacy"), actor="ana")
