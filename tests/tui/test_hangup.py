"""The terminal output labrunner gives Textual: a hung-up terminal drops writes, no error.

A real pseudo-terminal is hung up by closing its controller side; writing to
the other side then fails with EIO, as it does when a learner's window closes.
"""

from __future__ import annotations

import errno
import os
import pty
import queue
import threading
import time
from typing import Any

import pytest

from labrunner.tui.hangup import TerminalOutput, driver_class


def hung_up_terminal() -> int:
    controller, terminal = pty.openpty()
    os.close(controller)
    return terminal


def test_writing_to_a_hung_up_terminal_fails_without_the_wrapper() -> None:
    # the control: this is what ended Textual's writer thread
    raw = os.fdopen(hung_up_terminal(), "w")
    with pytest.raises(OSError) as caught:
        raw.write("frame")
        raw.flush()
    assert caught.value.errno == errno.EIO
    with pytest.raises(OSError):  # closing tries to write the frame once more
        raw.close()


def test_the_output_drops_writes_once_the_terminal_is_gone() -> None:
    raw = os.fdopen(hung_up_terminal(), "w")
    output = TerminalOutput(raw)
    assert output.write("frame") == 5
    output.flush()
    assert output.lost
    assert output.write("another frame") == 13
    output.flush()
    with pytest.raises(OSError):  # the wrapped file still holds what it could not write
        raw.close()


def test_other_errors_are_not_taken_for_a_lost_terminal() -> None:
    class Full:
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

    output = TerminalOutput(Full())  # type: ignore[arg-type]
    with pytest.raises(OSError):
        output.write("x")
    assert not output.lost


def test_only_the_linux_terminal_driver_is_replaced() -> None:
    from textual.drivers.headless_driver import HeadlessDriver
    from textual.drivers.linux_driver import LinuxDriver

    assert driver_class(HeadlessDriver) is HeadlessDriver
    safe = driver_class(LinuxDriver)
    assert issubclass(safe, LinuxDriver) and safe is not LinuxDriver


def _writes_then_stops(output: object) -> tuple[Any, threading.Thread]:
    """Textual's own writer thread on ``output``, and a thread that writes 100 frames
    through it (its queue holds 30) and then stops it."""
    from textual.drivers._writer_thread import WriterThread

    writer = WriterThread(output)  # type: ignore[arg-type]
    writer.start()

    def draw() -> None:
        for _ in range(100):
            writer.write("frame")
        writer.stop()

    drawing = threading.Thread(target=draw, daemon=True)
    drawing.start()
    return writer, drawing


def test_textuals_writer_outlives_a_hang_up_through_the_output() -> None:
    raw = os.fdopen(hung_up_terminal(), "w")
    _, drawing = _writes_then_stops(TerminalOutput(raw))
    drawing.join(timeout=20)
    assert not drawing.is_alive(), "the frames after the hang-up blocked the app"
    with pytest.raises(OSError):
        raw.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_textuals_writer_blocks_the_app_on_a_bare_hung_up_terminal() -> None:
    # the control: the writer thread dies at the first frame and the 31st write blocks
    raw = os.fdopen(hung_up_terminal(), "w")
    writer, drawing = _writes_then_stops(raw)
    drawing.join(timeout=2)
    blocked = drawing.is_alive()
    deadline = time.monotonic() + 20
    while drawing.is_alive() and time.monotonic() < deadline:  # let it finish: drain
        try:
            writer._queue.get(timeout=0.05)
        except queue.Empty:
            pass
    with pytest.raises(OSError):
        raw.close()
    assert blocked
