"""ASL builders for the training and promotion state machines (pure data, JSONPath only)."""
