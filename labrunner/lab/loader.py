"""Turn lab files into frozen ``Lab`` objects, or into precise problems.

Validation happens once, here, at the boundary. A lab file is parsed with
line marks kept, checked against the format's JSON Schema, and each check's
parameters are checked against the verifier's own schema (from the
``labrunner.lab.catalog.Catalog`` the caller passes in), so a misspelt
parameter is caught by ``labrunner validate`` rather than by a learner an hour
into a workshop. Every problem reads ``file:line: step <id>: message``.
Problems come in two severities: errors stop a lab from loading; warnings
(a step without checks, a ``sleep`` where a check with ``within`` belongs)
are advice for authors.

Schema checks answer the common case, a valid file, with ``quickschema``;
``jsonschema`` is imported only to explain an instance that is not (or that
uses a schema keyword the quick check does not know), so a run of valid labs
never pays for it and every message stays the same.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from labrunner.cluster.guard import matches_everything
from labrunner.durations import format_duration, parse_duration
from labrunner.lab import expand
from labrunner.lab.catalog import EmptyCatalog, VerifierUnavailable
from labrunner.lab.locate import WORKSHOP_FILE, lab_files, workshop_root
from labrunner.lab.model import (
    DEFAULT_SERVICE_WITHIN,
    DEFAULT_TIMEOUT,
    DEFAULT_WITHIN,
    Check,
    Command,
    Expect,
    Import,
    Lab,
    RehearsePlan,
    Service,
    Step,
    Where,
    Workshop,
)
from labrunner.lab.problems import LabError, LoadResult, Problem
from labrunner.lab.quickschema import certainly_valid
from labrunner.lab.schema import CHECK_RESERVED, lab_schema, workshop_schema

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

    from labrunner.lab.catalog import Catalog, VerifierInfo
    from labrunner.lab.yamlsrc import Positions, Source

__all__ = [
    "LabError",
    "LoadResult",
    "Problem",
    "check_lab_file",
    "lab_files",
    "load_lab",
    "load_workshop",
]

# a cluster tool as a word, not part of a file name such as helm-values.yaml; only for
# a warning: whether a lab needs a cluster is declared, never guessed from words
CLUSTER_TOOLS = re.compile(r"(?<![\w.-])(kubectl|istioctl|helm)(?![\w.-])")
OWN_CREDENTIALS = re.compile(r"(?<![\w-])(--kubeconfig|--server|--token)(?=[=\s]|$)")
SETS_KUBECONFIG = re.compile(r"(?<![\w$])KUBECONFIG=")
PLACEHOLDER = re.compile(r"<(?:your|my)[-_ ][a-z-_ ]+>", re.IGNORECASE)
SLEEP = re.compile(r"(?<![\w-])sleep\s+\d")
WELL_KNOWN_ENV = frozenset(
    {"HOME", "PATH", "USER", "PWD", "SHELL", "KUBECONFIG", "TMPDIR", "LANG", "TERM", "HOSTNAME"}
)
ENGINE_ENV = frozenset({"LABRUNNER_WORKSHOP", "LABRUNNER_LAB", "LABRUNNER_STEP"})

_TYPE_WORDS = {
    "string": "text",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


# --------------------------------------------------------------------------- schema errors


@lru_cache(maxsize=4)
def _document_schema(kind: str) -> Mapping[str, Any]:
    return lab_schema(None) if kind == "lab" else workshop_schema()


@lru_cache(maxsize=4)
def _compiled(kind: str) -> Any:
    return _compile(_document_schema(kind))


_param_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _compile(schema: Mapping[str, Any]) -> Any:
    # lazy: importing jsonschema costs more than loading a workshop, and it is only
    # needed to explain an instance that quickschema could not call valid
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def _param_validator(spec: VerifierInfo) -> Any:
    cached = _param_validators.get(id(spec.params))
    if cached is None or cached[0] is not spec.params:
        cached = (spec.params, _compile(spec.params))
        _param_validators[id(spec.params)] = cached
    return cached[1]


def _label(path: Sequence[str | int]) -> str:
    parts: list[str] = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p + 1}]" if parts else f"item {p + 1}")
        else:
            parts.append(f".{p}" if parts else p)
    return "".join(parts) or "the document"


def _type_word(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _branch_errors(error: ValidationError) -> list[ValidationError]:
    """For anyOf/oneOf on a mapping or list, the errors of the branch of that type."""
    if not error.context:
        return []
    instance = error.instance
    want = (
        "object" if isinstance(instance, dict) else "array" if isinstance(instance, list) else None
    )
    if want is None:
        return []
    branches = error.schema.get(error.validator, [])
    for index, branch in enumerate(branches):
        if isinstance(branch, dict) and branch.get("type") == want:
            return [e for e in error.context if e.relative_schema_path[0] == index]
    return []


def _explain(error: ValidationError) -> list[tuple[tuple[str | int, ...], bool, str]]:
    """(path, points-at-key, message) for a schema error, in plain words."""
    path = tuple(error.absolute_path)
    name = _label(path)
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if validator in ("anyOf", "oneOf"):
        inner = _branch_errors(error)
        if inner:
            return [item for e in inner for item in _explain(e)]
        what = schema.get("description") or "one of the allowed forms"
        return [(path, False, f"{name} must be {what}, not {_short(error.instance)}")]
    if validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = (
            sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        )
        out = []
        for key in extra:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f" in {name}" if path else ""
            choices = f"; allowed: {', '.join(allowed)}" if not close and allowed else ""
            out.append(((*path, key), True, f"unknown key {key!r}{where}{hint}{choices}"))
        return out
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        key = missing[0] if missing else error.message
        where = f" in {name}" if path else ""
        return [(path, False, f"missing required key {key!r}{where}")]
    if validator == "type":
        expected = schema.get("type")
        words = (
            " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected)
            if isinstance(expected, list)
            else _TYPE_WORDS.get(str(expected), str(expected))
        )
        return [(path, False, f"{name} must be {words}, not {_type_word(error.instance)}")]
    if validator == "pattern":
        what = schema.get("description")
        if what:
            return [(path, False, f"{_short(error.instance)} is not valid for {name}: use {what}")]
        return [(path, False, f"{_short(error.instance)} does not match {schema.get('pattern')}")]
    if validator in ("const", "enum"):
        allowed_values = [schema["const"]] if validator == "const" else schema.get("enum", [])
        options = ", ".join(str(v) for v in allowed_values)
        return [(path, False, f"{name} must be {options}, not {_short(error.instance)}")]
    if validator == "minItems":
        return [(path, False, f"{name} needs at least {schema.get('minItems')} item(s)")]
    if validator == "minProperties":
        return [(path, False, f"{name} must not be empty")]
    if validator == "minLength":
        return [(path, False, f"{name} must not be empty")]
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [(path, False, f"{name}: {error.message}")]
    if validator == "propertyNames":
        return [(path, False, f"{name}: {_short(error.instance)} is not a valid name")]
    return [(path, False, f"{name}: {error.message}")]


# --------------------------------------------------------------------------- the lab checker


class _LabChecker:
    """Validates one parsed lab document and builds the ``Lab``."""

    def __init__(
        self, source: Source, registry: Catalog, known_env: frozenset[str] = frozenset()
    ) -> None:
        self.known_env = known_env
        self.source = source
        self.data: Any = source.data
        self.pos: Positions = source.positions
        self.registry = registry
        self.problems: list[Problem] = []
        self.tool_mentions: list[tuple[tuple[str | int, ...], str]] = []
        """Commands that mention a cluster tool: where, and the tool (for the needs warning)."""

    # -- reporting

    def _step_id(self, path: Sequence[str | int]) -> str | None:
        if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
            steps = self.data.get("steps") if isinstance(self.data, dict) else None
            if isinstance(steps, list) and path[1] < len(steps):
                step = steps[path[1]]
                if isinstance(step, dict) and isinstance(step.get("id"), str):
                    return str(step["id"])
            return f"#{path[1] + 1}"
        return None

    def problem(
        self,
        path: Sequence[str | int],
        message: str,
        *,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        line = self.pos.line(tuple(path), key=key)
        self.problems.append(
            Problem(self.source.path, line, message, self._step_id(path), severity)
        )

    def where(self, path: Sequence[str | int]) -> Where:
        return Where(self.source.path, self.pos.line(tuple(path), key=True))

    def schema_problems(
        self,
        schema: Mapping[str, Any],
        validator: Callable[[], Any],
        instance: Any,
        base: tuple[str | int, ...] = (),
        prefix: str = "",
    ) -> bool:
        """Report ``instance``'s schema errors; True when there were any.

        A quick check answers for the common case, a valid instance; only an
        instance it cannot call valid goes to ``jsonschema`` (``validator()``)
        for the precise errors.
        """
        if certainly_valid(schema, instance):
            return False
        found = False
        errors = validator().iter_errors(instance)
        for error in sorted(errors, key=lambda e: list(map(str, e.path))):
            for rel, on_key, message in _explain(error):
                found = True
                self.problem((*base, *rel), prefix + message, key=on_key)
        return found

    # -- building

    def check(self) -> Lab | None:
        if not isinstance(self.data, dict):
            self.problem((), "a lab file must be a mapping with apiVersion, id, title and steps")
            return None
        if self.schema_problems(_document_schema("lab"), lambda: _compiled("lab"), self.data):
            return None
        data = self.data
        default_timeout = DEFAULT_TIMEOUT
        lab_env = {k: _env_value(v) for k, v in (data.get("env") or {}).items()}
        imports = self._imports(data.get("import") or {})
        steps = []
        seen: dict[str, int] = {}
        known_vars = set(lab_env) | set(self.known_env) | {n for i in imports for n in i.names}
        visible_at: dict[str, set[str]] = {}
        for index, raw in enumerate(data["steps"]):
            path: tuple[str | int, ...] = ("steps", index)
            if raw["id"] in seen:
                self.problem(
                    (*path, "id"),
                    f"duplicate step id {raw['id']!r} (first used on line {seen[raw['id']]})",
                )
            else:
                seen[raw["id"]] = self.pos.line((*path, "id"))
            step = self._step(raw, path, default_timeout, known_vars)
            if step is not None:
                steps.append(step)
                known_vars.update(step.exports)
                visible_at[step.id] = set(known_vars)
        services = self._services(data.get("services") or [], default_timeout, visible_at)
        setup = self._commands(data.get("setup") or [], ("setup",), default_timeout)
        cleanup = self._commands(data.get("cleanup") or [], ("cleanup",), default_timeout)
        for name in ("setup", "cleanup"):
            for i, cmd in enumerate(data.get(name) or []):
                self._lint_command(cmd, (name, i))
        if any(p.is_error for p in self.problems):
            return None
        # declared, never guessed: `needs: [cluster]` (the lab's or a step's) or a check
        # whose verifier needs a cluster; words in commands decide nothing
        needs = set(data.get("needs") or [])
        for step in steps:
            needs |= {n for n in step.needs if n == "cluster"}
        for service in services:
            for check in service.ready:
                spec = self._spec(check.verifier)
                if spec is not None:
                    needs |= {n for n in spec.needs if n == "cluster"}
        if "cluster" not in needs:
            for where, tool in self.tool_mentions:
                self.problem(
                    where,
                    f"the command runs {tool}, but the lab does not declare `needs: [cluster]` "
                    "(nor has a Kubernetes check): it runs with a kubeconfig that reaches no "
                    "cluster; add `needs: [cluster]` to the lab",
                    severity="warning",
                )
        return Lab(
            id=data["id"],
            title=data["title"],
            path=self.source.path,
            steps=tuple(steps),
            summary=data.get("summary", ""),
            requires=tuple(data.get("requires") or ()),
            needs=frozenset(needs),
            env=MappingProxyType(lab_env),
            setup=setup or (),
            cleanup=cleanup or (),
            services=services,
            imports=imports,
            namespaces=tuple(data.get("namespaces") or ()),
            where=self.where(()),
        )

    def _imports(self, raw: dict[str, list[str]]) -> tuple[Import, ...]:
        """The ``import`` mapping; which labs and names are valid is checked workshop-wide
        (a lab may import from one it requires only through another)."""
        out = []
        for lab_id, names in raw.items():
            if lab_id == self.data.get("id"):
                self.problem(("import", lab_id), "a lab cannot import from itself", key=True)
                continue
            out.append(Import(lab_id, tuple(names), self.where(("import", lab_id))))
        return tuple(out)

    def _services(
        self,
        raw: list[dict[str, Any]],
        default_timeout: float,
        visible_at: Mapping[str, set[str]],
    ) -> tuple[Service, ...]:
        services = []
        seen: dict[str, int] = {}
        for index, item in enumerate(raw):
            path: tuple[str | int, ...] = ("services", index)
            if item["id"] in seen:
                self.problem(
                    (*path, "id"),
                    f"duplicate service id {item['id']!r} (first used on line {seen[item['id']]})",
                )
                continue
            seen[item["id"]] = self.pos.line((*path, "id"))
            if item["step"] not in visible_at:
                steps = ", ".join(visible_at) or "none"
                close = difflib.get_close_matches(item["step"], list(visible_at), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; steps: {steps}"
                self.problem(
                    (*path, "step"), f"service {item['id']!r}: no step {item['step']!r}{hint}"
                )
                continue
            within = parse_duration(item["within"]) if "within" in item else DEFAULT_SERVICE_WITHIN
            visible = visible_at[item["step"]] | WELL_KNOWN_ENV | ENGINE_ENV
            checks = []
            for j, check_raw in enumerate(item["ready"]):
                check = self._check(check_raw, (*path, "ready", j), within, visible)
                if check is not None:
                    checks.append(check)
            self._lint_command(item["start"], (*path, "start"))
            (start,) = self._commands([item["start"]], (*path, "start"), default_timeout)
            stop = None
            if "stop" in item:
                (stop,) = self._commands([item["stop"]], (*path, "stop"), 60.0)
            services.append(
                Service(
                    id=item["id"],
                    step=item["step"],
                    start=start,
                    ready=tuple(checks),
                    title=item.get("title", ""),
                    stop=stop,
                    within=within,
                    where=self.where(path),
                )
            )
        return tuple(services)

    def _commands(
        self, raw: list[Any], path: tuple[str | int, ...], default_timeout: float
    ) -> tuple[Command, ...]:
        commands = []
        for index, item in enumerate(raw):
            where = self.where((*path, index))
            if isinstance(item, str):
                commands.append(Command(cmd=item, timeout=default_timeout, where=where))
                continue
            expects = []
            for j, exp in enumerate(item.get("expect") or []):
                try:
                    re.compile(exp["prompt"])
                except re.error as exc:
                    self.problem(
                        (*path, index, "expect", j, "prompt"),
                        f"prompt {exp['prompt']!r} is not a valid regular expression: {exc}",
                    )
                expects.append(Expect(exp["prompt"], exp["send"], bool(exp.get("secret", False))))
            timeout = default_timeout
            if "timeout" in item:
                timeout = parse_duration(item["timeout"])
                if timeout <= 0:
                    self.problem((*path, index, "timeout"), "timeout must be more than 0")
            commands.append(
                Command(
                    cmd=item["cmd"],
                    timeout=timeout,
                    expect=tuple(expects),
                    allow_failure=bool(item.get("allow_failure", False)),
                    where=where,
                )
            )
        return tuple(commands)

    def _lint_cluster_use(self, text: str, path: tuple[str | int, ...]) -> None:
        """Note cluster tools (for the needs warning); warn on commands that pick their own
        cluster, which the context guard cannot protect."""
        tool = CLUSTER_TOOLS.search(text)
        if tool is None:
            return
        self.tool_mentions.append((path, tool.group(1)))
        own = OWN_CREDENTIALS.search(text)
        if own is not None:
            self.problem(
                path,
                f"the command passes its own {own.group(1)}: the context guard pins the "
                "kubeconfig, but cannot protect a cluster a command names itself",
                severity="warning",
            )
        if SETS_KUBECONFIG.search(text):
            self.problem(
                path,
                "the command sets KUBECONFIG itself: the context guard pins the kubeconfig, "
                "but cannot protect a cluster a command names itself",
                severity="warning",
            )

    def _lint_command(self, raw: Any, path: tuple[str | int, ...]) -> None:
        text = raw if isinstance(raw, str) else raw.get("cmd", "")
        self._lint_cluster_use(text, path)
        if PLACEHOLDER.search(text):
            self.problem(
                path,
                f"command contains a placeholder ({PLACEHOLDER.search(text).group(0)}) "  # type: ignore[union-attr]
                "that cannot run unattended; use ${VAR} from env",
                severity="warning",
            )
        if SLEEP.search(text):
            self.problem(
                path,
                "command sleeps; prefer a check with a `within` budget, which waits "
                "exactly as long as needed",
                severity="warning",
            )

    def _step(
        self,
        raw: dict[str, Any],
        path: tuple[str | int, ...],
        lab_timeout: float,
        known_vars: set[str],
    ) -> Step | None:
        timeout = parse_duration(raw["timeout"]) if "timeout" in raw else lab_timeout
        within = parse_duration(raw["within"]) if "within" in raw else DEFAULT_WITHIN
        run = self._commands(raw.get("run") or [], (*path, "run"), timeout)
        solution = self._commands(raw.get("solution") or [], (*path, "solution"), timeout)
        for name in ("run", "solution"):
            for i, cmd in enumerate(raw.get(name) or []):
                self._lint_command(cmd, (*path, name, i))
        checks = []
        needs = set(raw.get("needs") or [])
        visible = known_vars | set(raw.get("exports") or []) | WELL_KNOWN_ENV | ENGINE_ENV
        for j, item in enumerate(raw.get("check") or []):
            check = self._check(item, (*path, "check", j), within, visible)
            if check is not None:
                checks.append(check)
                spec = self._spec(check.verifier)
                if spec is not None:
                    needs |= spec.needs
        if not raw.get("check"):
            self.problem(
                path,
                "step has no checks, so it cannot tell whether the learner succeeded",
                severity="warning",
            )
        if not raw.get("run") and not raw.get("solution") and raw.get("check"):
            self.problem(
                path,
                "step has checks but neither run nor solution; `verify` can only pass it "
                "if the checks already hold",
                severity="warning",
            )
        return Step(
            id=raw["id"],
            title=raw["title"],
            body=raw.get("body", ""),
            run=run,
            check=tuple(checks),
            exports=tuple(raw.get("exports") or ()),
            within=within,
            consecutive=int(raw.get("consecutive", 1)),
            hints=tuple(raw.get("hints") or ()),
            solution=solution,
            needs=frozenset(needs),
            recheck=bool(raw.get("recheck", True)),
            where=self.where(path),
        )

    def _spec(self, name: str) -> VerifierInfo | None:
        """The verifier ``name`` (already loaded by ``_check``, so this cannot fail)."""
        try:
            return self.registry.get(name)
        except VerifierUnavailable:
            return None

    def _check(
        self,
        item: dict[str, Any],
        path: tuple[str | int, ...],
        within: float,
        visible: set[str],
    ) -> Check | None:
        names = [k for k in item if k not in CHECK_RESERVED]
        if len(names) != 1:
            if not names:
                self.problem(path, "check names no verifier (e.g. `- file: {path: x}`)")
            else:
                self.problem(
                    path,
                    f"check names {len(names)} verifiers ({', '.join(names)}); "
                    "write each as its own list item",
                )
            return None
        name = names[0]
        try:
            spec = self.registry.get(name)
        except VerifierUnavailable as exc:
            self.problem((*path, name), f"verifier {name!r} cannot be used: {exc}", key=True)
            return None
        if spec is None:
            close = difflib.get_close_matches(name, self.registry.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = "" if close else f"; known verifiers: {', '.join(self.registry.names())}"
            self.problem((*path, name), f"unknown verifier {name!r}{hint}{known}", key=True)
            return None
        params = item[name]
        if params is None:
            params = {}
        if not isinstance(params, dict):
            self.problem(
                (*path, name),
                f"parameters of {name!r} must be a mapping, not {_type_word(params)}",
            )
            return None
        if self.schema_problems(
            spec.params, lambda: _param_validator(spec), params, (*path, name), f"{name}: "
        ):
            return None
        if spec.lint is not None:
            for found in spec.lint(params):
                self.problem((*path, name, *found.path), f"{name}: {found.message}")
        if name == "command" and isinstance(params.get("run"), str):
            self._lint_cluster_use(params["run"], (*path, name, "run"))
        if "timeout" in params:
            try:
                limit = parse_duration(params["timeout"])
            except ValueError:
                limit = 0.0
            if limit > within:
                self.problem(
                    (*path, name, "timeout"),
                    f"{name}: timeout {format_duration(limit)} is longer than the step's "
                    f"`within` budget {format_duration(within)}, so the check could never "
                    "finish in time; raise `within` or lower the timeout",
                )
        shell = spec.shell_params
        for var, has_default in expand.references(
            {k: v for k, v in params.items() if k not in shell}
        ):
            if var not in visible and not has_default:
                self.problem(
                    (*path, name),
                    f"{name}: ${{{var}}} is not set by the lab's env or an earlier step's "
                    "exports; it must come from the learner's environment",
                    severity="warning",
                )
        return Check(
            verifier=name,
            params=MappingProxyType(dict(params)),
            title=item.get("title", ""),
            hint=item.get("hint", ""),
            where=self.where(path),
        )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- public API


def check_lab_file(
    path: Path,
    registry: Catalog,
    *,
    known_env: frozenset[str] = frozenset(),
) -> tuple[Lab | None, list[Problem]]:
    """Load one lab file; returns the lab (None on errors) and every problem.

    ``known_env`` names variables the workshop sets for every lab, so checks
    may use them without a warning.
    """
    # lazy, here and below: the YAML parser is needed only when a file is read, and
    # a run answered from the compiled-lab cache reads none
    from labrunner.lab.yamlsrc import SourceError, load_file

    try:
        sources = load_file(path)
    except SourceError as exc:
        return None, [Problem(path, exc.line, exc.message)]
    if not sources:
        return None, [Problem(path, 1, "empty file; a lab needs apiVersion, id, title and steps")]
    if len(sources) > 1:
        line = sources[1].positions.line(())
        return None, [Problem(path, line, "one lab per file; this file has several documents")]
    checker = _LabChecker(sources[0], registry, known_env)
    lab = checker.check()
    return lab, checker.problems


def load_lab(path: Path, registry: Catalog) -> Lab:
    """Load one lab file or raise LabError with every problem."""
    lab, problems = check_lab_file(path, registry)
    if lab is None:
        raise LabError([p for p in problems if p.is_error] or problems)
    return lab


@dataclass(frozen=True)
class _WorkshopFile:
    """What ``workshop.yaml`` says: the title, the shared env and the labs' order."""

    title: str
    env: dict[str, str]
    labs: tuple[str, ...]
    contexts: tuple[str, ...]
    workdir: str | None
    rehearse: RehearsePlan
    kept_lines: dict[str, int]


