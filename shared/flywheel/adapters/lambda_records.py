"""The registry and the audit trail as every caller but the records writer sees them:
reads straight from DynamoDB, every write a synchronous invocation of the writer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flywheel.errors import FlywheelError, error_from_dict
from flywheel.registry.models import RegistryKind
from flywheel.workflows.writer import WriteOp, WriteRequest, WriteResponse

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mypy_boto3_lambda import LambdaClient

    from flywheel.adapters.dynamodb import DynamoDbAuditLog, DynamoDbModelRegistry
    from flywheel.audit.models import AuditDraft, AuditEntry, ChainHead
    from flywheel.registry.models import (
        Model,
        ModelVersion,
        Page,
        RecordKey,
        RecordWrite,
        RegistryChange,
        StoredRecord,
        VersionDraft,
    )

__all__ = ["LambdaRecordsWriter", "WriterAuditLog", "WriterRegistry"]


class WriterUnavailableError(FlywheelError):
    code = "records_writer_unavailable"


class LambdaRecordsWriter:
    """Invokes the records writer through one capability alias.

    ``proof`` (people only) returns a fresh proof of the caller's AWS identity for each
    request; workflow functions assert the actor themselves.

    Examples
    --------
    >>> writer = LambdaRecordsWriter("flywheel-prod-records-writer", "workflows",
    ...                              client=lambda_client)  # doctest: +SKIP
    """

    def __init__(
        self,
        function: str,
        capability: str,
        *,
        client: LambdaClient | None = None,
        proof: Callable[[], str] | None = None,
    ) -> None:
        self.target = f"{function}:{capability}"
        self._client: LambdaClient = client if client is not None else boto3.client("lambda")
        self._proof = proof

    def write(self, request: WriteRequest) -> WriteResponse:
        if self._proof is not None:
            request = request.model_copy(update={"identity_proof": self._proof()})
        try:
            answer = self._client.invoke(
                FunctionName=self.target,
                InvocationType="RequestResponse",
                Payload=request.model_dump_json().encode(),
            )
            payload = json.loads(answer["Payload"].read() or b"{}")
        except (ClientError, BotoCoreError, ValueError) as err:
            raise WriterUnavailableError(
                f"the records writer ({self.target}) could not be invoked"
            ) from err
        if answer.get("FunctionError"):
            raise WriterUnavailableError(
                f"the records writer ({self.target}) failed: {payload.get('errorType', 'error')}"
            )
        response = WriteResponse.model_validate(payload)
        if response.error is not None:
            raise error_from_dict(response.error)
        return response


class WriterRegistry:
    """:class:`~flywheel.registry.ports.RegistryStorage`: reads from the table, writes
    through the records writer."""

    def __init__(self, reads: DynamoDbModelRegistry, writer: LambdaRecordsWriter) -> None:
        self._reads = reads
        self._writer = writer

    def create_version(
        self, draft: VersionDraft, *, actor: str, audit: AuditDraft
    ) -> tuple[ModelVersion, AuditEntry]:
        response = self._writer.write(
            WriteRequest(op=WriteOp.CREATE_VERSION, actor=actor, draft=draft, audit=audit)
        )
        assert response.version is not None
        assert response.entry is not None
        return response.version, response.entry

    def apply(self, change: RegistryChange, *, actor: str, audit: AuditDraft) -> AuditEntry:
        response = self._writer.write(
            WriteRequest(op=WriteOp.APPLY, actor=actor, change=change, audit=audit)
        )
        assert response.entry is not None
        return response.entry

    def put_record(self, write: RecordWrite) -> StoredRecord:
        response = self._writer.write(WriteRequest(op=WriteOp.PUT_RECORD, record=write))
        assert response.record is not None
        return response.record

    def get_record(self, key: RecordKey) -> StoredRecord | None:
        return self._reads.get_record(key)

    def list_records(
        self, partition: str, sort_prefix: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[StoredRecord]:
        return self._reads.list_records(partition, sort_prefix, limit=limit, page_token=page_token)

    def get_model(self, name: str) -> Model:
        return self._reads.get_model(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self._reads.get_version(name, version)

    def list_models(
        self,
        *,
        limit: int = 50,
        page_token: str | None = None,
        kind: RegistryKind = RegistryKind.MODEL,
    ) -> Page[Model]:
        return self._reads.list_models(limit=limit, page_token=page_token, kind=kind)

    def list_versions(
        self, name: str, *, limit: int = 50, page_token: str | None = None
    ) -> Page[ModelVersion]:
        return self._reads.list_versions(name, limit=limit, page_token=page_token)

    def __getattr__(self, name: str) -> Any:
        # Read-only extras of the table adapter (e.g. listings) pass through.
        return getattr(self._reads, name)


class WriterAuditLog:
    """:class:`~flywheel.audit.ports.AuditLog`: reads from the table, appends through the
    records writer."""

    def __init__(self, reads: DynamoDbAuditLog, writer: LambdaRecordsWriter) -> None:
        self._reads = reads
        self._writer = writer

    def append(self, draft: AuditDraft) -> AuditEntry:
        response = self._writer.write(
            WriteRequest(op=WriteOp.APPEND, actor=draft.actor, audit=draft)
        )
        assert response.entry is not None
        return response.entry

    def entries(self, model: str) -> Iterator[AuditEntry]:
        return self._reads.entries(model)

    def head(self, model: str) -> ChainHead | None:
        return self._reads.head(model)

    def streams(self) -> Iterator[str]:
        return self._reads.streams()
