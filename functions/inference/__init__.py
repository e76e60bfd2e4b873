"""``POST /v1/models/{name}/predict``."""
