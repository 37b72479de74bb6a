"""Run labrunner as ``python -m labrunner`` (the same entry as the console script)."""

from labrunner.launch import main

main()
