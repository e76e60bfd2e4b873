"""Stacks only compose constructs and wire cross-unit grants."""
