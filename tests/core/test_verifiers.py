"""Built-in generic verifiers (command, file, env) and the verifier registry."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from labrunner.lab.catalog import VerifierUnavailable
from labrunner.verify import registry as registry_module
from labrunner.verify.context import CheckContext
from labrunner.verify.outcome import Outcome, Status
from labrunner.verify.registry import (
    ENTRY_POINT_GROUP,
    ParamProblem,
    Registry,
    VerifierSpec,
    builtin_registry,
)

from .conftest import assert_clean, cli_env, run_cli


@pytest.fixture
def ctx(tmp_path: Path) -> CheckContext:
    env = {**os.environ, "LAB_COLOUR": "teal", "EMPTY": ""}
    return CheckContext(env=env, cwd=tmp_path, workdir=tmp_path)


def check(ctx: CheckContext, verifier: str, /, **params: Any) -> Outcome:
    spec = builtin_registry().get(verifier)
    assert spec is not None
    return spec.func(ctx, params)


# --------------------------------------------------------------------------- command


@pytest.mark.parametrize(
    ("run", "exit_code", "status"),
    [
        ("true", None, Status.PASSED),
        ("exit 3", None, Status.PENDING),
        ("exit 3", 3, Status.PASSED),
        ("exit 3", 4, Status.PENDING),
        ("false", "nonzero", Status.PASSED),
        ("true", "nonzero", Status.PENDING),
        ("exit 9", "any", Status.PASSED),
        ("exit 2", [1, 2], Status.PASSED),
        ("exit 0", [1, 2], Status.PENDING),
    ],
)
def test_command_exit_codes(ctx: CheckContext, run: str, exit_code: object, status: Status) -> None:
    params: dict[str, Any] = {"run": run}
    if exit_code is not None:
        params["exit_code"] = exit_code
    assert check(ctx, "command", **params).status is status


def test_command_exit_code_message(ctx: CheckContext) -> None:
    outcome = check(ctx, "command", run="echo nope >&2; exit 3", exit_code=[0, 1])
    assert outcome.message == "exit code 3, expected [0, 1]: nope"
    assert outcome.details == "stderr:\nnope"


def test_command_output_expectations(ctx: CheckContext) -> None:
    run = "echo 'pod/web-api-7d5c8b9f6-abcde   Running   5s'; echo 'warning: deprecated' >&2"
    assert check(ctx, "command", run=run, stdout={"contains": "Running"}).ok
    assert check(ctx, "command", run=run, stdout={"not_contains": "Pending"}).ok
    assert check(ctx, "command", run=run, stdout={"regex": r"^pod/web-api-\S+ "}).ok
    assert check(
        ctx, "command", run=run, stdout={"like": "pod/web-api-5f6d7c8b9-x2xkq Running 2m"}
    ).ok
    assert check(ctx, "command", run=run, stdout={"lines": ["+ Running", "- Error"]}).ok
    assert check(ctx, "command", run="echo exact", stdout={"equals": "exact"}).ok
    # stdout and stderr are apart; output is both
    assert check(ctx, "command", run=run, stderr={"contains": "deprecated"}).ok
    apart = check(ctx, "command", run=run, stdout={"contains": "deprecated"})
    assert apart.status is Status.PENDING
    assert apart.message == "stdout does not contain 'deprecated'"
    assert check(ctx, "command", run=run, output={"contains": ["Running", "deprecated"]}).ok
    assert check(ctx, "command", run=run, stderr={"empty": True}).status is Status.PENDING


def test_command_sees_the_lab_environment_and_directory(ctx: CheckContext) -> None:
    (ctx.cwd / "marker").write_text("here")
    outcome = check(
        ctx, "command", run='echo "$LAB_COLOUR $(cat marker)"', stdout={"equals": "teal here"}
    )
    assert outcome.ok, outcome.message


def test_command_fail_fast_and_timeout(ctx: CheckContext) -> None:
    assert check(ctx, "command", run="false", fail_fast=True).status is Status.FAILED
    outcome = check(ctx, "command", run="sleep 30", timeout="300ms")
    assert outcome.status is Status.PENDING
    assert outcome.message == "command did not finish within 0.3s"


def test_command_with_a_missing_tool_is_an_error(ctx: CheckContext) -> None:
    outcome = check(ctx, "command", run="labrunner-no-such-tool --version")
    assert outcome.status is Status.ERROR
    assert outcome.message == (
        "bash: line 1: labrunner-no-such-tool: command not found; install it or add it to PATH"
    )


def test_command_without_bash_on_path_is_an_error(tmp_path: Path) -> None:
    ctx = CheckContext(env={"PATH": str(tmp_path)}, cwd=tmp_path, workdir=tmp_path)
    # procs.run looks bash up on the parent's PATH, so point the parent's PATH away too
    old = os.environ["PATH"]
    os.environ["PATH"] = str(tmp_path)
    try:
        outcome = check(ctx, "command", run="true")
    finally:
        os.environ["PATH"] = old
    assert outcome.status is Status.ERROR
    assert outcome.message == "bash not found on PATH; labrunner needs bash"


# --------------------------------------------------------------------------- file


def test_file_exists_absent_and_content(ctx: CheckContext) -> None:
    path = ctx.cwd / "conf" / "app.yaml"
    missing = check(ctx, "file", path="conf/app.yaml")
    assert missing.status is Status.PENDING
    assert missing.message == "conf/app.yaml does not exist yet"
    assert check(ctx, "file", path="conf/app.yaml", exists=False).ok
    path.parent.mkdir()
    path.write_text("mode: STRICT\nport: 8443\n")
    assert check(ctx, "file", path="conf/app.yaml").ok
    assert check(ctx, "file", path=str(path)).ok
    assert check(ctx, "file", path="conf/app.yaml", exists=False).message == (
        "conf/app.yaml still exists"
    )
    assert check(ctx, "file", path="conf/app.yaml", contains=["STRICT", "8443"]).ok
    assert check(ctx, "file", path="conf/app.yaml", not_contains="PERMISSIVE").ok
    assert check(ctx, "file", path="conf/app.yaml", regex=r"^port: \d+$").ok
    wrong = check(ctx, "file", path="conf/app.yaml", contains="PERMISSIVE")
    assert wrong.status is Status.PENDING
    assert wrong.message == "conf/app.yaml does not contain 'PERMISSIVE'"
    assert check(ctx, "file", path="conf", type="directory").ok
    assert check(ctx, "file", path="conf", type="file").status is Status.PENDING
    on_dir = check(ctx, "file", path="conf", contains="x")
    assert on_dir.status is Status.ERROR


def test_file_mode(ctx: CheckContext) -> None:
    key = ctx.cwd / "tls.key"
    key.write_text("secret")
    key.chmod(0o644)
    outcome = check(ctx, "file", path="tls.key", mode="0600")
    assert outcome.status is Status.PENDING
    assert outcome.message == "tls.key has mode 0644, expected 0600"
    key.chmod(0o600)
    assert check(ctx, "file", path="tls.key", mode="0600").ok
    assert check(ctx, "file", path="tls.key", mode="600").ok


def test_file_lint_rejects_a_bad_mode() -> None:
    spec = builtin_registry().get("file")
    assert spec is not None and spec.lint is not None
    assert spec.lint({"path": "x", "mode": "rw-r--r--"}) == [
        ParamProblem(("mode",), "mode 'rw-r--r--' is not an octal mode like 0600")
    ]


# --------------------------------------------------------------------------- env


def test_env(ctx: CheckContext) -> None:
    assert check(ctx, "env", name="LAB_COLOUR").ok
    assert check(ctx, "env", name="LAB_COLOUR", equals="teal").ok
    assert check(ctx, "env", name="LAB_COLOUR", matches="^te").ok
    assert check(ctx, "env", name="NOT_SET_ANYWHERE", set=False).ok
    assert check(ctx, "env", name="EMPTY").ok
    unset = check(ctx, "env", name="NOT_SET_ANYWHERE")
    assert unset.status is Status.FAILED
    assert unset.message == "$NOT_SET_ANYWHERE is not set in the lab shell (did you export it?)"
    # the value compared is never shown (variables hold tokens as often as colours)
    assert check(ctx, "env", name="LAB_COLOUR", set=False).message == (
        "$LAB_COLOUR is set; it should be unset"
    )
    assert check(ctx, "env", name="LAB_COLOUR", equals="blue").message == (
        "$LAB_COLOUR differs from the expected value (4 characters, expected 4 characters)"
    )
    assert check(ctx, "env", name="LAB_COLOUR", matches="^b").message == (
        "$LAB_COLOUR does not match /^b/ (its value has 4 characters)"
    )
    assert check(ctx, "env", name="LAB_COLOUR").message == "$LAB_COLOUR is set"
    assert check(ctx, "env", name="EMPTY", not_empty=True).message == "$EMPTY is empty"
    for params in ({}, {"set": False}, {"equals": "blue"}, {"matches": "^b"}):
        outcome = check(ctx, "env", name="LAB_COLOUR", **params)
        assert "teal" not in outcome.message + (outcome.details or ""), params


# --------------------------------------------------------------------------- the registry


def test_decorator_registers_into_a_fresh_registry() -> None:
    registry = Registry()
    assert len(registry) == 0 and registry.names() == []

    @registry.verifier("zeta", needs=("cluster",), describe=lambda p: f"zeta {p['name']}")
    def zeta(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        """Checks zeta.

        More words that are not the summary.
        """
        return Outcome.passed("ok")

    @registry.verifier("alpha")
    def alpha(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        return Outcome.failed("no")

    assert registry.names() == ["alpha", "zeta"]
    assert [s.name for s in registry] == ["alpha", "zeta"]
    assert "zeta" in registry and "command" not in registry
    spec = registry.get("zeta")
    assert spec is not None
    assert spec.func is zeta
    assert spec.summary == "Checks zeta."
    assert spec.needs == frozenset({"cluster"})
    assert spec.params == {"type": "object"}
    assert spec.label({"name": "x"}) == "zeta x"
    assert spec.label({}) == "zeta", "a describe that fails falls back to the name"
    alpha_spec = registry.get("alpha")
    assert alpha_spec is not None and alpha_spec.summary == ""

    copy = registry.copy()

    @copy.verifier("alpha")
    def alpha2(ctx: CheckContext, params: dict[str, Any]) -> Outcome:
        return Outcome.passed("replaced")

    assert registry.get("alpha") is alpha_spec, "a copy must not change the original"
    replaced = copy.get("alpha")
    assert replaced is not None and replaced.func is alpha2
    # the module-level default registry is untouched by all of this
    assert "zeta" not in builtin_registry()


def test_builtin_registry_has_the_generic_verifiers() -> None:
    names = builtin_registry().names()
    assert {"command", "file", "env"} <= set(names)
    for spec in builtin_registry():
        assert isinstance(spec, VerifierSpec)
        assert spec.summary, f"{spec.name} has no one-line summary"


PLUGIN = '''
from labrunner.verify.outcome import Outcome

def register(registry):
    schema = {
        "type": "object",
        "properties": {"word": {"type": "string"}},
        "required": ["word"],
        "additionalProperties": False,
    }

    @registry.verifier("plugin_check", params=schema)
    def plugin_check(ctx, params):
        """A verifier from an outside package."""
        return Outcome.passed("plugin says " + params["word"])

def broken_register(registry):
    raise RuntimeError("cannot register")
'''


GOOD = "good = lr_fake_plugin:register\n"
BROKEN = "failing = lr_fake_plugin:broken_register\nmissing = lr_fake_plugin_nowhere:register\n"


def fake_distribution(site: Path, entries: str = GOOD + BROKEN) -> None:
    """An installed distribution (``*.dist-info``) with entry points in our group."""
    (site / "lr_fake_plugin.py").write_text(PLUGIN)
    info = site / "lr_fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lr-fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entries}")


def test_entry_points_from_a_fake_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.from_entry_points()
    with pytest.raises(VerifierUnavailable) as raised:
        registry.load_all()
    message = str(raised.value)
    assert "verifier plug-in 'failing' failed to register: cannot register" in message
    assert "verifier plug-in 'missing' (lr_fake_plugin_nowhere:register) failed to load" in message
    spec = registry.get("plugin_check")
    assert spec is not None and spec.summary == "A verifier from an outside package."
    assert "pods_ready" in registry.names(), "built-ins come from the same group"


def test_entry_points_with_a_monkeypatched_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_entry_points(*, group: str) -> list[metadata.EntryPoint]:
        seen.append(group)
        return [metadata.EntryPoint("mod", "json", group)]  # a module: nothing to call

    monkeypatch.setattr(registry_module.metadata, "entry_points", fake_entry_points)
    registry = Registry.from_entry_points(group="labrunner.other")
    registry.load_all()
    assert seen == ["labrunner.other"]
    assert len(registry) == 0


def test_a_verifier_entry_point_that_fails_to_import_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_entry_points(*, group: str) -> list[metadata.EntryPoint]:
        return [
            metadata.EntryPoint("command", "labrunner.verify.generic:command", group),
            metadata.EntryPoint("pods_ready", "labrunner.verify.no_such_module:pods_ready", group),
            metadata.EntryPoint("renamed", "labrunner.verify.generic:file", group),
        ]

    monkeypatch.setattr(registry_module.metadata, "entry_points", fake_entry_points)
    registry = Registry.from_entry_points()
    command = registry.get("command")
    assert command is not None and command.name == "command", "a healthy entry still loads"
    with pytest.raises(VerifierUnavailable, match=r"'pods_ready' \(labrunner\.verify\.no_such"):
        registry.get("pods_ready")
    with pytest.raises(VerifierUnavailable, match="is the verifier 'file', not 'renamed'"):
        registry.get("renamed")


def test_every_built_in_verifier_is_one_entry_point_line() -> None:
    """Adding a verifier is its module plus one line in pyproject.toml: no other list."""
    import ast
    import tomllib

    package = Path(registry_module.__file__).parent
    declared = {}
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    if (
                        isinstance(deco, ast.Call)
                        and getattr(deco.func, "id", "") == "verifier"
                        and isinstance(deco.args[0], ast.Constant)
                    ):
                        declared[deco.args[0].value] = f"labrunner.verify.{path.stem}:{node.name}"
    pyproject = tomllib.loads((package.parent.parent / "pyproject.toml").read_text())
    listed = pyproject["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert listed == declared
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert declared.items() <= installed.items(), "reinstall: the installed metadata is stale"


def test_loading_a_lab_imports_only_the_verifiers_it_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "one.yaml").write_text(
        "apiVersion: labrunner/v1\nid: one\ntitle: One\nsteps:\n"
        "  - id: a\n    title: A\n    run: [echo]\n    check: [{command: {run: 'true'}}]\n"
    )
    code = (
        "import sys\n"
        "from labrunner.lab.loader import load_workshop\n"
        "from labrunner.verify.registry import builtin_registry\n"
        f"labs = __import__('pathlib').Path({str(tmp_path)!r})\n"
        "result = load_workshop(labs, builtin_registry())\n"
        "assert result.workshop is not None, result.problems\n"
        "print(sorted(m for m in sys.modules if m.startswith('labrunner.verify.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "labrunner.verify.generic" in out.stdout
    for heavy in ("kubernetes", "istio", "http", "tls", "requests", "certificates"):
        assert f"labrunner.verify.{heavy}'" not in out.stdout, out.stdout


def test_cli_uses_plugins_and_reports_broken_ones(tmp_path: Path, lab_file: Any) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site)
    path = lab_file(
        "plugin.yaml",
        "apiVersion: labrunner/v1\nid: plugin\ntitle: T\nsteps:\n"
        "  - id: one\n    title: One\n    run: [echo]\n"
        "    check: [{plugin_check: {word: hello}}]\n",
    )
    env = cli_env(PYTHONPATH=str(site))
    proc = run_cli("--labs", path.parent, "verify", env=env)
    assert_clean(proc, 2)
    assert "verifier plug-in 'failing' failed to register: cannot register" in proc.stderr
    assert "verifier plug-in 'missing' (lr_fake_plugin_nowhere:register)" in proc.stderr
    assert f"{path}:" in proc.stderr, "the problem names the lab file and line"
    bad = run_cli("validate", path.parent / "plugin.yaml", env=cli_env())
    assert_clean(bad, 2)
    assert "unknown verifier 'plugin_check'" in bad.stdout


def test_cli_runs_a_healthy_plugin(tmp_path: Path, lab_file: Any) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, GOOD)
    path = lab_file(
        "plugin.yaml",
        "apiVersion: labrunner/v1\nid: plugin\ntitle: T\nsteps:\n"
        "  - id: one\n    title: One\n    run: [echo]\n"
        "    check: [{plugin_check: {word: hello}}]\n",
    )
    proc = run_cli("--labs", path.parent, "verify", env=cli_env(PYTHONPATH=str(site)))
    assert_clean(proc, 0)
    assert "plugin says hello" in proc.stdout
    assert "plug-in" not in proc.stderr
