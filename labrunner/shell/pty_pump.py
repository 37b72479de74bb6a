"""One thread owns the reads of a pseudo-terminal; everyone else subscribes.

The lab shell's terminal has several readers: the embedded terminal's
emulator, the parser that finds where commands start and end, the raw
scrollback. If each read the file descriptor itself they would steal bytes
from one another, so one pump thread reads the PTY master and fans every
chunk out, in order, to two kinds of subscriber:

- *listeners* are called on the pump thread with each chunk. They must be
  quick and never block (a regular-expression scan, an append to a buffer):
  the prompt tracker and the scrollback are listeners.
- *queues* (:class:`ByteQueue`) buffer chunks for a consumer that drains
  them from its own thread at its own pace. A queue is bounded: when its
  consumer falls too far behind, the oldest bytes are dropped and counted,
  so a slow consumer (the emulator during a flood) never stalls the pump or
  the others, and learns that it must resynchronise. A queue may start with
  a replay of the recent output, for a screen that attaches late.

Writes go through a second thread with a queue, so a caller on the UI
thread never blocks on a full PTY input buffer (a command that does not
read its input, a large paste) and keystrokes keep their order.

The pump works on a bare file descriptor, so it serves a ``pty.fork`` child,
a ``ptyprocess`` or a ``pexpect.spawn`` (its ``child_fd``) alike; it must be
the only reader of that descriptor. It does not own the descriptor: closing
it, and the child, stays with whoever opened it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import struct
import termios
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Listener = Callable[[bytes], None]

READ_SIZE = 65536
QUEUE_LIMIT = 8 * 1024 * 1024
REPLAY_BYTES = 256 * 1024

PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"

# What a paste may carry: printable text, tab and line breaks. Every other
# control character (ESC above all, which could end a bracketed paste early
# and make the rest run as keystrokes) is dropped.
_PASTE_DROP = {c: None for c in range(32) if c not in (9, 10, 13)} | {127: None}


class ByteQueue:
    """Output of the pump for one consumer, bounded, drained at the consumer's pace."""

    def __init__(self, limit: int = QUEUE_LIMIT) -> None:
        self.limit = max(1, limit)
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._dropped = 0
        self._closed = False
        self._woken = False
        self._cond = threading.Condition()

    def put(self, data: bytes) -> None:
        """Append ``data``; beyond the limit the oldest bytes are dropped and counted."""
        with self._cond:
            self._chunks.append(data)
            self._size += len(data)
            while self._size > self.limit:
                oldest = self._chunks.popleft()
                excess = self._size - self.limit
                if len(oldest) > excess:
                    self._chunks.appendleft(oldest[excess:])
                    self._size -= excess
                    self._dropped += excess
                else:
                    self._size -= len(oldest)
                    self._dropped += len(oldest)
            self._cond.notify_all()

    def close(self) -> None:
        """Mark the end of the stream (the PTY closed or the pump stopped)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a waiting :meth:`get` return now (the consumer has other work)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> bytes:
        """Everything buffered, joined; waits up to ``timeout`` for something.

        Returns ``b""`` when nothing came in time, the stream is closed and
        drained (see :attr:`closed`), or :meth:`wake` was called.
        """
        with self._cond:
            if not self._chunks and not self._closed and not self._woken:
                self._cond.wait_for(
                    lambda: bool(self._chunks) or self._closed or self._woken, timeout
                )
            self._woken = False
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._size = 0
            return data

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet taken."""
        return self._size

    @property
    def dropped(self) -> int:
        """Bytes dropped so far because the consumer fell behind by more than the limit."""
        return self._dropped

    @property
    def closed(self) -> bool:
        """True once no more data will come."""
        return self._closed


def encode_paste(text: str, *, bracketed: bool) -> bytes:
    """``text`` as a terminal sends a paste: line breaks as CR, controls dropped,
    wrapped in bracketed-paste markers when the application asked for them."""
    body = text.replace("\r\n", "\r").replace("\n", "\r").translate(_PASTE_DROP)
    data = body.encode("utf-8", "replace")
    return PASTE_START + data + PASTE_END if bracketed else data


