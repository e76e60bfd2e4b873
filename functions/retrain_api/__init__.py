"""``POST /v1/models/{name}/retrain``: ask for a training run, as the authenticated caller."""
