"""labrunner in a real terminal: tmux runs the real command, the test reads the screen.

Everything else in this suite drives the app headless; this test checks what
a person would see in an actual terminal (a 100×30 tmux pane): the lab list
comes up, Enter opens the first lab, ``r`` runs its step and the step shows
as passed, ``t`` attaches the real terminal to the lab's own shell (whose work
passes the next step and stays in the shell the pane shows: an export and a
``cd`` typed there are what the step's checks see on return), and ``q`` quits
cleanly. tmux runs on a private socket with its own
HOME and state directory, and the server is always killed at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labrunner.testing import detaching
from labrunner.testing.detaching import alive, pids_in

from .helpers import REPO_LABS, copy_workshop
from .test_terminal_pane import typing_workshop

DEADLINE = 20.0


class Tmux:
    """A private tmux server with one session running one command."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )

    def screen(self) -> str:
        """What the pane shows now."""
        return self("capture-pane", "-p", "-t", "lab").stdout

    def keys(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names) into the pane."""
        self("send-keys", "-t", "lab", *keys)

    def running(self) -> bool:
        """True while the session (and so labrunner) is alive."""
        return self("has-session", "-t", "lab", check=False).returncode == 0

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Poll until ``condition`` holds; fail with the screen after the deadline."""
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                shown = self.screen() if self.running() else "(session gone)"
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{shown}")
            time.sleep(0.05)

    def shows(self, text: str) -> Callable[[], bool]:
        return lambda: self.running() and text in self.screen()


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the real-terminal test (it is installed here and in CI)")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LABRUNNER_STATE_DIR": str(tmp_path / "state"),
        "KUBECONFIG": str(home / ".kube" / "config"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "SHELL": shutil.which("bash") or "/bin/bash",
    }
    server = Tmux(f"labrunner-test-{uuid.uuid4().hex[:12]}", env)
    try:
        yield server
    finally:
        server("kill-server", check=False)


def test_a_learner_runs_a_step_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    labs = copy_workshop(tmp_path / "ws")
    command = f"{sys.executable} -m labrunner --labs {labs}"
    tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "lab", command)

    tmux.wait(tmux.shows("Files and prompts"), "the lab list")
    screen = tmux.screen()
    assert "TUI test workshop" in screen
    assert "Talk to the cluster" in screen
    assert "locked: finish basics first" in screen
    assert "no cluster needed" in screen

    tmux.keys("Enter")
    tmux.wait(tmux.shows("Step 1 of 4: Say hello"), "the lab screen")
    tmux.keys("r")
    tmux.wait(tmux.shows("[passed]"), "the step to pass")
    # a capture can catch a frame half drawn: wait for the step list's line too
    tmux.wait(tmux.shows("✔ 1. Say hello"), "the step list to show it passed")
    screen = tmux.screen()
    assert "hello-from-step" in screen
    assert (labs.parent / "made.txt").read_text() == "ready\n"

    # The next step wants a file made by hand: t attaches this terminal to the lab's
    # own shell (labrunner suspended); Ctrl+] comes back and re-checks the step.
    tmux.keys("n")
    tmux.wait(tmux.shows("Step 2 of 4: Create fixed.txt yourself"), "step 2")
    tmux.keys("t")
    tmux.wait(tmux.shows("labrunner: this is the lab's shell"), "the attached shell")
    assert "Press ctrl+] to go back" in tmux.screen()
    tmux.keys("touch fixed.txt; export TYPED=yes; greet() { echo hi-$1; }", "Enter")
    tmux.wait(tmux.shows("$ touch fixed.txt"), "the command to run")
    tmux.keys("C-]")
    tmux.wait(tmux.shows("✔ 2. Create fixed.txt"), "step 2 to pass after the shell")
    assert (labs.parent / "fixed.txt").exists()

    # the same shell, not a second one: the export and the function are still there
    tmux.keys("i")
    tmux.wait(tmux.shows("ctrl+]: back to the lab"), "the pane to take the keyboard")
    tmux.keys("greet $TYPED", "Enter")
    tmux.wait(tmux.shows("hi-yes"), "the function and the export, typed in the pane")
    tmux.keys("C-]")

    tmux.keys("q")
    tmux.wait(lambda: not tmux.running(), "labrunner to quit")


