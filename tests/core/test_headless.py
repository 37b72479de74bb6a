"""The console script's click-free ``check``, ``verify``, ``list`` and ``validate``: which
command lines they take, and that they answer them as click's own commands do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labrunner.headless import parse_check, parse_list, parse_validate, parse_verify

from .conftest import assert_clean, cli_env, install_labs, run_cli

Make = Callable[..., Path]


def _args(
    labs: str | None = None,
    lab: str = "lab",
    step: str | None = None,
    context: str | None = None,
    wait: bool = False,
) -> dict[str, Any]:
    return {
        "labs_option": labs,
        "lab": lab,
        "step": step,
        "context_option": context,
        "wait": wait,
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["check", "lab"], _args()),
        (["check", "lab", "step"], _args(step="step")),
        (["--labs", "d", "check", "lab", "s"], _args(labs="d", step="s")),
        (["--labs=d", "check", "lab"], _args(labs="d")),
        (["check", "--context", "c", "lab", "s"], _args(step="s", context="c")),
        (["check", "lab", "--context=c", "--wait"], _args(context="c", wait=True)),
        (["check", "lab", "--context="], _args(context="")),
        (["check", "-", "s"], _args(lab="-", step="s")),
    ],
)
def test_plain_check_lines_are_parsed_as_click_would(
    argv: list[str], expected: dict[str, Any]
) -> None:
    assert parse_check(argv, {}) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["check"],  # a missing LAB: click says so
        ["check", "a", "b", "c"],  # one argument too many
        ["check", "--help"],
        ["check", "lab", "-h"],
        ["check", "lab", "--wait", "--wait"],
        ["check", "lab", "--context"],  # no value
        ["check", "lab", "--context", "--wait"],  # a value that looks like an option
        ["check", "lab", "--wait=yes"],
        ["check", "lab", "--labs", "d"],  # a group option after the command
        ["check", "lab", "--", "step"],
        ["--labs", "d", "list"],
        ["--labs"],
        ["-V"],
        ["verify", "lab"],
    ],
)
def test_other_command_lines_are_left_to_click(argv: list[str]) -> None:
    assert parse_check(argv, {}) is None


def test_the_labs_directory_comes_from_the_environment_as_clicks_envvar() -> None:
    assert parse_check(["check", "lab"], {"LABRUNNER_LABS": "/w/labs"}) == _args(labs="/w/labs")
    assert parse_check(["check", "lab"], {"LABRUNNER_LABS": ""}) == _args()
    explicit = parse_check(["--labs", "mine", "check", "lab"], {"LABRUNNER_LABS": "/w/labs"})
    assert explicit == _args(labs="mine")


CLICK_ONLY = """
import sys
from labrunner.cli import main
main(sys.argv[1:], prog_name="labrunner")
"""


def clicks_answer(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """What click's own command line (no console script) answers to ``argv``."""
    return subprocess.run(
        [sys.executable, "-c", CLICK_ONLY, *argv],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "tail",
    [
        ["hints", "fine"],  # passes once made.txt is there, fails before
        ["hints", "nope"],  # no such step: a usage error
        ["nope"],  # no such lab
    ],
)
def test_the_console_script_answers_a_plain_check_as_click_does(
    workshop: Make, tail: list[str]
) -> None:
    labs = workshop("hints")
    argv = ["--labs", str(labs), "check", *tail]
    ours = run_cli(*argv, cwd=labs.parent)
    clicks = clicks_answer(argv, labs.parent)
    assert_clean(ours, clicks.returncode)
    assert (_timeless(ours.stdout), ours.stderr) == (_timeless(clicks.stdout), clicks.stderr)


def _timeless(text: str) -> str:
    """``text`` without the step durations, which differ from run to run."""
    return re.sub(r"\(\d+(?:\.\d+)?(?:ms|s|m)[^)]*\)", "(…)", text)


