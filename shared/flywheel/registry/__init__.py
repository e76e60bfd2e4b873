"""Model registry: versions, lifecycle, aliases."""