def _workshop_file(path: Path, problems: list[Problem]) -> _WorkshopFile | None:
    # lazy: the YAML reader loads only when files are read, not from the cache
    from labrunner.lab.yamlsrc import SourceError, load_file

    try:
        sources = load_file(path)
    except SourceError as exc:
        problems.append(Problem(path, exc.line, exc.message))
        return None
    if len(sources) != 1 or not isinstance(sources[0].data, dict):
        problems.append(Problem(path, 1, "workshop.yaml must be one mapping"))
        return None
    checker = _LabChecker(sources[0], EmptyCatalog())
    if checker.schema_problems(
        _document_schema("workshop"), lambda: _compiled("workshop"), sources[0].data
    ):
        problems.extend(checker.problems)
        return None
    data = sources[0].data
    for index, pattern in enumerate(data.get("contexts") or ()):
        if isinstance(pattern, str) and matches_everything(pattern):
            checker.problem(
                ("contexts", index),
                f"contexts: {pattern!r} matches every context name, so the context guard would "
                "act on any cluster, production included; name your workshop clusters "
                "instead (e.g. '*istio-workshop*')",
                severity="warning",
            )
    problems.extend(checker.problems)
    rehearse = data.get("rehearse") or {}
    kept = dict(rehearse.get("kept") or {})
    return _WorkshopFile(
        title=data.get("title", "Workshop"),
        env={k: _env_value(v) for k, v in (data.get("env") or {}).items()},
        labs=tuple(data.get("labs") or ()),
        contexts=tuple(data.get("contexts") or ()),
        workdir=data.get("workdir"),
        rehearse=RehearsePlan(
            crds=tuple(rehearse.get("crds") or ()),
            preload=tuple(rehearse.get("preload") or ()),
            files=tuple(rehearse.get("files") or ()),
            get=str(rehearse.get("get") or ""),
            kept=MappingProxyType(kept),
        ),
        kept_lines={
            key: sources[0].positions.line(("rehearse", "kept", key), key=True) for key in kept
        },
    )


