"""Generic verifiers: a command's result, a file, an environment variable.

``command`` runs as its own process with the lab shell's exported
environment and working directory, so it sees what the learner's commands
left behind while keeping stdout and stderr apart (the shell's terminal merges
them). Its ``run`` is never expanded by labrunner: ``${NS}`` in it is bash's
to expand from that environment, so an exported value is data, never code
(``x"; touch …`` stays a string), quotes in a value cannot break the
command, and a loop's own variable is the loop's. An unmet expectation is
``pending``: outputs of cluster commands change as things converge, so the
engine asks again until the step's budget is spent. A missing program is
``error``: no amount of waiting installs it.

``env`` reads the lab shell's environment as captured after the step's
commands; it cannot change while the engine polls, so a wrong value is
``failed`` at once rather than waiting out the budget. It never prints the
value it compared (variables hold tokens and passwords as often as
namespaces): it says "set", "differs from the expected value", and lengths.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import Any

from labrunner import procs
from labrunner.redact import redact
from labrunner.verify.context import CheckContext
from labrunner.verify.matching import TEXT_EXPECT_SCHEMA, check_text, lint_text, tail
from labrunner.verify.outcome import Outcome
from labrunner.verify.params import (
    BOOLEAN,
    DURATION,
    STRING,
    as_list,
    described,
    obj,
    one_or_many,
    seconds,
)
from labrunner.verify.registry import ParamProblem, verifier

EXIT_CODE = {
    "anyOf": [
        {"type": "integer"},
        {"type": "array", "items": {"type": "integer"}},
        {"enum": ["nonzero", "any"]},
    ],
    "description": "expected exit code: a number, a list, 'nonzero' or 'any' (default 0)",
}


def _lint_streams(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = []
    for key in ("stdout", "stderr", "output"):
        if isinstance(params.get(key), Mapping):
            for path, message in lint_text(params[key], (key,)):
                problems.append(ParamProblem(path, message))
    return problems


def _exit_ok(expected: Any, code: int) -> bool:
    if expected is None:
        return code == 0
    if expected == "any":
        return True
    if expected == "nonzero":
        return code != 0
    if isinstance(expected, list):
        return code in expected
    return bool(code == expected)


def _describe_command(params: Mapping[str, Any]) -> str:
    cmd = str(params["run"]).strip().splitlines()[0]
    return f"$ {cmd if len(cmd) <= 60 else cmd[:57] + '...'}"


@verifier(
    "command",
    params=obj(
        {
            "run": described(STRING, "a bash command line to run"),
            "exit_code": EXIT_CODE,
            "stdout": TEXT_EXPECT_SCHEMA,
            "stderr": TEXT_EXPECT_SCHEMA,
            "output": TEXT_EXPECT_SCHEMA,
            "timeout": DURATION,
            "fail_fast": described(BOOLEAN, "report an unmet expectation as failed at once"),
        },
        required=("run",),
    ),
    describe=_describe_command,
    lint=_lint_streams,
    shell_params=("run",),
)
def command(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A command's exit code and output meet expectations."""
    timeout = seconds(params.get("timeout"), 10.0)
    try:
        result = ctx.run(["bash", "-c", params["run"]], timeout=timeout)
    except procs.ToolNotFound:
        return Outcome.error("bash not found on PATH; labrunner needs bash")
    not_yet = Outcome.failed if params.get("fail_fast") else Outcome.pending
    details = _output_details(result)
    if result.cancelled:
        return Outcome.pending("cancelled", details)
    if result.timed_out:
        return not_yet(f"command did not finish within {timeout:g}s", details)
    if result.returncode == 127 and "command not found" in result.stderr:
        missing = result.stderr.strip().splitlines()[-1]
        return Outcome.error(f"{missing}; install it or add it to PATH", details)
    if not _exit_ok(params.get("exit_code"), result.returncode):
        want = params.get("exit_code", 0)
        # redacted whole before one line is quoted: out of its context (a key's
        # BEGIN line, a hex dump's label) a line of a secret looks like any other
        first = redact(result.stderr.strip() or result.stdout.strip()).splitlines()
        said = f": {first[-1][:120]}" if first else ""
        return not_yet(f"exit code {result.returncode}, expected {want}{said}", details)
    streams = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "output": result.stdout + result.stderr,
    }
    for key, text in streams.items():
        if key in params:
            mismatch = check_text(key, text, params[key])
            if mismatch is not None:
                return not_yet(mismatch.message, details)
    return Outcome.passed("command output as expected")


def _output_details(result: procs.ProcResult) -> str | None:
    parts = []  # redacted before the tail is taken, for the same reason as above
    if result.stdout.strip():
        parts.append("stdout:\n" + tail(redact(result.stdout)))
    if result.stderr.strip():
        parts.append("stderr:\n" + tail(redact(result.stderr)))
    return "\n".join(parts) or None


