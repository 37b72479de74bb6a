"""The lab screen's terminal: the lab's own shell, typed into beside the instructions.

The pane shows the PTY of the lab's one persistent bash (a
:class:`~labrunner.shell.pane.PaneShell`), the same shell the engine runs the
step's commands in and whose saved state the checks read: what the learner
types here (``export``, ``cd``, functions) is what the next check sees.

Above the screen, one status row says what the shell's marks tell: ready at
a prompt, a command running, the last command's ✔/✘ with its exit status
(typed or run by a key alike), and, when the marks stop (``exec bash``, a
replaced PROMPT_COMMAND), that labrunner lost track of the shell and how to
restart it. The focus key (shown in the footer) moves the keyboard here; the
escape key (Ctrl+] by default) gives it back to the lab, whose single-letter
keys work only then.

The pane takes room only while it is in use. Idle, it is a few rows high (the
prompt and the last lines printed) so the step's instructions, commands and
checks fit beside it; it opens (class ``-open``, sized in the stylesheet) while
it has the keyboard, while a command runs in it (typed or run by a key), and
while its scrollback is shown. The shell's PTY keeps its open height when the
pane shrinks, so nothing is redrawn or lost.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from labrunner.shell.integration import Integration, Phase
from labrunner.shell.pane import PaneShell
from labrunner.tui.terminal import TerminalView

SYMBOLS = {
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "backslash": "\\",
    "circumflex_accent": "^",
    "underscore": "_",
}
WIDE_STATUS = 60
"""A status row at least this wide also says how to search the terminal."""
POLL_INTERVAL = 0.25
"""Seconds between looks at the marks' state (cheap: a few attributes, one /proc read)."""


def key_label(key: str) -> str:
    """A key as a learner reads it (``ctrl+right_square_bracket`` → ``ctrl+]``, ``T`` →
    ``Shift+T``)."""
    if len(key) == 1 and key.isupper():
        return f"Shift+{key}"
    for name, symbol in SYMBOLS.items():
        key = key.replace(name, symbol)
    return key


