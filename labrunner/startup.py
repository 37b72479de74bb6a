"""A labrunner process's start-up: the cyclic garbage collector waits until it is over.

Start-up builds what lives as long as the process: modules, classes, functions,
the loaded workshop. CPython's cyclic collector runs every few hundred new
objects and, now and then, walks every object there is; during start-up it
finds nothing to free (this garbage is freed by reference counting) yet costs
a short command such as ``labrunner check`` several milliseconds. So the
console script pauses it (:func:`pause`) before it imports anything else, and
a command ends the pause (:func:`resume`) once it has loaded what it needs and
starts its work: what start-up built is frozen (moved where collections never
look: it is never garbage) and the collector runs as usual from then on.

``check`` and ``verify`` resume it before their first step, the TUI once its
first screen is up, every other command before click runs it; ``list`` and
``validate``, which load, print and end, never need to. A process the collector
was already off in (a host that turned it off) is left as it was. Only
:mod:`gc` is imported here.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Turn the cyclic collector off for start-up, if it is on."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Start-up is over: freeze what it built and turn the collector back on (only
    after :func:`pause` turned it off; calling it again does nothing)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