def _lint_file(params: Mapping[str, Any]) -> list[ParamProblem]:
    problems = [ParamProblem(p, m) for p, m in lint_text(params, ())]
    mode = params.get("mode")
    if mode is not None and not re.fullmatch(r"0?[0-7]{3,4}", str(mode)):
        problems.append(ParamProblem(("mode",), f"mode {mode!r} is not an octal mode like 0600"))
    return problems


@verifier(
    "file",
    params=obj(
        {
            "path": described(STRING, "a file path, relative to the lab's working directory"),
            "exists": described(BOOLEAN, "whether the file must exist (default true)"),
            "type": {"enum": ["file", "directory"]},
            "contains": one_or_many(STRING),
            "not_contains": one_or_many(STRING),
            "regex": one_or_many(STRING),
            "mode": {
                "type": "string",
                "description": "permission bits in octal, e.g. '0600' (quote it in YAML)",
            },
        },
        required=("path",),
    ),
    describe=lambda p: f"file {p['path']}",
    lint=_lint_file,
)
def file(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """A file exists (or not), with the given content and permissions."""
    path = ctx.path(params["path"])
    want_exists = params.get("exists", True)
    try:
        info = path.stat()
    except FileNotFoundError:
        if want_exists:
            return Outcome.pending(f"{params['path']} does not exist yet")
        return Outcome.passed(f"{params['path']} does not exist")
    except PermissionError:
        return Outcome.error(f"cannot read {params['path']}: permission denied")
    except OSError as exc:
        return Outcome.error(f"cannot read {params['path']}: {exc.strerror or exc}")
    if not want_exists:
        return Outcome.pending(f"{params['path']} still exists")
    kind = params.get("type")
    if kind == "directory" and not stat.S_ISDIR(info.st_mode):
        return Outcome.pending(f"{params['path']} is not a directory")
    if kind == "file" and not stat.S_ISREG(info.st_mode):
        return Outcome.pending(f"{params['path']} is not a regular file")
    if "mode" in params:
        want = int(str(params["mode"]), 8)
        have = stat.S_IMODE(info.st_mode)
        if have != want:
            return Outcome.pending(f"{params['path']} has mode {have:04o}, expected {want:04o}")
    text_keys = ("contains", "not_contains", "regex")
    if any(k in params for k in text_keys):
        if stat.S_ISDIR(info.st_mode):
            return Outcome.error(f"{params['path']} is a directory; cannot check its content")
        try:
            with path.open("rb") as fh:
                raw = fh.read(16 * 1024 * 1024)
        except OSError as exc:
            return Outcome.error(f"cannot read {params['path']}: {exc.strerror or exc}")
        mismatch = check_text(
            params["path"],
            raw.decode("utf-8", "replace"),
            {k: params[k] for k in text_keys if k in params},
        )
        if mismatch is not None:
            return Outcome.pending(mismatch.message)
    return Outcome.passed(f"{params['path']} is as expected")


@verifier(
    "env",
    params=obj(
        {
            "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "set": described(BOOLEAN, "whether it must be set (default true)"),
            "equals": STRING,
            "matches": described(STRING, "a regular expression the value must match"),
            "not_empty": BOOLEAN,
        },
        required=("name",),
    ),
    describe=lambda p: f"${p['name']}",
    lint=lambda p: [
        ParamProblem(("matches",), f"not a valid regular expression: {exc}")
        for exc in _regex_errors(p.get("matches"))
    ],
)
def env(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
    """An environment variable in the lab shell is set, equal to, or matching a value."""
    name = params["name"]
    value = ctx.env.get(name)
    want_set = params.get("set", True)
    if value is None:
        if want_set:
            return Outcome.failed(f"${name} is not set in the lab shell (did you export it?)")
        return Outcome.passed(f"${name} is not set")
    if not want_set:
        return Outcome.failed(f"${name} is set; it should be unset")
    if params.get("not_empty") and not value:
        return Outcome.failed(f"${name} is empty")
    if "equals" in params and value != params["equals"]:
        return Outcome.failed(
            f"${name} differs from the expected value ({_chars(value)}, expected "
            f"{_chars(params['equals'])})"
        )
    if "matches" in params and not re.search(params["matches"], value):
        return Outcome.failed(
            f"${name} does not match /{params['matches']}/ (its value has {_chars(value)})"
        )
    return Outcome.passed(f"${name} is set")


def _chars(value: str) -> str:
    return f"{len(value)} character{'s' if len(value) != 1 else ''}"


def _regex_errors(pattern: Any) -> list[re.error]:
    errors = []
    for p in as_list(pattern):
        try:
            re.compile(p)
        except re.error as exc:
            errors.append(exc)
    return errors


__all__ = ["command", "env", "file", "os"]
