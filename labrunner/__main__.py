"""Run labrunner as ``python -m labrunner``."""

from labrunner.cli import main

main()
