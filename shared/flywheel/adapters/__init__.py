"""Adapters: the only modules that talk to AWS SDKs or hold state in memory."""
