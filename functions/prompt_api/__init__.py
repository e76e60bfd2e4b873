"""``POST /v1/prompts/{name}/versions``: register a prompt version, as the authenticated caller."""
