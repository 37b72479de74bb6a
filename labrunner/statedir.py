"""Where labrunner keeps its state, found without importing ``platformdirs`` where it can be.

``LABRUNNER_STATE_DIR`` wins. Otherwise it is what
``platformdirs.user_state_dir("labrunner", appauthor=False)`` answers. On
Linux with an absolute ``$HOME`` that answer is the XDG base directory rule:
``$XDG_STATE_HOME/labrunner`` when that variable is an absolute path, else
``~/.local/state/labrunner``; this module applies the rule itself, because
importing platformdirs (which loads ``tempfile``, ``shutil`` and ``random``)
costs a short command more than the rest of its start-up (some 15 ms, more
than a warm ``labrunner --help``). Anything else (another system, an unset or
relative ``$HOME``) asks platformdirs. A test holds the two answers equal.

Imports only ``os`` and ``sys``: the console script's ``--help`` road uses it.
"""

from __future__ import annotations

import os
import sys

APP = "labrunner"


def state_root() -> str:
    """The state directory's path (not created)."""
    override = os.environ.get("LABRUNNER_STATE_DIR")
    if override:
        return os.path.expanduser(override)
    if sys.platform.startswith("linux"):
        xdg = os.environ.get("XDG_STATE_HOME", "")
        if os.path.isabs(xdg):
            return os.path.join(xdg, APP)
        if os.path.isabs(os.environ.get("HOME", "")):
            return os.path.join(os.path.expanduser("~/.local/state"), APP)
    from platformdirs import user_state_dir

    return str(user_state_dir(APP, appauthor=False))
