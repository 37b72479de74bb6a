"""The Textual front end: screens, dialogs and widgets over the engine.

Only this package imports Textual, and the CLI imports it only inside ``run``,
so the headless commands start fast and never need a terminal UI. Entry
points live in :mod:`labrunner.tui.app` (``make_app`` and ``run_app``); the
engine is driven from worker threads by :mod:`labrunner.tui.driver`, so the
screens only ever render state and post requests.
"""
