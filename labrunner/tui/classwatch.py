"""The instructor's view of a class (``labrunner class watch``): who is where, who is stuck.

One row per learner: their current lab and step, the time on it, failures
and hints there, how many labs they completed, and one column per lab the
class has reached (``✔`` done, ``3/8`` part way, ``▶`` the lab they are in).
A learner on one step longer than the threshold, or with repeated failures
there, is flagged; the panel below the table shows the selected learner's
last failing message and recent steps.

Changes arrive from a Kubernetes watch on the class's progress objects (the
informer runs in its own thread and only posts messages), never from
polling the API. Bursts are coalesced: the table is brought up to date
every ``FLUSH_INTERVAL`` seconds for the learners that changed, so a class
of a hundred learners publishing every second costs little; the clock
columns (time on step, the stuck flag) tick once a second from the local
clock, with no request at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.widgets import Footer, Static

from labrunner.classroom.admin import Progress
from labrunner.classroom.document import LearnerView, StuckRules, clock_offset, view
from labrunner.cluster.errors import ClusterError
from labrunner.durations import format_duration
from labrunner.tui.commands import Action, bindings
from labrunner.tui.widgets.learner_table import Cell, LearnerTable

FLUSH_INTERVAL = 0.2
TICK_INTERVAL = 1.0
FIXED_COLUMNS = (
    ("learner", "Learner", 20),
    ("flag", "Flag", 7),
    ("lab", "Lab", 20),
    ("step", "Step", 32),
    ("on", "On step", 11),
    ("fails", "Fails", 5),
    ("hints", "Hints", 5),
    ("done", "Labs done", 9),
)
LAB_COLUMN = 8
RECENT_SHOWN = 8


class Follower(Protocol):
    """What ``follow`` returns: something to start and stop (an Informer)."""

    def start(self) -> Any:
        """Begin following in the background."""
        ...

    def stop(self, timeout: float = ...) -> None:
        """Stop following."""
        ...


class Synced(Message):
    """Every learner's progress (at start, and after a reconnect)."""

    def __init__(self, items: list[Progress], received: float) -> None:
        super().__init__()
        self.items = items
        self.received = received


class Changed(Message):
    """One learner's progress changed (``progress`` None: the object was deleted)."""

    def __init__(self, progress: Progress | None, learner: str, received: float) -> None:
        super().__init__()
        self.progress = progress
        self.learner = learner
        self.received = received


