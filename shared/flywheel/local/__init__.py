"""The local runtime: Flywheel on one machine, with moto standing in for AWS."""