def load_workshop(
    labs_dir: Path,
    registry: Catalog,
    *,
    files: Iterable[Path] | None = None,
) -> LoadResult:
    """Load every lab of a workshop directory (or just ``files``) and check them together.

    The result's workshop is None when there are errors; ``problems`` lists
    every error and warning in file and line order.
    """
    labs_dir = labs_dir.resolve()
    problems: list[Problem] = []
    if not labs_dir.is_dir():
        return LoadResult(None, [Problem(labs_dir, 0, "no such labs directory")])
    meta = None
    workshop_path = labs_dir / WORKSHOP_FILE
    if workshop_path.exists():
        meta = _workshop_file(workshop_path, problems)
    paths = [p.resolve() for p in files] if files is not None else lab_files(labs_dir)
    if meta and meta.labs and files is None:
        ordered = []
        for name in meta.labs:
            candidate = (labs_dir / name).resolve()
            if not candidate.is_file():
                problems.append(
                    Problem(workshop_path, 1, f"labs: {name!r} is not a file in {labs_dir}")
                )
                continue
            ordered.append(candidate)
        paths = ordered + [p for p in paths if p not in ordered]
    labs: list[Lab] = []
    for path in paths:
        lab, found = check_lab_file(
            path, registry, known_env=frozenset(meta.env) if meta else frozenset()
        )
        problems.extend(found)
        if lab is not None:
            labs.append(lab)
    problems.extend(
        cross_lab_problems(
            labs, kept=(workshop_path, meta) if meta is not None and files is None else None
        )
    )
    problems.sort(key=lambda p: (str(p.file), p.line))
    if any(p.is_error for p in problems):
        return LoadResult(None, problems)
    ordered_labs = _topological(labs)
    root = workshop_root(labs_dir, meta.workdir if meta else None)
    workshop = Workshop(
        root=root,
        labs_dir=labs_dir,
        labs=tuple(ordered_labs),
        title=meta.title if meta else labs_dir.name,
        env=MappingProxyType(meta.env if meta else {}),
        context_patterns=meta.contexts if meta else (),
        rehearse=meta.rehearse if meta else RehearsePlan(),
    )
    return LoadResult(workshop, problems)


