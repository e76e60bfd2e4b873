"""Monitoring: model performance on windows of delayed labels, against the holdout baseline."""
