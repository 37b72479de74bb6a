"""The embedded terminal: an emulator fed off the UI thread, a key encoder and the widget.

- :mod:`.screen`: pyte's screen with the alternate screen, query answers, Rich styles;
- :mod:`.emulator`: the filter, the flood skipping and the emulator thread
  that publishes immutable frames;
- :mod:`.keys`: Textual key events as the bytes a terminal sends;
- :mod:`.widget`: :class:`TerminalView`, the focusable pane.

The parts that do not need Textual (the PTY pump, the shell-integration
marks, the raw scrollback) live in :mod:`labrunner.shell`.
"""

from labrunner.tui.terminal.emulator import Emulator, Frame
from labrunner.tui.terminal.keys import encode_key
from labrunner.tui.terminal.widget import TerminalView

__all__ = ["Emulator", "Frame", "TerminalView", "encode_key"]