def cross_lab_problems(
    labs: Sequence[Lab], *, kept: tuple[Path, _WorkshopFile] | None = None
) -> list[Problem]:
    """What is wrong with ``labs`` taken together: a lab id used twice, a requirement
    that is not a lab here, an import no required lab exports, requires that form a
    cycle (and, given the workshop file, ``rehearse.kept`` entries naming no step).

    ``load_workshop`` asks this of every lab it loads, and the TUI of the workshop
    with one lab edited, so a reload accepts only what a fresh start would.
    """
    problems: list[Problem] = []
    by_id: dict[str, Lab] = {}
    for lab in labs:
        if lab.id in by_id:
            problems.append(
                Problem(
                    lab.path,
                    lab.where.line if lab.where else 1,
                    f"lab id {lab.id!r} is also used by {by_id[lab.id].path.name}",
                )
            )
        else:
            by_id[lab.id] = lab
    for lab in labs:
        for req in lab.requires:
            if req not in by_id:
                problems.append(
                    Problem(
                        lab.path,
                        _requires_line(lab),
                        f"requires {req!r}, {_not_a_lab(req, by_id)}",
                    )
                )
    for lab in labs:
        problems.extend(_import_problems(lab, by_id))
    if kept is not None:  # a subset of files cannot tell
        problems.extend(_unknown_kept(kept[0], kept[1], by_id))
    cycle = _find_cycle(labs)
    if cycle:
        first = next(lab for lab in labs if lab.id == cycle[0])
        problems.append(
            Problem(
                first.path, _requires_line(first), "requires form a cycle: " + " → ".join(cycle)
            )
        )
    return problems


