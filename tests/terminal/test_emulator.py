"""The emulator: pyte plus the alternate screen, colours, filters and flood skipping."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.color import Color
from rich.style import Style

from labrunner.shell.pty_pump import ByteQueue
from labrunner.tui.terminal.emulator import Emulator, EscapeFilter, Frame, fix_sgr, plan_skip
from labrunner.tui.terminal.screen import to_color

from .helpers import DEADLINE, live_shell


def styles(frame: Frame, y: int) -> dict[str, Style | None]:
    """Text of each segment of row ``y`` and its style."""
    return {s.text.strip(): s.style for s in frame.lines[y] if s.text.strip()}


def test_the_alternate_screen_restores_the_shell_screen_and_cursor() -> None:
    for enter, leave in ((b"\x1b[?1049h", b"\x1b[?1049l"), (b"\x1b[?1047h", b"\x1b[?1047l")):
        emulator = Emulator(rows=5, columns=20)
        emulator.feed(b"one\r\ntwo\r\nlab$ ")
        before = emulator.frame
        frame = emulator.feed(enter + b"\x1b[H\x1b[2JPAGE\x1b[5;1Hbottom")
        assert frame.alternate and frame.text()[0] == "PAGE" and "one" not in frame.text()
        frame = emulator.feed(leave)
        assert not frame.alternate
        assert frame.text() == before.text() and frame.cursor == before.cursor == (5, 2)
    emulator = Emulator(rows=3, columns=10)
    emulator.feed(b"keep\x1b[?47hALT")
    assert emulator.feed(b"\x1b[?47l").text()[0] == "keep"


def test_colours_and_attributes_become_rich_styles() -> None:
    emulator = Emulator(rows=3, columns=60)
    frame = emulator.feed(
        b"\x1b[31mred\x1b[0m \x1b[93;44mhi\x1b[0m \x1b[38;5;1mpal\x1b[0m "
        b"\x1b[38;5;208mor\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[0m "
        b"\x1b[1;3;4;7mbiur\x1b[0m \x1b[33myel\x1b[0m \x1b[105mbg"
    )
    got = styles(frame, 0)
    assert got["red"] == Style(color="red")
    assert got["hi"] == Style(color="bright_yellow", bgcolor="blue")
    assert got["pal"] == Style(color="red")  # palette 0-15 follow the theme's ANSI colours
    assert got["or"] == Style(color="#ff8700")
    assert got["rgb"] == Style(color="#010203")
    assert got["biur"] == Style(bold=True, italic=True, underline=True, reverse=True)
    assert got["yel"] == Style(color="yellow")  # pyte calls it brown
    assert got["bg"] == Style(bgcolor="bright_magenta")  # pyte spells it bfightmagenta
    assert to_color("default") is None and to_color("nonsense") is None
    assert to_color("FF0000") == Color.parse("#ff0000")


def test_wide_characters_take_two_cells() -> None:
    emulator = Emulator(rows=2, columns=10)
    frame = emulator.feed("漢字ab".encode())
    assert frame.line_text(0) == "漢字ab    "
    assert frame.cursor == (6, 0)


def test_the_cursor_and_the_modes_a_key_encoder_needs_are_tracked() -> None:
    emulator = Emulator(rows=2, columns=10)
    frame = emulator.feed(b"\x1b[?25l\x1b[?1h\x1b[?2004h")
    assert frame.cursor is None and frame.app_cursor and frame.bracketed_paste
    frame = emulator.feed(b"\x1b[?25h\x1b[?1l\x1b[?2004l")
    assert frame.cursor == (0, 0) and not frame.app_cursor and not frame.bracketed_paste


def test_what_pyte_would_misread_is_filtered_out() -> None:
    emulator = Emulator(rows=2, columns=40)
    frame = emulator.feed(
        b"\x1b]133;A;lr=abcd\x07a\x1bP$q q\x1b\\b\x1b[>4;2mc\x1b[>cd\x1b[2 qe"
        b"\x1b[38:2::255:0:0mf\x1b[4:3mg\x1b[?2004$ph\x1b[=5ui\x1b[?4mj\x1b[?6nk"
    )
    assert frame.text()[0] == "abcdefghijk"
    assert emulator.stats.errors == 0
    got = styles(frame, 0)
    assert got["abcde"] == Style()
    assert got["f"] == Style(color="#ff0000")
    assert got["ghijk"] == Style(color="#ff0000", underline=True)


def test_a_mark_split_between_reads_is_still_removed() -> None:
    stream = b"x\x1b]133;D;0;lr=abcd\x07y\x1b]0;title\x07z"
    for cut in range(1, len(stream)):
        filt = EscapeFilter()
        assert filt.feed(stream[:cut]) + filt.feed(stream[cut:]) == b"xy\x1b]0;title\x07z"


def test_sgr_sub_parameters_are_flattened() -> None:
    assert fix_sgr(b"38:5:208") == b"38;5;208"
    assert fix_sgr(b"1;48:2:1:2:3") == b"1;48;2;1;2;3"
    assert fix_sgr(b"4:0") == b"24"
    assert fix_sgr(b"58:2::1:2:3") == b"0"
    assert fix_sgr(b"1;58;5;9;3") == b"1;3"
    assert fix_sgr(b"58;2;1;2;3;4") == b"4"
    assert fix_sgr(b"1;38;5;9;48;5;4") == b"1;91;44"
    assert fix_sgr(b"38;5;200;48;2;1;2;3") == b"38;5;200;48;2;1;2;3"


def test_queries_are_answered_to_the_program() -> None:
    answers: list[bytes] = []
    emulator = Emulator(rows=5, columns=20, respond=answers.append)
    emulator.feed(b"ab\r\ncd\x1b[6n\x1b[c")
    assert answers == [b"\x1b[2;3R", b"\x1b[?6c"]


def test_shrinking_keeps_the_cursor_line_and_growing_extends_tab_stops() -> None:
    emulator = Emulator(rows=10, columns=20)
    emulator.feed(b"top\r\nmiddle\r\nlab$ ")
    emulator.resize(3, 20)
    assert emulator.frame.text() == ["top", "middle", "lab$"]
    emulator.resize(10, 20)
    emulator.feed(b"\r\n\r\n\r\n\r\nlow\r\nlab$ ")
    emulator.resize(3, 20)
    assert emulator.frame.text() == ["", "low", "lab$"]
    assert emulator.frame.cursor == (5, 2)
    emulator.resize(3, 40)
    assert emulator.feed(b"\r" + b"\t" * 4 + b"X").line_text(2).index("X") == 32


def test_resizing_on_the_alternate_screen_fits_the_saved_screen_too() -> None:
    emulator = Emulator(rows=6, columns=20)
    emulator.feed(b"a\r\nb\r\nc\r\nd\r\nlab$ \x1b[?1049hALT")
    emulator.resize(3, 10)
    frame = emulator.feed(b"\x1b[?1049l")
    assert frame.text() == ["c", "d", "lab$"]


def seq_stream(count: int) -> bytes:
    """What ``seq`` prints through a terminal, followed by a prompt."""
    return b"".join(b"%d\r\n" % i for i in range(1, count + 1)) + b"lab$ "


def test_a_flood_skips_to_the_last_screen_and_draws_it_exactly() -> None:
    data = seq_stream(50_000)
    skipping, full = Emulator(rows=24, columns=80), Emulator(rows=24, columns=80)
    frame = skipping.feed(data)
    for start in range(0, len(data), 4096):
        full.feed(data[start : start + 4096], skip=False)
    assert frame.text() == full.frame.text()
    assert frame.text()[-2:] == ["50000", "lab$"]
    assert skipping.stats.skipped > 0.99 * len(data)
    assert full.stats.skipped == 0


def test_a_skip_replays_the_modes_and_colours_set_in_what_it_skipped() -> None:
    data = (
        b"\x1b[?1h\x1b[?2004h\x1b[?25l\x1b[1;32m"
        + seq_stream(2000)
        + b"\x1b[?2004l"
        + b"".join(b"tail %d\r\n" % i for i in range(100))
    )
    emulator = Emulator(rows=10, columns=30)
    frame = emulator.feed(data)
    assert emulator.stats.skips == 1
    assert frame.app_cursor and not frame.bracketed_paste and frame.cursor is None
    assert styles(frame, 0)["tail 91"] == Style(color="green", bold=True)


def test_a_full_screen_redraw_is_skipped_to_its_last_clear() -> None:
    pages = b"".join(
        b"\x1b[H\x1b[2J" + b"".join(b"\x1b[%d;1Hpage %d row %d" % (r + 1, p, r) for r in range(8))
        for p in range(200)
    )
    emulator = Emulator(rows=8, columns=30)
    frame = emulator.feed(b"\n" * 20 + pages)
    assert frame.text()[0] == "page 199 row 0" and frame.text()[7] == "page 199 row 7"
    assert emulator.stats.skips == 1


def test_output_that_moves_up_is_never_skipped_without_a_clear() -> None:
    redraw = b"".join(b"line %d\r\n" % i for i in range(100)) + b"\x1b[3Aover\r\n"
    assert plan_skip(redraw, 10) is None
    plan = plan_skip(redraw, 10, force=True)
    assert plan is not None and plan.cut > 0


SAFE_PIECES = st.sampled_from(
    [
        *(b"word ", b"\r\n", b"\r", b"\x1b[31m", b"\x1b[0m", b"\x1b[K", b"\x1b[1m", b"\t"),
        *(b"\x1b[5G", "é漢".encode(), b"x" * 45),
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(SAFE_PIECES, min_size=0, max_size=400))
def test_skipping_draws_what_feeding_everything_draws(pieces: list[bytes]) -> None:
    data = b"".join(pieces) + b"".join(b"%d\r\n" % i for i in range(30))
    skipping, full = Emulator(rows=6, columns=20), Emulator(rows=6, columns=20)
    skipping.feed(data)
    full.feed(data, skip=False)
    assert skipping.frame.lines == full.frame.lines
    assert skipping.frame.cursor == full.frame.cursor


def test_the_emulator_thread_drains_a_queue_and_resizes_between_slices() -> None:
    queue = ByteQueue()
    frames: list[int] = []
    emulator = Emulator(rows=5, columns=20, on_frame=lambda f: frames.append(f.serial))
    emulator.start(queue)
    try:
        queue.put(b"hello\r\nthere")
        assert emulator.wait_for(lambda f: f.contains("there"), DEADLINE)
        emulator.resize(8, 30)
        assert emulator.wait_for(lambda f: (f.rows, f.columns) == (8, 30), DEADLINE)
        assert emulator.frame.text()[:2] == ["hello", "there"]
        assert frames == sorted(frames)
    finally:
        emulator.stop()


def test_lost_bytes_make_the_emulator_resynchronise_on_the_newest_screen() -> None:
    queue = ByteQueue(limit=4096)
    queue.put(b"\x1b[31m" + seq_stream(10_000))  # the queue keeps only the newest 4 KiB
    emulator = Emulator(rows=5, columns=20)
    emulator.start(queue)
    try:
        assert emulator.wait_for(lambda f: f.text()[-2:] == ["10000", "lab$"], DEADLINE)
        assert emulator.stats.resyncs == 1
    finally:
        emulator.stop()


def test_two_hundred_thousand_lines_of_a_real_shell_end_on_the_right_screen(
    tmp_path: Path,
) -> None:
    with live_shell(tmp_path) as shell:
        emulator = Emulator(rows=24, columns=80, respond=shell.pump.answer)
        queue = shell.pump.subscribe()
        emulator.start(queue)
        try:
            assert shell.run("seq 200000", timeout=120) == 0
            assert emulator.wait_for(
                lambda f: f.text()[-3:] == ["199999", "200000", "lab$"], DEADLINE
            )
            # nearly everything was skipped; the scrollback still has the end of it all
            assert emulator.stats.skipped > 0.9 * emulator.stats.received
            assert shell.scrollback.tail(1) == ["200000"]
            assert shell.scrollback.end >= 200_000
        finally:
            emulator.stop()
            shell.pump.unsubscribe(queue)
