"""The ``flywheel`` command line."""