def _required(lab: Lab, by_id: Mapping[str, Lab]) -> set[str]:
    """Every lab ``lab`` requires, directly or through the labs it requires."""
    seen: set[str] = set()
    todo = list(lab.requires)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in by_id:
            todo.extend(by_id[current].requires)
    return seen


def _not_a_lab(lab_id: str, by_id: Mapping[str, Lab]) -> str:
    """The end of a message about ``lab_id``, which names no lab here."""
    close = difflib.get_close_matches(lab_id, list(by_id), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"which is not a lab here{hint}"


def _import_problems(lab: Lab, by_id: Mapping[str, Lab]) -> list[Problem]:
    """What is wrong with ``lab``'s imports, seen across the workshop."""
    problems = []
    for item in lab.imports:
        where = item.where or Where(lab.path, 1)
        source = by_id.get(item.lab)
        if source is None and item.lab in lab.requires:
            continue  # reported as an unknown requirement already
        if source is None:
            why = f"imports from {item.lab!r}, {_not_a_lab(item.lab, by_id)}"
            problems.append(Problem(where.file, where.line, why))
            continue
        if item.lab not in _required(lab, by_id):
            problems.append(
                Problem(
                    where.file,
                    where.line,
                    f"imports from {item.lab!r}, which it does not require, directly or through "
                    "the labs it requires; a lab imports only from labs done before it "
                    f"(add {item.lab!r} to requires)",
                )
            )
            continue
        exported = {name for step in source.steps for name in step.exports}
        for name in item.names:
            if name not in exported:
                offered = ", ".join(sorted(exported)) or "nothing"
                problems.append(
                    Problem(
                        where.file,
                        where.line,
                        f"imports {name} from {item.lab!r}, but no step of that lab exports it "
                        f"(it exports: {offered})",
                    )
                )
    return problems


def _unknown_kept(path: Path, meta: _WorkshopFile, by_id: Mapping[str, Lab]) -> list[Problem]:
    """``rehearse.kept`` entries that name no step of the workshop."""
    problems = []
    for key in meta.rehearse.kept:
        lab_id, _, step_id = key.partition("/")
        lab = by_id.get(lab_id)
        if lab is None:
            why = f"no lab {lab_id!r}"
        elif step_id not in {s.id for s in lab.steps}:
            why = f"lab {lab_id} has no step {step_id!r}"
        else:
            continue
        problems.append(Problem(path, meta.kept_lines.get(key, 1), f"rehearse.kept: {why}"))
    return problems


def _requires_line(lab: Lab) -> int:
    # lazy: the YAML reader loads only when files are read, not from the cache
    from labrunner.lab.yamlsrc import SourceError, load_file

    try:
        sources = load_file(lab.path)
        return sources[0].positions.line(("requires",), key=True)
    except (SourceError, IndexError):
        return lab.where.line if lab.where else 1


def _find_cycle(labs: Sequence[Lab]) -> list[str]:
    graph = {lab.id: [r for r in lab.requires] for lab in labs}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for lab in labs:
        if lab.id not in state:
            found = visit(lab.id)
            if found:
                return found
    return []


def _topological(labs: Sequence[Lab]) -> list[Lab]:
    """Labs in file order, except that a lab always comes after what it requires."""
    placed: set[str] = set()
    out: list[Lab] = []
    pending = list(labs)
    while pending:
        for lab in pending:
            if all(r in placed or r not in {x.id for x in labs} for r in lab.requires):
                out.append(lab)
                placed.add(lab.id)
                pending.remove(lab)
                break
        else:  # a cycle; load_workshop reports it, keep file order
            out.extend(pending)
            break
    return out
