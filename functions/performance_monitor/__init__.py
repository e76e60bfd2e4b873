"""Scheduled performance monitor: captured predictions joined with delayed labels."""
