"""``POST /v1/prompts/{name}/invoke``: the LLM gateway."""
