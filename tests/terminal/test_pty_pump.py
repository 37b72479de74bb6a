"""The PTY pump: one reader, every subscriber gets every byte, writes never block the caller."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from labrunner.ansi import strip_ansi
from labrunner.shell.pty_pump import ByteQueue, encode_paste
from labrunner.testing.waiting import wait_for

from .helpers import DEADLINE, live_shell

NUMBERS = re.compile(r"^\r?(\d+)\r$", re.MULTILINE)


def numbers(data: bytes) -> list[int]:
    """The lines of ``data`` that are just a number."""
    return [int(n) for n in NUMBERS.findall(strip_ansi(data.decode()))]


def test_every_subscriber_gets_the_whole_stream_in_order(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        heard: list[bytes] = []
        shell.pump.add_listener(heard.append)
        first, second = shell.pump.subscribe(), shell.pump.subscribe()
        assert shell.run("seq 1 5000") == 0
        listener = b"".join(heard)
        queued = [first.get(0), second.get(0)]
        for data in (listener, *queued):
            assert numbers(data) == list(range(1, 5001))
        assert queued[0] == queued[1] == listener


def test_a_stalled_queue_drops_its_oldest_bytes_and_stalls_nobody(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        heard: list[bytes] = []
        shell.pump.add_listener(heard.append)
        stalled = shell.pump.subscribe(limit=1024)
        assert shell.run("seq 1 100000", timeout=60) == 0
        assert shell.scrollback.tail(3)[-1] == "100000"
        assert numbers(b"".join(heard)) == list(range(1, 100_001))
        assert stalled.pending <= 1024
        assert stalled.dropped > 500_000
        kept = stalled.get(0)
        assert len(kept) == 1024
        # the newest bytes (the prompt may still be arriving after them)
        assert kept in b"".join(heard)[-(1024 + 4096) :]


def test_many_small_writes_arrive_whole_and_in_order(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        target = tmp_path / "typed.txt"
        shell.pump.send(f"cat > {target}\r")
        assert wait_for(lambda: shell.pump.foreground_pgid() != shell.pid, DEADLINE)
        lines = [f"line {i:04d} of the burst" for i in range(300)]
        for char in "".join(line + "\n" for line in lines):
            shell.pump.send(char)
        shell.pump.send(b"\x04")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=0)
        assert target.read_text().splitlines() == lines


def test_send_returns_while_the_program_does_not_read(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        shell.pump.send("sleep 30\r")
        assert wait_for(lambda: shell.pump.foreground_pgid() != shell.pid, DEADLINE)
        done = threading.Event()

        def flood() -> None:
            shell.pump.send((b"x" * 99 + b"\n") * 3000)
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        assert done.wait(DEADLINE), "send blocked the caller"
        # the terminal's input buffer is full: the writer thread waits, not the caller
        assert not shell.pump.flush(0.2)


def test_resize_sets_the_size_and_signals_the_foreground_job(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.pump.size == (24, 80)
        shell.pump.resize(30, 100)
        assert shell.pump.size == (30, 100)
        assert shell.run("stty size") == 0
        assert "30 100" in shell.scrollback.tail(3)
        shell.pump.send(
            'bash -c \'trap "echo GOT-WINCH; exit 0" WINCH; '
            "echo READY; while :; do sleep 0.05; done'\r"
        )
        assert wait_for(lambda: "READY" in shell.scrollback.tail(2), DEADLINE)
        shell.pump.resize(20, 70)
        assert wait_for(lambda: "GOT-WINCH" in shell.scrollback.tail(3), DEADLINE)


def test_end_of_file_closes_the_queues_and_tells_the_listeners(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        ended = threading.Event()
        shell.pump.add_listener(lambda data: None, on_eof=ended.set)
        queue = shell.pump.subscribe()
        shell.pump.send("exit\r")
        assert shell.pump.wait_eof(DEADLINE)
        assert ended.wait(DEADLINE)
        assert queue.closed
        assert b"exit" in queue.get(0)
        assert shell.pump.subscribe().closed


def test_probes_tell_who_has_the_terminal_and_how_it_reads(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.pump.foreground_pgid() == shell.pid
        # readline turns raw mode on just after PROMPT_COMMAND printed the mark
        assert wait_for(lambda: shell.pump.line_editing() is True, DEADLINE)
        shell.pump.send("cat\r")
        assert wait_for(lambda: shell.pump.foreground_pgid() != shell.pid, DEADLINE)
        assert wait_for(lambda: shell.pump.line_editing() is False, DEADLINE)
        shell.pump.send(b"\x04")
        assert shell.tracker.wait_for_prompt(DEADLINE, after=0)
        assert wait_for(lambda: shell.pump.foreground_pgid() == shell.pid, DEADLINE)


def test_a_listener_that_fails_does_not_stop_the_others(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:

        def broken(data: bytes) -> None:
            raise ValueError("broken listener")

        shell.pump.add_listener(broken)
        assert shell.run("echo still-flowing") == 0
        assert "still-flowing" in shell.scrollback.tail(2)


def test_a_queue_wakes_up_and_bounds_itself() -> None:
    queue = ByteQueue(limit=10)
    woke = threading.Event()

    def waiter() -> None:
        queue.get(timeout=DEADLINE)
        woke.set()

    threading.Thread(target=waiter, daemon=True).start()
    queue.wake()
    assert woke.wait(DEADLINE)
    queue.put(b"0123456789")
    queue.put(b"abcdef")
    assert queue.pending == 10
    assert queue.dropped == 6
    assert queue.get(0) == b"6789abcdef"
    assert queue.get(0) == b""


def test_a_paste_is_bracketed_only_when_asked_and_cannot_break_out() -> None:
    assert encode_paste("ls\nls -l\n", bracketed=False) == b"ls\rls -l\r"
    assert encode_paste("a\r\nb", bracketed=True) == b"\x1b[200~a\rb\x1b[201~"
    escaped = encode_paste("echo hi\x1b[201~; rm -rf x\x07", bracketed=True)
    assert escaped == b"\x1b[200~echo hi[201~; rm -rf x\x1b[201~"
    assert encode_paste("tab\there é", bracketed=False) == "tab\there é".encode()


def test_a_late_subscriber_can_start_from_the_recent_output(tmp_path: Path) -> None:
    with live_shell(tmp_path) as shell:
        assert shell.run("echo early-line") == 0
        late = shell.pump.subscribe(replay=True)
        fresh = shell.pump.subscribe()
        assert shell.run("echo later-line") == 0
        replayed, new = late.get(0), fresh.get(0)
        assert b"early-line" in replayed and b"early-line" not in new
        assert replayed.endswith(new) and replayed.count(b"later-line") == 2  # typed + output
        assert shell.run("seq 1 60000") == 0
        bounded = shell.pump.subscribe(replay=True).get(0)
        assert len(bounded) <= shell.pump.replay_bytes + shell.pump.read_size
        assert numbers(bounded)[-1] == 60000
        assert numbers(bounded) == list(range(numbers(bounded)[0], 60001))