class WatchFailed(Message):
    """The watch lost the class API (it retries by itself)."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem


@dataclass
class _Entry:
    """One learner as the dashboard last read them."""

    progress: Progress
    offset: float
    learner: LearnerView


class ClassWatchApp(App[None]):
    """learners × labs, live."""

    CSS_PATH = "labrunner.tcss"
    TITLE = "labrunner class"
    ACTIONS: ClassVar[tuple[Action, ...]] = (
        Action("s", "toggle_sort", "Stuck first", "Sort stuck learners to the top, or by name"),
        Action("q", "quit", "Quit", "Leave the class view (the class goes on)"),
    )
    BINDINGS: ClassVar[list[BindingType]] = bindings(ACTIONS)

    def __init__(
        self,
        *,
        class_name: str,
        where: str,
        follow: Callable[..., Follower],
        rules: StuckRules,
        clock: Callable[[], float] = time.time,
        on_shown: Callable[[str, int, float], None] | None = None,
    ) -> None:
        super().__init__()
        self.class_name = class_name
        self.where = where
        self.rules = rules
        self.clock = clock
        self._follow = follow
        self._follower: Follower | None = None
        self.entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self.stuck_first = False
        self.selected: str | None = None
        self.problem = ""
        self.shown: dict[str, tuple[int, float]] = {}
        """learner → (the document's seq, clock time) of what the table shows."""
        self.on_shown = on_shown
        """Told (learner, seq, clock time) each time a row is brought up to date (benchmarks)."""

    def compose(self) -> ComposeResult:
        yield Static(f"class {self.class_name} · {self.where}", id="class-title", markup=False)
        yield Static("connecting…", id="class-summary", markup=False)
        yield LearnerTable(id="class-table")
        yield Static("", id="class-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(LearnerTable)
        for key, label, width in FIXED_COLUMNS:
            table.add_column(key, label, width)
        table.focus()
        self._follower = self._follow(
            on_sync=self._thread_sync, on_change=self._thread_change, on_error=self._thread_error
        )
        self._follower.start()
        self.set_interval(FLUSH_INTERVAL, self._apply_changes)
        self.set_interval(TICK_INTERVAL, self._tick)

    def on_unmount(self) -> None:
        if self._follower is not None:
            self._follower.stop(timeout=2.0)

    # ------------------------------------------------------------------ from the watch thread

    def _thread_sync(self, items: list[Progress]) -> None:
        self.post_message(Synced(items, self.clock()))

    def _thread_change(self, progress: Progress | None, learner: str) -> None:
        self.post_message(Changed(progress, learner, self.clock()))

    def _thread_error(self, exc: ClusterError) -> None:
        self.post_message(WatchFailed(str(exc)))

    # ------------------------------------------------------------------ messages

    def _store(self, progress: Progress, received: float, *, live: bool) -> None:
        old = self.entries.get(progress.learner)
        offset = clock_offset(progress.doc, received) if live else (old.offset if old else 0.0)
        learner = view(progress.doc, offset=offset, revoked=progress.revoked)
        self.entries[progress.learner] = _Entry(progress, offset, learner)
        self._dirty.add(progress.learner)
        self._removed.discard(progress.learner)

    def on_synced(self, message: Synced) -> None:
        self.problem = ""
        seen = set()
        for progress in message.items:
            seen.add(progress.learner)
            self._store(progress, message.received, live=False)
        for gone in set(self.entries) - seen:
            del self.entries[gone]
            self._removed.add(gone)

    def on_changed(self, message: Changed) -> None:
        self.problem = ""
        if message.progress is None:
            self.entries.pop(message.learner, None)
            self._removed.add(message.learner)
            return
        self._store(message.progress, message.received, live=True)

    def on_watch_failed(self, message: WatchFailed) -> None:
        self.problem = message.problem
        self._summary()

    # ------------------------------------------------------------------ drawing

    def _ensure_labs(self, table: LearnerTable, learner: LearnerView) -> None:
        for lab in learner.labs:
            if not table.has_column(f"lab:{lab.lab}"):
                table.add_column(f"lab:{lab.lab}", lab.lab, max(LAB_COLUMN, min(len(lab.lab), 16)))

    def _cells(self, learner: LearnerView, now: float) -> dict[str, Cell]:
        """Every cell of a learner's row."""
        cells: dict[str, Cell] = {"learner": learner.name, **self._clock_cells(learner, now)}
        if learner.started:
            number = f"{learner.step_index + 1}. " if learner.step_index is not None else ""
            cells["lab"] = learner.lab
            cells["step"] = f"{number}{learner.step_title}"
        cells["fails"] = str(learner.fails) if learner.fails else ""
        cells["hints"] = str(learner.hints) if learner.hints else ""
        cells["done"] = str(learner.labs_done)
        for lab in learner.labs:
            mark = "✔" if lab.complete else f"{lab.done}/{lab.total}"
            if lab.lab == learner.lab and not lab.complete:
                mark = "▶ " + mark
            cells[f"lab:{lab.lab}"] = Text(mark, style="green") if lab.complete else mark
        return cells

    def _clock_cells(self, learner: LearnerView, now: float) -> dict[str, Cell]:
        """The cells that change with the clock: time on the step, the stuck flag."""
        spent = learner.on_step(now)
        if not learner.started:
            on = "not started"
        elif learner.done:
            on = "✔ done"
        else:
            on = format_duration(spent) if spent is not None else ""
        flag: Cell = ""
        if learner.revoked:
            flag = Text("revoked", style="dim")
        elif learner.stuck(now, self.rules):
            flag = Text("⚑ stuck", style="bold red")
        return {"on": on, "flag": flag}

    def _apply_changes(self) -> None:
        """Bring the rows of the learners that changed up to date (a burst costs one pass)."""
        if not (self._dirty or self._removed):
            return
        table = self.query_one(LearnerTable)
        now = self.clock()
        for key in self._removed:
            table.remove_row(key)
        added = False
        for key in sorted(self._dirty):
            entry = self.entries.get(key)
            if entry is None:
                continue
            self._ensure_labs(table, entry.learner)
            added = added or key not in table.keys
            table.set_row(key, self._cells(entry.learner, now))
            self.shown[key] = (entry.learner.seq, now)
            if self.on_shown is not None:
                self.on_shown(key, entry.learner.seq, now)
        if added:
            self._sort(table)
        if self.selected in self._dirty or self.selected in self._removed:
            self._detail()
        self._dirty.clear()
        self._removed.clear()
        self._summary()

    def _tick(self) -> None:
        """Once a second: the clock columns (no request; rows that did not change stay)."""
        table = self.query_one(LearnerTable)
        now = self.clock()
        for key, entry in self.entries.items():
            table.set_row(key, self._clock_cells(entry.learner, now))
        if self.stuck_first:
            self._sort(table)
        self._summary()
        if self.selected is not None:
            self._detail()

    def _summary(self) -> None:
        now = self.clock()
        stuck = sum(1 for e in self.entries.values() if e.learner.stuck(now, self.rules))
        total = len(self.entries)
        text = f"{total} learner{'s' if total != 1 else ''} · {stuck} stuck"
        if self.problem:
            text += f" · class API unreachable, retrying: {self.problem}"
        summary = self.query_one("#class-summary", Static)
        summary.update(text)
        summary.set_class(bool(self.problem), "-problem")
        summary.set_class(stuck > 0, "-stuck")

    def _sort(self, table: LearnerTable) -> None:
        """Order the rows: stuck first when asked, then by name."""

        def order(cells: Mapping[str, Cell]) -> tuple[int, str]:
            stuck = self.stuck_first and str(cells.get("flag", "")).startswith("⚑")
            return (0 if stuck else 1, str(cells.get("learner", "")).lower())

        table.sort(order)

    # ------------------------------------------------------------------ selection and details

    def on_learner_table_row_highlighted(self, message: LearnerTable.RowHighlighted) -> None:
        self.selected = message.key
        self._detail()

    def _detail(self) -> None:
        panel = self.query_one("#class-detail", Static)
        entry = self.entries.get(self.selected or "")
        if entry is None:
            panel.update("")
            return
        learner, offset = entry.learner, entry.offset
        now = self.clock()
        lines = [f"{learner.name} ({learner.learner})"]
        if learner.started:
            lines[0] += f" · {learner.lab_title} · {learner.step_title}"
            spent = learner.on_step(now)
            facts = ["done" if learner.done else f"on this step for {format_duration(spent or 0)}"]
            facts.append(f"{learner.fails} failed attempts")
            facts.append(f"{learner.hints} hints")
            facts.append(f"{learner.labs_done} labs done")
            lines.append(" · ".join(facts))
        else:
            lines.append("has not started a step yet")
        why = learner.stuck(now, self.rules)
        if why:
            lines.append(f"STUCK: {why}")
        if learner.revoked:
            lines.append("revoked: their token no longer works")
        if entry.progress.problem:
            lines.append(f"their progress object is unreadable: {entry.progress.problem}")
        failure = learner.last_failure
        if failure:
            at = _clock(float(failure.get("at") or 0) + offset)
            lines.append(
                f"Last failure ({failure.get('lab')}/{failure.get('step')}, {at}): "
                f"{failure.get('message') or '(no message)'}"
            )
        for item in list(learner.recent)[-RECENT_SHOWN:][::-1]:
            at = _clock(float(item.get("at") or 0) + offset)
            said = f": {item['message']}" if item.get("message") else ""
            lines.append(
                f"  {at}  {item.get('kind'):<8} {item.get('lab')}/{item.get('step')}{said}"
            )
        panel.update("\n".join(lines))

    # ------------------------------------------------------------------ actions

    def action_toggle_sort(self) -> None:
        """Stuck learners first, or everyone by name."""
        self.stuck_first = not self.stuck_first
        self._sort(self.query_one(LearnerTable))
        self.notify("Stuck learners first." if self.stuck_first else "Sorted by name.")


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S") if epoch else "--:--:--"
