"""``python -m flywheel.cli``."""

from flywheel.cli.app import main

main()
