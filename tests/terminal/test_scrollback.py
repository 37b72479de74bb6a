"""The raw scrollback: every output line as text, bounded, searchable, without full screens."""

from __future__ import annotations

import re

import pytest

from labrunner.shell.scrollback import Scrollback


def test_lines_are_split_across_reads_and_stripped_of_escapes() -> None:
    ring = Scrollback()
    for chunk in (b"fir", b"st\r\n\x1b[31msec", b"ond\x1b[0m\r\nthi", "rd é".encode()[:-1]):
        ring.feed(chunk)
    ring.feed("rd é".encode()[-1:])
    assert ring.lines(0, 10) == ["first", "second"]
    assert ring.partial == "third é"


def test_a_progress_bar_keeps_its_last_state_and_backspaces_erase() -> None:
    ring = Scrollback()
    ring.feed(b"10%\r50%\r100% done\r\n")
    ring.feed(b"typo\x08\x08po\r\n")
    ring.feed(b"\x1b]133;A;lr=abcd\x07lab$ ")
    assert ring.tail(2) == ["100% done", "typo"]
    assert ring.partial == "lab$ "


def test_what_a_full_screen_program_draws_is_left_out() -> None:
    ring = Scrollback()
    ring.feed(b"before\r\n\x1b[?1049h\x1b[H\x1b[2Jpage one\r\npage two\r\n\x1b[?10")
    ring.feed(b"49l\r\nafter\r\n")
    assert ring.lines(0, 10) == ["before", "", "after"]


def test_the_ring_is_bounded_by_lines_and_characters_and_keeps_numbering() -> None:
    ring = Scrollback(max_lines=100, max_chars=10_000)
    ring.feed(b"".join(b"%d\n" % i for i in range(1000)))
    assert ring.first == 900 and ring.end == 1000
    assert ring.lines(950, 952) == ["950", "951"]
    assert ring.lines(0, 5) == []
    wide = Scrollback(max_lines=1000, max_chars=1000)
    wide.feed(b"".join(b"x" * 99 + b"\n" for _ in range(50)))
    assert sum(len(line) for line in wide.lines(0, 100)) <= 1000
    assert wide.end == 50


def test_a_huge_line_is_cut_into_pieces() -> None:
    ring = Scrollback()
    ring.feed(b"y" * 200_000)
    assert ring.end == 3
    assert len(ring.partial) == 200_000 - 3 * 64 * 1024


def test_search_finds_literal_text_regular_expressions_and_the_current_line() -> None:
    ring = Scrollback()
    ring.feed(b"Error: one\r\nall fine\r\nerror: two [x]\r\nlab$ echo error")
    hits = ring.search("error")
    assert [(h.line, h.start) for h in hits] == [(0, 0), (2, 0), (3, 10)]
    assert [h.line for h in ring.search("error", case_sensitive=True)] == [2, 3]
    assert ring.search("[x]")[0].text == "error: two [x]"
    assert [h.line for h in ring.search(r"e\w+r: t", regex=True)] == [2]
    assert len(ring.search("e", limit=2)) == 2
    with pytest.raises(re.error):
        ring.search("(", regex=True)


def test_clear_forgets_lines_but_not_their_numbers() -> None:
    ring = Scrollback()
    ring.feed(b"a\nb\n")
    ring.clear()
    ring.feed(b"c\n")
    assert ring.first == 2 and ring.lines(0, 10) == ["c"]
