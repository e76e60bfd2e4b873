"""Amazon Bedrock's ``Converse`` on moto: answered by the local stand-in.

moto's ``bedrock-runtime`` answers ``InvokeModel`` with an empty object and has no
``Converse``. :func:`install_converse` adds that one operation to moto's
``bedrock-runtime`` responses, so a boto3 client pointed at moto (in process, or the
local moto server) gets the stand-in's answers, usage and stop reasons, and its
injected errors as Bedrock's (``ThrottlingException`` with HTTP 429, …). Nothing else
of moto changes; :func:`uninstall_converse` removes it.

Examples
--------
>>> from flywheel.adapters.local_llm import LocalConverse
>>> with mock_aws():  # doctest: +SKIP
...     install_converse(LocalConverse())
...     boto3.client("bedrock-runtime").converse(modelId="m", messages=[...])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.adapters.local_llm import ConverseError

if TYPE_CHECKING:
    from flywheel.adapters.local_llm import LocalConverse

__all__ = ["CONVERSE_PARAMETERS", "install_converse", "uninstall_converse"]

#: The request members the stand-in reads (the rest of Converse's are ignored).
CONVERSE_PARAMETERS = (
    "modelId",
    "messages",
    "system",
    "inferenceConfig",
    "guardrailConfig",
    "outputConfig",
)


def install_converse(engine: LocalConverse) -> None:
    """Answer ``bedrock-runtime`` ``Converse`` calls to moto with ``engine``."""
    from moto.bedrockruntime.exceptions import BedrockRuntimeError
    from moto.bedrockruntime.responses import BedrockRuntimeResponse
    from moto.core.responses import ActionResult

    def converse(response: Any) -> ActionResult:
        request = {
            name: response._get_param(name)
            for name in CONVERSE_PARAMETERS
            if response._get_param(name) is not None
        }
        try:
            answer = engine.converse(request)
        except ConverseError as err:
            # moto serializes the code with the status Bedrock's service model gives it.
            raise BedrockRuntimeError(err.code, err.message) from None
        return ActionResult(answer)

    BedrockRuntimeResponse.converse = converse  # type: ignore[attr-defined]


def uninstall_converse() -> None:
    """Take ``Converse`` off moto's ``bedrock-runtime`` again (moto answers it with an error)."""
    from moto.bedrockruntime.responses import BedrockRuntimeResponse

    if "converse" in vars(BedrockRuntimeResponse):
        del BedrockRuntimeResponse.converse  # type: ignore[attr-defined]
