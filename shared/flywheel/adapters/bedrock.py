"""Amazon Bedrock behind the provider port: one ``bedrock-runtime`` ``Converse`` call.

The client comes from the composition root with the timeouts of LLM calls and without
botocore's own retries (:class:`~flywheel.llm.providers.RetryingProvider` retries, with
jitter, and counts the attempts). On the local runtime, moto answers ``Converse`` with
the local stand-in.

Examples
--------
>>> provider = BedrockProvider(client=boto3.client("bedrock-runtime"))  # doctest: +SKIP
>>> provider.complete(request).usage  # doctest: +SKIP
Usage(input_tokens=42, output_tokens=17)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from flywheel.adapters.converse import completion_from, converse_request, error_for
from flywheel.errors import ProviderError, ProviderTimeoutError

if TYPE_CHECKING:
    from flywheel.llm.providers import Completion, CompletionRequest

__all__ = ["BedrockProvider"]


class BedrockProvider:
    """:class:`~flywheel.llm.providers.CompletionProvider` on Bedrock's Converse API."""

    def __init__(self, *, client: Any) -> None:
        self._client = client

    def complete(self, request: CompletionRequest) -> Completion:
        model = request.model_id
        started = time.perf_counter()
        try:
            response = self._client.converse(**converse_request(request))
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", "Unknown"))
            raise error_for(code, model_id=model) from None
        except (ReadTimeoutError, ConnectTimeoutError):
            raise ProviderTimeoutError(
                f"Amazon Bedrock did not answer the call to {model} in time",
                field="provider",
                details={"retryable": False},
            ) from None
        except BotoCoreError:
            raise ProviderError(
                f"Amazon Bedrock could not be reached for {model}",
                field="provider",
                details={"retryable": True},
            ) from None
        return completion_from(
            response, model_id=model, measured_ms=(time.perf_counter() - started) * 1000
        )
