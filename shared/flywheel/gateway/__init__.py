"""The LLM gateway: ``POST /v1/prompts/{name}/invoke`` as a use case (no AWS in here).

A call is routed to a prompt version (champion, canary, A/B arm; a shadow copy in the
background) by the registry's aliases and the workflows' records, rendered strictly,
reserved against the cost budgets, answered by the version's provider, checked against
its output schema (one repair retry), settled to its actual cost, captured under the
prompt's capture policy and measured.  Import the submodules directly.

See Also
--------
flywheel.gateway.service : :class:`~flywheel.gateway.service.PromptGateway`, one call.
flywheel.gateway.routing : Which version answers, refreshed in the background.
flywheel.gateway.capture : Captured calls (``llm-capture/``), the capture policy applied.
flywheel.gateway.metrics : What a call reports (the port; EMF in Lambda).
flywheel.gateway.models : The invoke body parsed, the answer serialized.
"""