class TerminalPane(Vertical):
    """The terminal pane: a status row and the lab shell's screen."""

    DEFAULT_CSS = """
    TerminalPane {
        height: 5;
    }
    TerminalPane.-open {
        height: 1fr;
        min-height: 6;
    }
    TerminalPane > #terminal-status {
        height: 1;
        padding: 0 1;
        background: $boost;
        color: $text-muted;
    }
    TerminalPane > #terminal-status.-focused {
        color: $text-accent;
        text-style: bold;
    }
    TerminalPane > #terminal-status.-lost {
        background: $error 30%;
        color: $text;
    }
    TerminalPane > TerminalView {
        height: 1fr;
        background: $surface;
    }
    """

    class Lost(Message):
        """The shell's marks stopped following it (``exec bash``); offer a restart."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(
        self,
        *,
        focus_key: str,
        escape_key: str,
        restart_key: str,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.focus_key = focus_key
        self.escape_key = escape_key
        self.restart_key = restart_key
        self.shell: PaneShell | None = None
        self._generation = 0
        self._timer: Timer | None = None
        self.integration = Integration.PENDING
        self.reason = ""
        self._lost_told = False
        self.busy = False
        """Set by the screen while a job (a key's run, a check) works in the shell."""

    def compose(self) -> ComposeResult:
        yield Static("Terminal  ·  starting the lab shell…", id="terminal-status", markup=False)

    @property
    def view(self) -> TerminalView | None:
        """The terminal screen, once the shell is attached."""
        found = self.query(TerminalView)
        return found.first() if found else None

    @property
    def focused(self) -> bool:
        """True while the keyboard goes to the shell."""
        view = self.view
        return view is not None and view.has_focus

    def attach(self, shell: PaneShell) -> None:
        """Show ``shell``'s terminal (again, after a restart)."""
        self.shell = shell
        self._generation = shell.generation
        self.integration = Integration.PENDING
        self._lost_told = False
        had_focus = self.focused
        old = self.view
        if old is not None:
            old.remove()
        pump = shell.pump
        if pump is None:
            self.show_message("the lab shell is not running")
            return
        view = TerminalView(pump, scrollback=shell.scrollback, escape_key=self.escape_key)
        self.mount(view)
        if had_focus:
            view.focus()
        if self._timer is None:
            self._timer = self.set_interval(POLL_INTERVAL, self._poll)
        self._poll()

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Put ``text`` on the status row (the shell could not start, say)."""
        status = self.query_one("#terminal-status", Static)
        status.set_class(error, "-lost")
        status.update(text)

    def focus_terminal(self) -> bool:
        """Give the keyboard to the shell; False when there is no shell yet or it ended."""
        view = self.view
        if view is None or (self.shell is not None and self.shell.ended):
            return False
        view.focus()
        self._poll()
        return True

    def on_descendant_focus(self) -> None:
        self._poll()

    def on_descendant_blur(self) -> None:
        self._poll()

    def on_resize(self) -> None:
        self._poll()  # the status row says more when it is wider

    def set_busy(self, busy: bool) -> None:
        """A job started or ended in the shell: open the pane while it runs."""
        self.busy = busy
        self._fit()

    @property
    def in_use(self) -> bool:
        """True while the pane should be open: focused, running, or showing scrollback."""
        view = self.view
        if view is None:
            return False
        shell = self.shell
        running = shell is not None and shell.busy
        return view.has_focus or self.busy or running or view.scrolled_back > 0

    def _fit(self) -> None:
        """Open the pane while it is in use, shrink it to its last rows when not."""
        view = self.view
        opening = self.in_use
        if opening == self.has_class("-open"):
            return
        if view is None:
            self.set_class(opening, "-open")
            return
        if opening:
            self.add_class("-open")

            def release() -> None:
                if self.has_class("-open"):
                    view.hold_rows = False  # the PTY takes the opened size

            self.call_after_refresh(release)
        else:
            view.hold_rows = True  # shrink the pane, not the PTY
            self.remove_class("-open")

    def _poll(self) -> None:
        self._fit()
        shell = self.shell
        if shell is None:
            return
        if shell.generation != self._generation and shell.pump is not None:
            self.attach(shell)
            return
        tracker, pump, pid = shell.tracker, shell.pump, shell.pid
        if tracker is None or pump is None or pid is None:
            self.show_message("Terminal  ·  the lab shell has stopped", error=True)
            return
        if shell.ended:
            self.show_message(
                f"Terminal  ·  the lab shell ended (exit). Press {self.focus_key} to start it "
                "again; your exports and directory come back.",
                error=True,
            )
            view = self.view
            if view is not None and view.has_focus:  # the lab's keys work again, now
                view.action_release()
            return
        report = tracker.check(pump, shell_pid=pid)
        self.integration, self.reason = report.state, report.reason
        if report.state is Integration.LOST:
            text = (
                f"⚠ {report.reason}. Press {key_label(self.restart_key)} (outside the terminal) "
                "to restart the lab shell; your exports and directory come back."
            )
            self.show_message(text, error=True)
            if not self._lost_told:
                self._lost_told = True
                self.post_message(self.Lost(report.reason))
            return
        parts = ["Terminal"]
        if report.state is Integration.NESTED:
            parts.append(f"ⓘ {report.reason}")
        elif tracker.phase is Phase.RUNNING:
            parts.append("● running")
        else:
            end = tracker.last_command
            if end is not None and end.status is not None:
                mark = "✔" if end.status == 0 else "✘"
                parts.append(f"{mark} exit {end.status}")
            else:
                parts.append("ready")
        focused = self.focused
        if focused:
            parts.append(f"{key_label(self.escape_key)}: back to the lab")
        else:
            parts.append(f"{self.focus_key}: type here")
            if self.size.width >= WIDE_STATUS:
                parts.append("/: search")
        self.show_message("  ·  ".join(parts))
        self.query_one("#terminal-status").set_class(focused, "-focused")