def test_what_is_typed_after_t_is_what_the_checks_see(tmux: Tmux, tmp_path: Path) -> None:
    """``t`` hands the real terminal to the lab's shell: an export and a ``cd`` typed there
    stay in that shell, and coming back with Ctrl+] re-checks the step (no key pressed),
    whose ``env`` and working-directory checks then pass."""
    labs = typing_workshop(tmp_path)
    command = f"{sys.executable} -m labrunner --labs {labs} run typing"
    tmux("new-session", "-d", "-x", "120", "-y", "35", "-s", "lab", command)
    tmux.wait(tmux.shows("Step 1 of 1: Export and move"), "the lab screen")
    tmux.wait(tmux.shows("i: type here"), "the lab shell in the pane")
    tmux.keys("c")  # before: neither check passes
    tmux.wait(tmux.shows("○ TYPED is exported: not yet"), "the first check")
    assert "[passed]" not in tmux.screen()

    tmux.keys("t")
    tmux.wait(tmux.shows("labrunner: this is the lab's shell"), "the attached shell")
    tmux.keys("export TYPED=yes; cd /tmp", "Enter")
    tmux.wait(tmux.shows("tmp $"), "the prompt in /tmp")
    tmux.keys("C-]")
    tmux.wait(tmux.shows("✔ TYPED is exported"), "the env check to pass on return")
    tmux.wait(tmux.shows("✔ the shell is in /tmp"), "the working-directory check to pass")
    tmux.wait(tmux.shows("[passed]"), "the step to pass")
    assert "✔ 1. Export and move" in tmux.screen()

    tmux.keys("q")
    tmux.wait(lambda: not tmux.running(), "labrunner to quit")


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM"])
def test_closing_the_terminal_leaves_nothing_running(tmux: Tmux, tmp_path: Path, how: str) -> None:
    root = tmp_path / "ws"
    (root / "labs").mkdir(parents=True)
    (root / "labs" / "detach.yaml").write_text(detaching.LAB)
    tmux.env["TMPDIR"] = str(tmp_path)
    command = f"{sys.executable} -m labrunner --labs {root / 'labs'}"
    tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "lab", command)
    pane = int(tmux("list-panes", "-t", "lab", "-F", "#{pane_pid}").stdout.split()[0])
    pids_file = root / "pids"
    try:
        tmux.wait(tmux.shows("Helpers that detach"), "the lab list")
        tmux.keys("Enter")
        tmux.wait(tmux.shows("Start five helpers"), "the lab screen")
        tmux.keys("r")
        tmux.wait(tmux.shows("[passed]"), "the step to pass")
        pids = pids_in(pids_file)
        assert len(pids) == 5 and all(alive(p) for p in pids)
        if how == "SIGHUP":
            tmux("kill-server")  # the terminal goes away: labrunner gets SIGHUP
        else:
            os.kill(pane, signal.SIGTERM)
        tmux.wait(lambda: not alive(pane), "labrunner to leave")
        tmux.wait(lambda: not any(alive(p) for p in pids), "the helpers to be killed")
        assert not list(tmp_path.glob("labrunner-*")), "the run's private folder is left"
    finally:
        for pid in pids_in(pids_file):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_terminal_closed_as_the_first_screen_paints_never_leaves_labrunner_running(
    tmux: Tmux, tmp_path: Path
) -> None:
    """Textual's writer thread ends at its first write to a hung-up terminal; the frames
    drawn after that filled its queue and the exit blocked on it for ever (one close in
    four, right after the first paint). labrunner's driver drops output once the terminal
    is gone, so every close ends labrunner (tried eight times). A checkout run without
    bytecode and unbuffered, as here, starts slowly enough to be drawing still when the
    terminal goes: without the fix, this test failed in every run tried."""
    labs = REPO_LABS
    tmux.env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    command = f"exec {sys.executable} -m labrunner --labs {labs}"
    for attempt in range(8):
        tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "lab", command)
        pane = int(tmux("list-panes", "-t", "lab", "-F", "#{pane_pid}").stdout.split()[0])
        try:
            tmux.wait(tmux.shows("Mesh security"), "the lab list")
            tmux("kill-server")  # the terminal goes away as the app goes on drawing
            deadline = time.monotonic() + DEADLINE
            while alive(pane):
                assert time.monotonic() < deadline, (
                    f"labrunner still runs {DEADLINE:.0f}s after its terminal closed "
                    f"(attempt {attempt + 1})"
                )
                time.sleep(0.05)
        finally:
            if alive(pane):
                os.kill(pane, signal.SIGKILL)