ENDING = """
import atexit, sys
from labrunner import headless
if "early" in sys.argv:
    atexit.register(lambda: print("early handler ran", flush=True))
status = headless.end_after_atexit()
atexit.register(lambda: print("late handler ran"))
sys.stdout.write("unflushed ")
if "boom" in sys.argv:
    raise RuntimeError("boom")
status.append(int(sys.argv[1]))
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("code", [0, 3, 130])
def test_a_check_ends_after_its_atexit_handlers_with_its_status(code: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", ENDING, str(code)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == code
    # every handler ran, and what was written is out
    assert proc.stdout == "unflushed late handler ran\n"


def test_an_uncaught_error_still_exits_1_with_its_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", ENDING, "0", "boom"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "RuntimeError: boom" in proc.stderr
    assert proc.stdout == "unflushed late handler ran\n"


def test_a_handler_registered_before_keeps_the_normal_teardown() -> None:
    # it would run after ours: so ours is not installed, and both handlers run
    proc = subprocess.run(
        [sys.executable, "-c", ENDING, "4", "early"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 4
    assert proc.stdout == "unflushed late handler ran\nearly handler ran\n"


def _list_args(
    labs: str | None = None, context: str | None = None, as_json: bool = False, steps: bool = True
) -> dict[str, Any]:
    return {"labs_option": labs, "context_option": context, "as_json": as_json, "steps": steps}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list"], _list_args()),
        (["--labs", "d", "list", "--json"], _list_args(labs="d", as_json=True)),
        (["--labs=d", "list", "--no-steps"], _list_args(labs="d", steps=False)),
        (["list", "--context", "c", "--steps"], _list_args(context="c")),
        (["list", "--context=c"], _list_args(context="c")),
    ],
)
def test_plain_list_lines_are_parsed_as_click_would(
    argv: list[str], expected: dict[str, Any]
) -> None:
    assert parse_list(argv, {}) == expected
    assert parse_list(["list"], {"LABRUNNER_LABS": "/w"}) == _list_args(labs="/w")


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "lab"],  # list takes no argument: click says so
        ["list", "--help"],
        ["list", "--json", "--json"],
        ["list", "--steps", "--no-steps"],  # click: the last wins; left to it
        ["list", "--context"],
        ["list", "--json=yes"],
        ["list", "--bogus"],
        ["check", "lab"],
    ],
)
def test_other_list_lines_are_left_to_click(argv: list[str]) -> None:
    assert parse_list(argv, {}) is None


@pytest.mark.parametrize(
    "tail",
    [[], ["--json"], ["--no-steps", "--context", "elsewhere"], ["--labs-missing"]],
)
def test_the_console_script_answers_a_plain_list_as_click_does(
    workshop: Make, tail: list[str], tmp_path: Path
) -> None:
    labs = workshop("hints")
    if tail == ["--labs-missing"]:
        argv = ["--labs", str(tmp_path / "missing"), "list"]
    else:
        argv = ["--labs", str(labs), "list", *tail]
    ours = run_cli(*argv, cwd=labs.parent)
    clicks = clicks_answer(argv, labs.parent)
    assert ours.returncode == clicks.returncode
    assert (ours.stdout, ours.stderr) == (clicks.stdout, clicks.stderr)
    if tail != ["--labs-missing"]:
        assert ours.returncode == 0 and "hints" in ours.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate"], {"labs_option": None, "files": [], "strict": False}),
        (["--labs", "d", "validate"], {"labs_option": "d", "files": [], "strict": False}),
        (
            ["validate", "a.yaml", "--strict", "b"],
            {"labs_option": None, "files": ["a.yaml", "b"], "strict": True},
        ),
        (["validate", "-"], {"labs_option": None, "files": ["-"], "strict": False}),
    ],
)
def test_plain_validate_lines_are_parsed_as_click_would(
    argv: list[str], expected: dict[str, Any]
) -> None:
    assert parse_validate(argv, {}) == expected
    from_env = parse_validate(["validate"], {"LABRUNNER_LABS": "/w"})
    assert from_env is not None and from_env["labs_option"] == "/w"


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--help"],
        ["validate", "--strict", "--strict"],
        ["validate", "--strict=yes"],
        ["validate", "--", "-file.yaml"],
        ["validate", "--bogus"],
        ["list"],
    ],
)
def test_other_validate_lines_are_left_to_click(argv: list[str]) -> None:
    assert parse_validate(argv, {}) is None


INVALID = Path(__file__).resolve().parent / "labs" / "invalid"


@pytest.mark.parametrize(
    "case", ["workshop", "strict", "one-file", "broken-file", "missing-file", "directory"]
)
def test_the_console_script_answers_a_plain_validate_as_click_does(
    workshop: Make, case: str, tmp_path: Path
) -> None:
    labs = workshop("hints")
    broken = tmp_path / "wrong-types.yaml"
    broken.write_text((INVALID / "wrong-types.yaml").read_text())
    argv = {
        "workshop": ["--labs", str(labs), "validate"],
        "strict": ["--labs", str(labs), "validate", "--strict"],
        "one-file": ["validate", str(labs / "hints.yaml")],
        "broken-file": ["validate", str(broken), str(labs / "hints.yaml")],
        "missing-file": ["validate", str(tmp_path / "missing.yaml")],
        "directory": ["validate", str(labs)],
    }[case]
    ours = run_cli(*argv, cwd=labs.parent)
    clicks = clicks_answer(argv, labs.parent)
    assert_clean(ours, clicks.returncode)
    assert (ours.stdout, ours.stderr) == (clicks.stdout, clicks.stderr)
    assert "checked:" in ours.stderr
    if case == "broken-file":
        assert ours.returncode == 2 and "wrong-types.yaml:" in ours.stdout
    if case == "missing-file":
        assert ours.returncode == 2 and "missing.yaml: no such file" in ours.stdout


# --------------------------------------------------------------------------- verify


def _verify(**given: Any) -> dict[str, Any]:
    return {"labs_option": None, "refs": [], **given}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verify"], _verify()),
        (["--labs", "d", "verify", "a", "b"], _verify(labs_option="d", refs=["a", "b"])),
        (["verify", "-q", "a", "--no-save"], _verify(refs=["a"], quiet=True, no_save=True)),
        (["verify", "--quiet", "--cleanup", "a"], _verify(refs=["a"], quiet=True, cleanup=True)),
        (["verify", "a", "--no-setup"], _verify(refs=["a"], setup=False)),
        (["verify", "--setup", "a"], _verify(refs=["a"], setup=True)),
        (
            ["verify", "a", "--from", "s", "--context=c", "--skip-needs", "x,y"],
            _verify(refs=["a"], from_step="s", context_option="c", skip_needs="x,y"),
        ),
        (["verify", "a", "--only=s"], _verify(refs=["a"], only_step="s")),
        (
            ["verify", "a", "--junit", "r.xml", "--json=r.json"],
            _verify(refs=["a"], junit=Path("r.xml"), json_path=Path("r.json")),
        ),
        (["verify", "-"], _verify(refs=["-"])),
    ],
)
def test_plain_verify_lines_are_parsed_as_click_would(
    argv: list[str], expected: dict[str, Any]
) -> None:
    assert parse_verify(argv, {}) == expected
    assert parse_verify(["verify"], {"LABRUNNER_LABS": "/w"}) == _verify(labs_option="/w")


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--help"],
        ["verify", "a", "-h"],
        ["verify", "a", "-q", "-q"],
        ["verify", "a", "--setup", "--no-setup"],  # click: the last one wins
        ["verify", "a", "--quiet=yes"],
        ["verify", "a", "--from"],  # no value
        ["verify", "a", "--from", "--cleanup"],  # a value that looks like an option
        ["verify", "a", "--repeat", "3"],
        ["verify", "a", "--forensics", "f"],
        ["verify", "a", "--annotations", "none"],
        ["verify", "a", "--junit", ""],
        ["verify", "a", "--json", "."],  # a folder: click refuses it in its words
        ["verify", "a", "-qv"],
        ["verify", "--", "a"],
        ["verify", "a", "--labs", "d"],  # a group option after the command
        ["check", "a"],
    ],
)
def test_other_verify_lines_are_left_to_click(argv: list[str]) -> None:
    assert parse_verify(argv, {}) is None


def _report(path: Path) -> list[tuple[str, str, str]]:
    """The JSON report's labs, steps and their statuses (no times)."""
    data = json.loads(path.read_text())
    return [
        (lab["id"], step["id"], step["status"]) for lab in data["labs"] for step in lab["steps"]
    ]