class PtyPump:
    """Reads a PTY master on one thread and fans its bytes out; writes through another."""

    def __init__(
        self,
        fd: int,
        *,
        name: str = "pty",
        read_size: int = READ_SIZE,
        replay_bytes: int = REPLAY_BYTES,
    ) -> None:
        self.fd = fd
        self.name = name
        self.read_size = read_size
        self._listeners: tuple[Listener, ...] = ()
        self._input_listeners: tuple[Listener, ...] = ()
        self._eof_listeners: tuple[Callable[[], None], ...] = ()
        self._queues: tuple[ByteQueue, ...] = ()
        self.replay_bytes = replay_bytes
        self._recent: deque[bytes] = deque()
        self._recent_size = 0
        self._recent_trimmed = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._eof = threading.Event()
        self._stopping = False
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._outbox: deque[bytes | None] = deque()
        self._outbox_cond = threading.Condition()
        self._unwritten = 0
        self.write_error: OSError | None = None
        self.bytes_read = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PtyPump:
        """Start the reader and writer threads (once); returns the pump."""
        if self._reader is None:
            self._reader = threading.Thread(
                target=self._read_loop, name=f"{self.name}-read", daemon=True
            )
            self._writer = threading.Thread(
                target=self._write_loop, name=f"{self.name}-write", daemon=True
            )
            self._reader.start()
            self._writer.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both threads and close every queue; the descriptor stays open."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        with self._outbox_cond:
            self._outbox.append(None)
            self._outbox_cond.notify_all()
        for thread in (self._reader, self._writer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
        self._finish()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> PtyPump:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def eof(self) -> bool:
        """True once the PTY reported end of file (every process on it has gone)."""
        return self._eof.is_set()

    def wait_eof(self, timeout: float | None = None) -> bool:
        """Wait until the PTY closes; True if it did within ``timeout``."""
        return self._eof.wait(timeout)

    # ------------------------------------------------------------------ subscribers

    def add_listener(
        self, listener: Listener, *, on_eof: Callable[[], None] | None = None
    ) -> Callable[[], None]:
        """Call ``listener(chunk)`` on the pump thread for every chunk read; returns a remover.

        Listeners run in the order they were added, so one that records
        output (a scrollback) should be added before one that wakes waiters
        (a tracker). A listener must be quick and must not block. An exception
        it raises is logged and does not stop the pump or the other subscribers.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)
            if on_eof is not None:
                self._eof_listeners = (*self._eof_listeners, on_eof)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)
                if on_eof is not None:
                    self._eof_listeners = tuple(x for x in self._eof_listeners if x is not on_eof)

        return remove

    def subscribe(self, *, limit: int = QUEUE_LIMIT, replay: bool = False) -> ByteQueue:
        """A new queue that receives every chunk read from now on.

        With ``replay`` it starts with the most recent output (up to
        ``replay_bytes`` and one read more, from a line start), so an emulator attached late
        draws the screen and knows the modes the program set before.
        """
        queue = ByteQueue(limit)
        with self._lock:
            if replay and self._recent:
                recent = b"".join(self._recent)
                if self._recent_trimmed:
                    recent = recent[recent.find(b"\n") + 1 :]
                queue.put(recent)
            self._queues = (*self._queues, queue)
        if self._eof.is_set():
            queue.close()
        return queue

    def unsubscribe(self, queue: ByteQueue) -> None:
        """Stop feeding ``queue`` and close it."""
        with self._lock:
            self._queues = tuple(q for q in self._queues if q is not queue)
        queue.close()

    def add_input_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(data)`` with everything sent to the PTY (on the sender's thread)."""
        with self._lock:
            self._input_listeners = (*self._input_listeners, listener)

        def remove() -> None:
            with self._lock:
                self._input_listeners = tuple(x for x in self._input_listeners if x is not listener)

        return remove

    # ------------------------------------------------------------------ writing

    def send(self, data: bytes | str) -> None:
        """Queue ``data`` for the PTY (keys, a typed command); never blocks, keeps order.

        Input listeners hear it: it is what the learner (or a key of the app) typed.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        for listener in self._input_listeners:
            try:
                listener(data)
            except Exception:
                log.exception("input listener of %s failed", self.name)
        self._queue_write(data)

    def answer(self, data: bytes) -> None:
        """Queue the terminal's own answer to a program's query (cursor position, device
        attributes): written like :meth:`send`, but nobody typed it, so listeners are not told."""
        if data:
            self._queue_write(data)

    def _queue_write(self, data: bytes) -> None:
        with self._outbox_cond:
            self._outbox.append(data)
            self._unwritten += len(data)
            self._outbox_cond.notify_all()

    def paste(self, text: str, *, bracketed: bool) -> None:
        """Send ``text`` the way a terminal sends a paste (see :func:`encode_paste`)."""
        self.send(encode_paste(text, bracketed=bracketed))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything sent so far has been written; False on timeout."""
        with self._outbox_cond:
            return self._outbox_cond.wait_for(
                lambda: self._unwritten == 0 or self.write_error is not None, timeout
            )

    def resize(self, rows: int, columns: int) -> None:
        """Set the terminal size; the kernel sends SIGWINCH to the foreground job."""
        rows, columns = max(1, rows), max(1, columns)
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    @property
    def size(self) -> tuple[int, int]:
        """The terminal size as (rows, columns); (0, 0) once the PTY is gone."""
        try:
            packed = fcntl.ioctl(self.fd, termios.TIOCGWINSZ, b"\0" * 8)
        except OSError:
            return (0, 0)
        rows, columns, _, _ = struct.unpack("HHHH", packed)
        return (rows, columns)

    # ------------------------------------------------------------------ probes

    def foreground_pgid(self) -> int | None:
        """The process group in the terminal's foreground (the shell itself at its prompt)."""
        try:
            return os.tcgetpgrp(self.fd)
        except OSError:
            return None

    def line_editing(self) -> bool | None:
        """True when the terminal is in raw, no-echo mode: a line editor such as readline
        (or a full-screen program) is reading keys; None if the PTY is gone."""
        try:
            lflag = termios.tcgetattr(self.fd)[3]
        except (OSError, termios.error):
            return None
        return not lflag & termios.ICANON and not lflag & termios.ECHO

    # ------------------------------------------------------------------ threads

    def _read_loop(self) -> None:
        fd, wake = self.fd, self._wake_r
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        poller.register(wake, select.POLLIN)
        try:
            while not self._stopping:
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                if self._stopping or any(f == wake for f, _ in events):
                    break
                try:
                    data = os.read(fd, self.read_size)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    # EIO: the other side of the PTY has closed (every process
                    # on it exited); EBADF: the owner closed the descriptor.
                    if exc.errno not in (errno.EIO, errno.EBADF):
                        log.warning("reading %s failed: %s", self.name, exc)
                    data = b""
                if not data:
                    self._eof.set()
                    break
                self.bytes_read += len(data)
                self._deliver(data)
        finally:
            self._finish()

    def _deliver(self, data: bytes) -> None:
        for listener in self._listeners:
            try:
                listener(data)
            except Exception:
                log.exception("listener of %s failed", self.name)
        with self._lock:
            # under the lock: a chunk is either in a new queue's replay or sent to it
            queues = self._queues
            if self.replay_bytes > 0:
                self._recent.append(data)
                self._recent_size += len(data)
                while self._recent_size - len(self._recent[0]) >= self.replay_bytes:
                    self._recent_size -= len(self._recent.popleft())
                    self._recent_trimmed = True
        for queue in queues:
            queue.put(data)

    def _finish(self) -> None:
        """Close the queues and tell the end-of-file listeners, once."""
        with self._lock:
            queues, self._queues = self._queues, ()
            eof_listeners, self._eof_listeners = self._eof_listeners, ()
        for queue in queues:
            queue.close()
        for on_eof in eof_listeners:
            try:
                on_eof()
            except Exception:
                log.exception("end-of-file listener of %s failed", self.name)

    def _write_loop(self) -> None:
        while True:
            with self._outbox_cond:
                self._outbox_cond.wait_for(lambda: bool(self._outbox))
                data = self._outbox.popleft()
            if data is None:
                return
            view = memoryview(data)
            try:
                while view:
                    written = os.write(self.fd, view)
                    view = view[written:]
            except OSError as exc:
                self.write_error = exc
            with self._outbox_cond:
                self._unwritten -= len(data)
                if self.write_error is not None:
                    self._outbox.clear()
                    self._unwritten = 0
                self._outbox_cond.notify_all()
