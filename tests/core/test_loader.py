"""The lab loader: bad input gets one precise ``file:line: step <id>: message`` each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labrunner.durations import SCHEMA as DURATION
from labrunner.lab.loader import (
    LabError,
    check_lab_file,
    load_lab,
    load_workshop,
)
from labrunner.lab.model import Lab
from labrunner.verify.outcome import Outcome
from labrunner.verify.registry import Registry, builtin_registry

from .conftest import EXAMPLES

LabFile = Callable[[str, str], Path]

HEAD = "apiVersion: labrunner/v1\nid: {id}\ntitle: A lab\n"


def errors_of(path: Path, registry: Registry | None = None) -> list[str]:
    """Every error of one lab file, as the CLI prints it."""
    lab, problems = check_lab_file(path.resolve(), registry or builtin_registry())
    assert lab is None
    return [str(p) for p in sorted(problems, key=lambda p: p.line) if p.is_error]


def lab_text(body: str, lab_id: str = "a-lab") -> str:
    return HEAD.format(id=lab_id) + body


# --------------------------------------------------------------------------- exact lines


def test_malformed_yaml_points_at_the_unclosed_quote(lab_file: LabFile) -> None:
    path = lab_file(
        "broken.yaml",
        lab_text('steps:\n  - id: one\n    title: "never closed\n    run: [echo hi]\n'),
    )
    assert errors_of(path) == [
        f"{path.resolve()}:6: invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar that starts on line 6)"
    ]


def test_malformed_yaml_tab_indentation(lab_file: LabFile) -> None:
    path = lab_file("tab.yaml", lab_text("steps:\n\t- id: one\n"))
    assert errors_of(path) == [
        f"{path.resolve()}:5: invalid YAML: found character that cannot start any token"
    ]


def test_wrong_types_each_get_their_own_line(lab_file: LabFile) -> None:
    path = lab_file(
        "types.yaml",
        lab_text(
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    within: soon\n"
            '    consecutive: "two"\n'
            "    run: echo hi\n"
        ),
    )
    where = path.resolve()
    assert errors_of(path) == [
        f"{where}:7: step one: steps[1].within must be {DURATION['description']}, not 'soon'",
        f"{where}:8: step one: steps[1].consecutive must be a whole number, not text",
        f"{where}:9: step one: steps[1].run must be a list, not text",
    ]


def test_wrong_parameter_types_name_the_verifier(lab_file: LabFile) -> None:
    path = lab_file(
        "params.yaml",
        lab_text(
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    run: [echo hi]\n"
            "    check:\n"
            "      - file:\n"
            "          path: x\n"
            "          exists: 'yes'\n"
            "      - command: {run: true}\n"
            "      - env: HOME\n"
            "      - file: {path: x, mode: 644}\n"
        ),
    )
    where = path.resolve()
    assert errors_of(path) == [
        f"{where}:11: step one: file: exists must be true or false, not text",
        f"{where}:12: step one: command: run must be text, not true/false",
        f"{where}:13: step one: parameters of 'env' must be a mapping, not text",
        f"{where}:14: step one: file: mode must be text, not a whole number",
    ]


def test_unknown_verifier_suggests_the_closest_name(lab_file: LabFile) -> None:
    path = lab_file(
        "verifier.yaml",
        lab_text(
            "steps:\n"
            "  - id: first\n"
            "    title: One\n"
            "    run: [echo hi]\n"
            "    check:\n"
            "      - comand: {run: 'true'}\n"
        ),
    )
    assert errors_of(path) == [
        f"{path.resolve()}:9: step first: unknown verifier 'comand' (did you mean 'command'?)"
    ]


def test_unknown_verifier_without_a_close_name_lists_the_known_ones(lab_file: LabFile) -> None:
    path = lab_file(
        "verifier.yaml",
        lab_text(
            "steps:\n"
            "  - id: first\n"
            "    title: One\n"
            "    run: [echo hi]\n"
            "    check:\n"
            "      - zzzzzz: {}\n"
        ),
    )
    (error,) = errors_of(path)
    assert error.startswith(f"{path.resolve()}:9: step first: unknown verifier 'zzzzzz'; ")
    assert "known verifiers: " in error and "command" in error and "file" in error


def test_duplicate_step_ids_name_the_first_use(lab_file: LabFile) -> None:
    step = "  - id: same\n    title: Same\n    run: [echo]\n    check: [{env: {name: HOME}}]\n"
    path = lab_file("dup.yaml", lab_text("steps:\n" + step + step))
    assert errors_of(path) == [
        f"{path.resolve()}:9: step same: duplicate step id 'same' (first used on line 5)"
    ]


def test_unknown_keys_at_every_level(lab_file: LabFile) -> None:
    path = lab_file(
        "keys.yaml",
        lab_text(
            "colour: blue\n"
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    runn: [echo hi]\n"
            "    check:\n"
            "      - command:\n"
            "          run: 'true'\n"
            "          stdot: {contains: x}\n"
        ),
    )
    where = path.resolve()
    assert errors_of(path) == [
        f"{where}:4: unknown key 'colour'; allowed: apiVersion, cleanup, env, id, import, "
        "kind, namespaces, needs, requires, services, setup, steps, summary, title",
        f"{where}:8: step one: unknown key 'runn' in steps[1] (did you mean 'run'?)",
    ]
    # the shape of the lab is fixed, so the verifier's own parameters are checked too
    path.write_text(path.read_text().replace("colour: blue\n", "").replace("runn:", "run:"))
    assert errors_of(path) == [
        f"{where}:11: step one: command: unknown key 'stdot' (did you mean 'stdout'?)"
    ]


def test_check_timeout_longer_than_within(lab_file: LabFile) -> None:
    path = lab_file(
        "timeout.yaml",
        lab_text(
            "steps:\n"
            "  - id: slow\n"
            "    title: Slow\n"
            "    run: [echo hi]\n"
            "    within: 5s\n"
            "    check:\n"
            "      - command:\n"
            "          run: 'true'\n"
            "          timeout: 1m\n"
        ),
    )
    assert errors_of(path) == [
        f"{path.resolve()}:12: step slow: command: timeout 1m00s is longer than the step's "
        "`within` budget 5.0s, so the check could never finish in time; raise `within` or "
        "lower the timeout"
    ]


def test_a_step_without_id_is_named_by_position(lab_file: LabFile) -> None:
    path = lab_file(
        "noid.yaml",
        lab_text("steps:\n  - id: one\n    title: One\n  - title: Two\n"),
    )
    assert errors_of(path) == [
        f"{path.resolve()}:7: step #2: missing required key 'id' in steps[2]"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty file; a lab needs apiVersion, id, title and steps"),
        ("- a\n- b\n", "a lab file must be a mapping with apiVersion, id, title and steps"),
        ("apiVersion: labrunner/v2\nid: x\ntitle: X\nsteps: []\n", None),
        ("id: a\nid: b\n", "duplicate key 'id'"),
        ("a: " + "[" * 100 + "]" * 100 + "\n", "nesting deeper than 64 levels"),
        ("x: !!python/object:os.system echo\n", "unsupported YAML tag"),
    ],
)
def test_hostile_or_odd_documents(lab_file: LabFile, body: str, message: str | None) -> None:
    path = lab_file("odd.yaml", body)
    errors = errors_of(path)
    assert errors
    if message is not None:
        assert message in errors[0]
    assert all(e.startswith(f"{path.resolve()}:") for e in errors)


def test_alias_bomb_is_refused_quickly(lab_file: LabFile) -> None:
    levels = ["a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    path = lab_file("bomb.yaml", "\n".join(levels) + "\n")
    (error,) = errors_of(path)
    assert "an alias bomb?" in error


def test_bytes_that_are_not_utf8(lab_file: LabFile) -> None:
    path = lab_file("latin1.yaml", "")
    path.write_bytes(b"apiVersion: labrunner/v1\nid: x\ntitle: caf\xe9\n")
    assert errors_of(path) == [
        f"{path.resolve()}:3: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_missing_file(tmp_path: Path) -> None:
    lab, problems = check_lab_file(tmp_path / "nope.yaml", builtin_registry())
    assert lab is None
    assert [str(p) for p in problems] == [f"{tmp_path / 'nope.yaml'}: no such file"]
    with pytest.raises(LabError, match="no such file"):
        load_lab(tmp_path / "nope.yaml", builtin_registry())


def test_missing_labs_directory(tmp_path: Path) -> None:
    result = load_workshop(tmp_path / "nowhere", builtin_registry())
    assert result.workshop is None
    assert [p.message for p in result.errors] == ["no such labs directory"]


# --------------------------------------------------------------------------- across files


def simple_lab(lab_id: str, requires: list[str]) -> str:
    return lab_text(
        f"requires: {requires}\n"
        "steps:\n  - id: one\n    title: One\n    run: [echo]\n    check: [{env: {name: HOME}}]\n",
        lab_id,
    )


def test_requires_a_missing_lab(lab_file: LabFile) -> None:
    lab_file("base.yaml", simple_lab("base", []))
    path = lab_file("next.yaml", simple_lab("next", ["bsae"]))
    result = load_workshop(path.parent, builtin_registry())
    assert result.workshop is None
    assert [str(p) for p in result.errors] == [
        f"{path.resolve()}:4: requires 'bsae', which is not a lab here (did you mean 'base'?)"
    ]


def test_requires_cycle(lab_file: LabFile) -> None:
    first = lab_file("a.yaml", simple_lab("lab-a", ["lab-c"]))
    lab_file("b.yaml", simple_lab("lab-b", ["lab-a"]))
    lab_file("c.yaml", simple_lab("lab-c", ["lab-b"]))
    result = load_workshop(first.parent, builtin_registry())
    assert result.workshop is None
    assert [str(p) for p in result.errors] == [
        f"{first.resolve()}:4: requires form a cycle: lab-a → lab-c → lab-b → lab-a"
    ]


def test_a_lab_requiring_itself_is_a_cycle(lab_file: LabFile) -> None:
    path = lab_file("self.yaml", simple_lab("selfish", ["selfish"]))
    result = load_workshop(path.parent, builtin_registry())
    assert [p.message for p in result.errors] == ["requires form a cycle: selfish → selfish"]


def test_duplicate_lab_ids_across_files(lab_file: LabFile) -> None:
    lab_file("a.yaml", simple_lab("twin", []))
    second = lab_file("b.yaml", simple_lab("twin", []))
    result = load_workshop(second.parent, builtin_registry())
    assert [str(p) for p in result.errors] == [
        f"{second.resolve()}:1: lab id 'twin' is also used by a.yaml"
    ]


def test_labs_are_ordered_after_what_they_require(lab_file: LabFile) -> None:
    lab_file("a-last.yaml", simple_lab("last", ["middle"]))
    lab_file("b-middle.yaml", simple_lab("middle", ["first"]))
    lab_file("c-first.yaml", simple_lab("first", []))
    result = load_workshop(lab_file("z.yaml", simple_lab("z", [])).parent, builtin_registry())
    assert result.workshop is not None
    assert [lab.id for lab in result.workshop.labs] == ["first", "middle", "last", "z"]


# --------------------------------------------------------------------------- what loads


def test_example_labs_all_load() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 15
    for path in files:
        lab, problems = check_lab_file(path, builtin_registry())
        assert lab is not None, [str(p) for p in problems]


def test_model_keeps_values_and_lines() -> None:
    lab = load_lab(EXAMPLES / "prompts.yaml", builtin_registry())
    assert isinstance(lab, Lab)
    (step,) = lab.steps
    (command,) = step.run
    assert command.timeout == 5.0
    assert [(e.prompt, e.send, e.secret) for e in command.expect] == [
        (r"Proceed\? \(y/N\)", "y", False),
        ("Password:", "hunter2", True),
    ]
    assert step.where is not None and step.where.line == 5
    assert command.where is not None and command.where.line == 8
    with pytest.raises(KeyError):
        lab.step("nope")


def test_durations_in_every_form(lab_file: LabFile) -> None:
    path = lab_file(
        "durations.yaml",
        lab_text(
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    within: 1h30m\n"
            "    run:\n"
            "      - {cmd: a, timeout: 500ms}\n"
            "      - {cmd: b, timeout: 90}\n"
            "      - {cmd: c, timeout: 2.5}\n"
            "    check: [{env: {name: HOME}}]\n"
        ),
    )
    step = load_lab(path, builtin_registry()).steps[0]
    assert step.within == 5400.0
    assert [c.timeout for c in step.run] == [0.5, 90.0, 2.5]


def test_cluster_need_is_declared_never_guessed_from_words(lab_file: LabFile) -> None:
    def load(body: str) -> tuple[bool, list[str]]:
        path = lab_file("tools.yaml", lab_text(body))
        lab, problems = check_lab_file(path, builtin_registry())
        assert lab is not None, [str(p) for p in problems]
        return lab.needs_cluster, [p.message for p in problems if not p.is_error]

    def step(command: str, check: str = "{env: {name: HOME}}") -> str:
        head = "steps:\n  - id: one\n    title: One\n"
        return head + f"    run: [{command!r}]\n    check: [{check}]\n"

    # words decide nothing: not "kind", not even kubectl (which earns a warning)
    assert load(step('echo "be kind to your future self"')) == (False, [])
    needs, warnings = load(step("kubectl get pods"))
    assert not needs
    assert warnings == [
        "the command runs kubectl, but the lab does not declare `needs: [cluster]` (nor has a "
        "Kubernetes check): it runs with a kubeconfig that reaches no cluster; add "
        "`needs: [cluster]` to the lab"
    ]
    assert load(step("cat helm-values.yaml manifests/kubectl.md")) == (False, [])
    # declared by the lab, by a step, or by a Kubernetes check
    assert load("needs: [cluster]\n" + step("kubectl get pods")) == (True, [])
    assert load(step("true").replace("    check:", "    needs: [cluster]\n    check:"))[0]
    assert load(step("true", "{namespace: {name: default}}")) == (True, [])


def test_commands_that_pick_their_own_cluster_are_warned_about(lab_file: LabFile) -> None:
    path = lab_file(
        "own.yaml",
        lab_text(
            "needs: [cluster]\n"
            "setup: ['kubectl --kubeconfig=/tmp/other.yaml get ns']\n"
            "steps:\n  - id: one\n    title: One\n"
            "    run: ['kubectl --server https://10.0.0.1:6443 --token abc get pods',"
            " 'export KUBECONFIG=$PWD/prod.yaml; kubectl get ns', 'curl -s --token x http://y']\n"
            "    check:\n      - command: {run: 'helm --kubeconfig k.yaml list'}\n"
        ),
    )
    lab, problems = check_lab_file(path, builtin_registry())
    assert lab is not None and lab.needs_cluster
    warned = sorted((p.line, p.message.split(":")[0]) for p in problems)
    assert warned == [
        (5, "the command passes its own --kubeconfig"),
        (9, "the command passes its own --server"),
        (9, "the command sets KUBECONFIG itself"),
        (11, "the command passes its own --kubeconfig"),
    ]
    assert all(not p.is_error for p in problems)


def test_warnings_do_not_stop_a_lab(lab_file: LabFile) -> None:
    path = lab_file(
        "warn.yaml",
        lab_text(
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    run: [sleep 5, 'kubectl apply -n <your-namespace>']\n"
        ),
    )
    lab, problems = check_lab_file(path, builtin_registry())
    assert lab is not None
    assert sorted(p.message.split(";")[0] for p in problems) == [
        "command contains a placeholder (<your-namespace>) that cannot run unattended",
        "command sleeps",
        "step has no checks, so it cannot tell whether the learner succeeded",
        "the command runs kubectl, but the lab does not declare `needs: [cluster]` (nor has a "
        "Kubernetes check): it runs with a kubeconfig that reaches no cluster",
    ]
    assert all(not p.is_error for p in problems)
    assert all(
        str(p).startswith(f"{path}:") and ": warning: step one: " in str(p) for p in problems
    )


# --------------------------------------------------------------------------- registries


def test_a_replaced_registry_decides_what_verifiers_exist(lab_file: LabFile) -> None:
    registry = Registry()

    @registry.verifier(
        "always",
        params={
            "type": "object",
            "properties": {"why": {"type": "string"}},
            "additionalProperties": False,
        },
    )
    def always(ctx: object, params: dict[str, object]) -> Outcome:
        """Always passes."""
        return Outcome.passed("yes")

    path = lab_file(
        "custom.yaml",
        lab_text(
            "steps:\n"
            "  - id: one\n"
            "    title: One\n"
            "    run: [echo]\n"
            "    check:\n"
            "      - always: {why: because}\n"
        ),
    )
    lab = load_lab(path, registry)
    assert lab.steps[0].check[0].verifier == "always"
    assert dict(lab.steps[0].check[0].params) == {"why": "because"}
    # the built-in registry has no such verifier...
    (error,) = errors_of(path, builtin_registry())
    assert "unknown verifier 'always'" in error
    # ...and the custom one validates parameters with its own schema
    path.write_text(path.read_text().replace("why: because", "why: 3"))
    assert errors_of(path, registry) == [
        f"{path.resolve()}:9: step one: always: why must be text, not a whole number"
    ]
    path.write_text(path.read_text().replace("always:", "file:"))
    assert "unknown verifier 'file'; known verifiers: always" in errors_of(path, registry)[0]
