"""The engine's events, told to the class the learner joined (``labrunner class join``).

This is the one place both front ends meet the class: every ``Engine`` taps
its event stream here (``tap``), so the TUI and ``verify`` publish the same
events the same way, and a learner who joined no class pays one ``stat``
per engine. Of the stream the class hears only what an instructor needs:
a step started or viewed, its recorded result (passed, failed or error with
the redacted message, skipped), and hints shown; the time on a step follows
from when those happened. Everything else (command output above all) stays
on the learner's machine.

Publishing is a queue put (``labrunner.classroom.publisher``): it never
blocks or fails a step. Events go to the learner's own progress object
through the join file's kubeconfig only, never through the lab's context.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from labrunner.classroom import JOIN_FILE
from labrunner.engine import events as ev
from labrunner.lab.model import Lab, Workshop
from labrunner.redact import redact
from labrunner.state.store import state_dir

TYPE_CHECKING = False  # as typing's, without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from labrunner.classroom import publisher as class_publisher

Emit = Callable[[ev.Event], None]

_OUTCOMES = ("passed", "failed", "error", "skipped")
"""The recorded statuses the class hears (each is also the class event's kind)."""


def class_directory() -> Path:
    """Where ``class join`` keeps the join file and the outbox."""
    return state_dir() / "class"


class ClassFeed:
    """Turns engine events into class events for one publisher."""

    def __init__(self, workshop: Workshop, publisher: class_publisher.Publisher) -> None:
        self.publisher = publisher
        self._labs: dict[str, tuple[int, Lab]] = {
            lab.id: (order, lab) for order, lab in enumerate(workshop.labs)
        }

    def __call__(self, event: ev.Event) -> None:
        try:
            item = self.translate(event)
        except Exception:  # a bad event must not cost the learner a step
            return
        if item is not None:
            self.publisher.publish(item)

    def translate(self, event: ev.Event) -> dict[str, Any] | None:
        """The class event for ``event`` (None for events the class does not hear)."""
        from labrunner.classroom import document  # loaded with the publisher: no extra cost

        if isinstance(event, ev.StepStarted):
            return self._event(document.STARTED, event.lab_id, event.step_id)
        if isinstance(event, ev.StepViewed):
            return self._event(document.VIEWED, event.lab_id, event.step_id)
        if isinstance(event, ev.StepRecorded):
            if event.status not in _OUTCOMES:
                return None
            kind = event.status
            message = redact(event.message) if kind in (document.FAILED, document.ERROR) else ""
            return self._event(kind, event.lab_id, event.step_id, message=message)
        if isinstance(event, ev.HintShown):
            return self._event(document.HINT, event.lab_id, event.step_id, hint=event.number)
        return None

    def _event(
        self, kind: str, lab_id: str, step_id: str, *, message: str = "", hint: int = 0
    ) -> dict[str, Any]:
        # lazy: class documents load only when a class was joined (start-up speed)
        from labrunner.classroom import document

        found = self._labs.get(lab_id)
        if found is None:
            return document.event(kind, lab_id, step_id, at=time.time(), message=message, hint=hint)
        order, lab = found
        index = next((i for i, s in enumerate(lab.steps) if s.id == step_id), None)
        return document.event(
            kind,
            lab_id,
            step_id,
            at=time.time(),
            message=message,
            hint=hint,
            lab_title=lab.title,
            lab_order=order,
            total=len(lab.steps),
            step_title=lab.steps[index].title if index is not None else "",
            index=index,
        )


def finish(grace: float | None = None) -> str:
    """End this process's publishing (a last send within ``grace`` seconds, by default the
    publisher's exit grace); a note for a headless run when events still wait to be sent
    ("" when all went out, or no class)."""
    if "labrunner.classroom.publisher" not in sys.modules:
        return ""  # nothing was published: no classroom code to load at exit
    try:
        # lazy: the publisher loads only when a class was joined (start-up speed)
        from labrunner.classroom import publisher as class_publisher

        wait = class_publisher.EXIT_GRACE if grace is None else grace
        status = class_publisher.close_active(class_directory(), wait)
    except Exception:  # publishing never costs the learner anything, not even at the end
        return ""
    return status.waiting_note() if status is not None else ""


def tap(emit: Emit, workshop: Workshop) -> Emit:
    """``emit``, plus the class feed when the learner joined a class."""
    try:
        if (
            "labrunner.classroom.publisher" not in sys.modules
            and not (class_directory() / JOIN_FILE).is_file()
        ):
            return emit  # no class joined: one stat, and no classroom code loaded
        # lazy: the publisher loads only when a class was joined (start-up speed)
        from labrunner.classroom import publisher as class_publisher

        publisher = class_publisher.active(class_directory())
    except Exception:  # an unreadable state directory: no class, the run goes on
        return emit
    if publisher is None:
        return emit
    feed = ClassFeed(workshop, publisher)

    def both(event: ev.Event) -> None:
        emit(event)
        feed(event)

    return both