@pytest.mark.parametrize(
    ("lab", "options", "code"),
    [
        ("base", [], 0),
        ("hints", ["-q", "--junit", "{out}/r.xml", "--json", "{out}/r.json"], 1),
        ("sequence", ["--only", "two", "--no-save"], 1),  # two needs one's export
        ("sequence", ["--only", "one", "--cleanup", "--skip-needs", "x,y"], 0),
        ("sequence", ["--from", "two", "--only", "three"], 2),
        ("nope", [], 2),
    ],
)
def test_the_console_script_answers_a_plain_verify_as_click_does(
    tmp_path: Path, lab: str, options: list[str], code: int
) -> None:
    answers = {}
    for road in ("ours", "clicks"):
        place = tmp_path / road
        labs = install_labs(place, "base", "hints", "sequence")
        out = place / "out"
        out.mkdir()
        argv = ["--labs", str(labs), "verify", lab, *(o.format(out=out) for o in options)]
        env = cli_env(LABRUNNER_STATE_DIR=str(place / "state"))
        assert parse_verify(argv[2:], {}) is not None  # the line is a plain one
        answers[road] = (
            run_cli(*argv, cwd=place, env=env)
            if road == "ours"
            else clicks_answer(argv, place, env)
        )
        assert_clean(answers[road], code)
        if "--json" in options:
            answers[road].stdout += repr(_report(out / "r.json"))
            assert (out / "r.xml").read_text().count("<testcase") == 3

    ours, clicks = answers["ours"], answers["clicks"]

    def plain(text: str) -> str:
        """``text`` without durations (they differ from run to run)."""
        return re.sub(r"\b\d+(?:\.\d+)?(?:ms|s|m)\b", "…", text)

    def same(text: str) -> str:
        return plain(text).replace(str(tmp_path / "ours"), str(tmp_path / "clicks"))

    assert (same(ours.stdout), same(ours.stderr)) == (plain(clicks.stdout), plain(clicks.stderr))
