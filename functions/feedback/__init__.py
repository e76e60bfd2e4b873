"""``POST /v1/feedback``: delayed ground-truth labels for captured predictions."""
