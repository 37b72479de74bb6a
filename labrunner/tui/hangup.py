"""The terminal Textual draws on, made safe to lose.

When the learner's terminal goes away (the window is closed, ssh drops, tmux
is killed), the kernel hangs it up: every write to it fails with EIO. Textual
writes from a background thread through a queue of 30 writes; the first
failed write ends that thread, the queue fills with the frames the app goes on
drawing, and the app's own shutdown (the SIGHUP handler asks for it) then
blocks for ever on the full queue. About one closed terminal in four, measured
on the home screen, left labrunner running with its lab shell and services.

:func:`driver_class` gives Textual's Linux driver an output that drops what it
is given once the terminal is gone, so the writer thread lives on, the exit
runs, and the lab shell and services are stopped as after ``q``.
"""

from __future__ import annotations

import errno
from typing import IO, Any

LOST = (errno.EIO, errno.ENXIO, errno.EPIPE, errno.EBADF)
"""What writing to a terminal that was hung up (or closed) fails with."""


class TerminalOutput:
    """A file that writes through to the terminal until the terminal is lost, then drops."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.lost = False

    def write(self, text: str) -> int:
        """Write ``text`` to the terminal, or drop it once the terminal is gone."""
        if not self.lost:
            try:
                return self._file.write(text)
            except (OSError, ValueError) as exc:
                self._lose(exc)
        return len(text)

    def flush(self) -> None:
        """Flush the terminal (nothing once it is gone)."""
        if not self.lost:
            try:
                self._file.flush()
            except (OSError, ValueError) as exc:
                self._lose(exc)

    def _lose(self, exc: Exception) -> None:
        if isinstance(exc, OSError) and exc.errno not in LOST:
            raise exc
        self.lost = True

    def fileno(self) -> int:
        """The terminal's descriptor (Textual sets its modes through it)."""
        return self._file.fileno()

    def isatty(self) -> bool:
        """Whether the output is a terminal."""
        return self._file.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def driver_class(chosen: type[Any]) -> type[Any]:
    """``chosen`` (the driver Textual picked), made to survive a hang-up when it is the
    Linux terminal driver; any other driver (the browser's, a test's) as it is."""
    from textual.drivers.linux_driver import LinuxDriver

    if chosen is not LinuxDriver:
        return chosen

    class HangupSafeDriver(LinuxDriver):
        """Textual's Linux driver, writing through a :class:`TerminalOutput`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self._file is not None:
                self._file = TerminalOutput(self._file)  # type: ignore[assignment]

    return HangupSafeDriver
