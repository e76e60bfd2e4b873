"""LLM applications: prompt specs and their strict templates, the price table, and the
provider port (ADR 78). Prompt versions live in the model registry
(:mod:`flywheel.llm.catalog`); providers are adapters behind :mod:`flywheel.llm.providers`."""
