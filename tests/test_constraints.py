"""The lock file keeps up with pyproject.toml.

CI and the README's test command install with ``-c constraints.txt`` (CI also pins the
build backend with ``--build-constraint``) so that an upstream release cannot turn CI red
by itself. A dependency added to pyproject.toml (or to any extra) without refreshing the
lock would be installed unpinned, silently reopening that hole; a range raised in
pyproject.toml without a refresh would make the install fail. Both are caught here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)$")


def _pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def _requirements() -> list[tuple[str, Requirement]]:
    """(where, requirement): the build backend, the dependencies and every extra."""
    pyproject = _pyproject()
    project = pyproject["project"]
    found = [("build-system", Requirement(r)) for r in pyproject["build-system"]["requires"]]
    found.extend(("dependencies", Requirement(r)) for r in project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        found.extend((f"extra {extra!r}", Requirement(r)) for r in requirements)
    return found


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt:{number}: not a 'name==version' pin: {raw!r}"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"constraints.txt:{number}: {name} is pinned twice"
        pins[name] = Version(match["version"])
    return pins


def test_every_dependency_of_every_extra_and_the_build_backend_is_pinned() -> None:
    pins = _pins()
    unpinned = [
        f"{req.name} ({where})"
        for where, req in _requirements()
        if canonicalize_name(req.name) not in pins
    ]
    assert not unpinned, (
        "pyproject.toml names dependencies that constraints.txt does not pin: "
        + ", ".join(unpinned)
        + "; run tools/refresh-constraints and commit constraints.txt"
    )


def test_every_pin_satisfies_pyproject() -> None:
    pins = _pins()
    outside = [
        f"{req.name}{req.specifier} ({where}) but constraints.txt pins {pins[name]}"
        for where, req in _requirements()
        if (name := canonicalize_name(req.name)) in pins
        and not req.specifier.contains(pins[name], prereleases=True)
    ]
    assert not outside, "; ".join(outside) + "; run tools/refresh-constraints"


def test_the_lock_pins_no_labrunner_and_says_how_to_refresh() -> None:
    assert canonicalize_name(_pyproject()["project"]["name"]) not in _pins()
    header = "\n".join(
        line
        for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    )
    assert "tools/refresh-constraints" in header
    assert (REPO / "tools" / "refresh-constraints").stat().st_mode & 0o111, "not executable"


def test_ci_and_the_readme_test_command_install_from_the_lock() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-c constraints\.txt .*-e '\.\[test,serve\]'", ci), ci
    assert "--build-constraint constraints.txt" in ci
    assert "pip==" in CONSTRAINTS.read_text(encoding="utf-8"), "CI installs the pinned pip"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    installs = [c for c in re.findall(r"```sh\n(.*?)\n```", readme) if "pip install" in c]
    tests = [c for c in installs if "python -m pytest" in c]
    users = [c for c in installs if "python -m pytest" not in c]
    assert len(tests) == 1 and users, installs
    assert "-c constraints.txt -e '.[test,serve]'" in tests[0]
    for user in users:
        assert "constraints" not in user, "users get the newest releases, not the lock"
