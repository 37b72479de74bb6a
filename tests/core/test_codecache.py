"""The compiled code of dataclass methods, kept between runs (``labrunner.codecache``).

Each case runs in a fresh interpreter, as a command does: the first run
compiles and keeps the methods' code, the next compiles nothing and gets
methods that behave exactly the same; a table that is corrupt, from another
Python or not there at all is ignored; the CLI itself writes the table once
and then only reads it.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

from labrunner import codecache

from .conftest import RUN_MAIN, cli_env, run_cli, run_probe

REPO_LABS = Path(__file__).resolve().parents[2] / "labs"

PROBE = r"""
import dataclasses, json, sys
from labrunner import codecache

codecache.install(sys.argv[1])

@dataclasses.dataclass(frozen=True)
class Point:
    "A point."
    x: int
    y: int = 2
    tags: tuple[str, ...] = ()
    seen: list[int] = dataclasses.field(default_factory=list, compare=False)

@dataclasses.dataclass(order=True)
class Box:
    "A box."
    size: int
    label: str = "box"

hint = eval(codecache.compiled("tuple[Point, ...] | None"), {"Point": Point})
p = Point(1, tags=("a",))
try:
    p.x = 5
    frozen = "assigned"
except dataclasses.FrozenInstanceError as exc:
    frozen = type(exc).__name__
codecache.save()
print(json.dumps({
    "misses": codecache.misses,
    "repr": repr(p),
    "eq": p == Point(1, 2, ("a",), [9]),
    "hash": hash(p) == hash(Point(1, tags=("a",))),
    "frozen": frozen,
    "order": sorted([Box(3), Box(1, "z"), Box(1, "a")]) == [Box(1, "a"), Box(1, "z"), Box(3)],
    "init_name": Point.__init__.__qualname__,
    "annotations": {k: repr(v) for k, v in Point.__init__.__annotations__.items()},
    "hint": repr(hint),
}))
"""


def probe(cache: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(cache)],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        check=True,
    )
    return json.loads(proc.stdout)


def table(cache: Path) -> Path:
    (found,) = cache.glob(f"{codecache.FILE_PREFIX}-*.marshal")
    return found


def test_a_second_run_compiles_nothing_and_gets_the_same_methods(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = probe(cache)
    second = probe(cache)
    assert first["misses"] >= 9  # Point's and Box's methods and the hint were compiled and kept
    assert second["misses"] == 0
    assert {k: v for k, v in first.items() if k != "misses"} == {
        "repr": "Point(x=1, y=2, tags=('a',), seen=[])",
        "eq": True,
        "hash": True,
        "frozen": "FrozenInstanceError",
        "order": True,
        "init_name": "Point.__init__",
        # the types themselves, as without the table (not strings: no __future__ leaks in)
        "annotations": {
            "x": "<class 'int'>",
            "y": "<class 'int'>",
            "tags": "tuple[str, ...]",
            "seen": "list[int]",
            "return": "None",
        },
        # an expression from codecache.compiled evaluates as the one compile makes
        "hint": "tuple[__main__.Point, ...] | None",
    }
    assert {k: v for k, v in second.items() if k != "misses"} == {
        k: v for k, v in first.items() if k != "misses"
    }
    assert table(cache).stat().st_mode & 0o777 == 0o600


def test_a_corrupt_or_foreign_table_is_ignored_and_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe(cache)
    kept = table(cache)
    good = kept.read_bytes()
    for bad in (
        b"not a table",
        good[: len(codecache.HEADER)] + b"\0\0\r\n" + good[len(codecache.HEADER) + 4 :],
        good[: len(good) // 2],
    ):
        kept.write_bytes(bad)
        result = probe(cache)
        assert result["misses"] >= 8, bad[:40]
        assert result["repr"] == "Point(x=1, y=2, tags=('a',), seen=[])"
        assert kept.read_bytes() == good  # rewritten whole
    assert probe(cache)["misses"] == 0


INSPECT_PROBE = r"""
import json, sys
from labrunner import codecache

codecache.install(sys.argv[1])  # the first to import dataclasses, as in a command
import dataclasses

@dataclasses.dataclass(frozen=True)
class Documented:
    "Has a docstring."
    x: int

before = "inspect" in sys.modules

@dataclasses.dataclass
class Bare:
    x: int
    y: str = "a"

import inspect
print(json.dumps({
    "before": before,
    "doc": Bare.__doc__,
    "real": inspect.signature(Bare) is not None and hasattr(inspect, "getsource"),
    "handed_over": dataclasses.inspect is inspect is sys.modules["inspect"],
}))
"""


def test_dataclasses_get_inspect_only_when_a_class_needs_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", INSPECT_PROBE, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        check=True,
    )
    found = json.loads(proc.stdout)
    # a documented dataclass costs no inspect; an undocumented one gets the very
    # __doc__ plain dataclasses writes, and from then on everyone has the real module
    assert found == {
        "before": False,
        "doc": "Bare(x: int, y: str = 'a')",
        "real": True,
        "handed_over": True,
    }


def test_the_cli_writes_the_table_once_then_only_reads_it(isolated_env: Path) -> None:
    env = cli_env()
    first = run_cli("--labs", REPO_LABS, "list", env=env)
    assert first.returncode == 0, first.stderr
    kept = table(Path(os.environ["LABRUNNER_STATE_DIR"]) / "cache")
    stamp = kept.stat().st_mtime_ns, kept.stat().st_ino
    again = run_cli("--labs", REPO_LABS, "list", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == stamp


def test_sha256_hex_is_hashlibs_digest() -> None:
    import hashlib

    from labrunner.fsutil import sha256_hex

    for data in (b"", b"abc", bytes(range(256)) * 4099):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_every_dataclass_of_labrunner_has_a_docstring_of_its_own() -> None:
    """A dataclass without one makes ``dataclasses`` load ``inspect`` (some ten modules) to
    write ``Name(field, ...)`` as its ``__doc__``, in every command that defines it."""
    import dataclasses
    import importlib
    import pkgutil

    import labrunner

    missing = []
    count = 0
    for info in pkgutil.walk_packages(labrunner.__path__, "labrunner."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if not (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
            ):
                continue
            count += 1
            doc = value.__doc__
            if doc is None or doc.startswith(f"{value.__name__}("):
                missing.append(f"{module.__name__}.{value.__qualname__}")
    assert count > 100  # the control: the walk found labrunner's dataclasses
    assert missing == []


# --------------------------------------------------------------------------- module table

MODULE_PROBE = r"""
import json, sys
sys.path.insert(1, sys.argv[2])  # after the working folder, as site-packages comes after it
from labrunner import codecache

codecache.install(sys.argv[1], road="probe")
import pkg.mod
import top
from importlib.resources import files

found = {
    name: {
        "loader": type(module.__loader__).__name__,
        "file": module.__file__,
        "cached": module.__cached__,
        "value": module.VALUE,
    }
    for name, module in (("top", top), ("pkg", pkg), ("pkg.mod", pkg.mod))
}
found["pkg.__path__"] = list(pkg.__path__)
found["resource"] = files("pkg").joinpath("data.txt").read_text()
codecache.save()
print("FOUND:" + json.dumps(found))
"""


def scratch_modules(root: Path) -> Path:
    """A folder for sys.path holding a top-level module and a package with a module."""
    lib = root / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "top.py").write_text('VALUE = "top"\n')
    (lib / "pkg" / "__init__.py").write_text('VALUE = "pkg"\n')
    (lib / "pkg" / "mod.py").write_text('VALUE = "mod 1"\n')
    (lib / "pkg" / "data.txt").write_text("a resource\n")
    return lib


def module_probe(cache: Path, lib: Path, cwd: Path) -> dict[str, dict[str, str]]:
    found, _ = run_probe(MODULE_PROBE, [str(cache), str(lib)], cwd, "FOUND:")
    return found


def loaders(found: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: found[name]["loader"] for name in ("top", "pkg", "pkg.mod")}


def test_a_second_run_imports_the_same_modules_from_the_table(tmp_path: Path) -> None:
    cache, lib, cwd = tmp_path / "cache", scratch_modules(tmp_path), tmp_path / "cwd"
    cwd.mkdir()
    first = module_probe(cache, lib, cwd)
    assert set(loaders(first).values()) == {"SourceFileLoader"}  # the usual import
    assert (cache / f"module-code-probe-{sys.implementation.cache_tag}.marshal").is_file()
    second = module_probe(cache, lib, cwd)
    assert set(loaders(second).values()) == {"KeptLoader"}  # every one from the table
    # and they are the same modules: file, bytecode path, package path, resources, code
    assert {k: v for k, v in second.items() if k not in ("top", "pkg", "pkg.mod")} == {
        "pkg.__path__": [str(lib / "pkg")],
        "resource": "a resource\n",
    }
    for name in ("top", "pkg", "pkg.mod"):
        assert {**second[name], "loader": "-"} == {**first[name], "loader": "-"}, name
    assert first["pkg.mod"]["file"] == str(lib / "pkg" / "mod.py")


def test_a_changed_source_is_imported_anew_then_kept_again(tmp_path: Path) -> None:
    cache, lib, cwd = tmp_path / "cache", scratch_modules(tmp_path), tmp_path / "cwd"
    cwd.mkdir()
    module_probe(cache, lib, cwd)
    mod = lib / "pkg" / "mod.py"
    mod.write_text('VALUE = "mod 2, longer"\n')  # another size
    changed = module_probe(cache, lib, cwd)
    assert changed["pkg.mod"] == {**changed["pkg.mod"], "loader": "SourceFileLoader"}
    assert changed["pkg.mod"]["value"] == "mod 2, longer"
    assert loaders(changed)["top"] == "KeptLoader"  # the rest still from the table
    assert module_probe(cache, lib, cwd)["pkg.mod"]["loader"] == "KeptLoader"
    # the same size, another modification time (an editor that keeps the length)
    mod.write_text('VALUE = "mod 3, longer"\n')
    info = mod.stat()
    os.utime(mod, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))
    again = module_probe(cache, lib, cwd)
    assert (again["pkg.mod"]["loader"], again["pkg.mod"]["value"]) == (
        "SourceFileLoader",
        "mod 3, longer",
    )
    assert module_probe(cache, lib, cwd)["pkg.mod"]["value"] == "mod 3, longer"


def test_a_module_that_now_shadows_the_kept_one_wins(tmp_path: Path) -> None:
    # sys.path[0] is the working folder: a top.py put there comes before lib's, as usual
    cache, lib, cwd = tmp_path / "cache", scratch_modules(tmp_path), tmp_path / "cwd"
    cwd.mkdir()
    module_probe(cache, lib, cwd)
    assert loaders(module_probe(cache, lib, cwd))["top"] == "KeptLoader"
    (cwd / "top.py").write_text('VALUE = "shadow"\n')
    shadowed = module_probe(cache, lib, cwd)
    assert shadowed["top"]["value"] == "shadow"
    assert shadowed["top"]["file"] == str(cwd / "top.py")
    # the package's modules are looked for in the package's folder, which did not change
    assert loaders(shadowed)["pkg.mod"] == "KeptLoader"
    # and from another working folder, the table's top-level modules are not trusted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert loaders(module_probe(cache, lib, elsewhere))["top"] == "SourceFileLoader"


def test_a_corrupt_module_table_is_ignored_and_replaced(tmp_path: Path) -> None:
    cache, lib, cwd = tmp_path / "cache", scratch_modules(tmp_path), tmp_path / "cwd"
    cwd.mkdir()
    module_probe(cache, lib, cwd)
    (kept,) = cache.glob(f"{codecache.MODULE_FILE_PREFIX}-probe-*.marshal")
    good = kept.read_bytes()
    head = len(codecache.MODULE_HEADER) + 4
    index_length = int.from_bytes(good[head : head + 8], "little")
    index = marshal.loads(good[head + 8 : head + 8 + index_length])
    # an entry of another shape (a table written by another labrunner), the sizes all right
    name = next(k for k in index if k != codecache.SYS_PATH_KEY)
    index[name] = index[name][:7]
    odd = marshal.dumps(index)
    reshaped = good[:head] + len(odd).to_bytes(8, "little") + odd + good[head + 8 + index_length :]
    huge = good[:head] + (1 << 60).to_bytes(8, "little") + good[head + 8 :]
    for bad in (b"not a table", good[: len(good) // 2], reshaped, huge):
        kept.write_bytes(bad)
        found = module_probe(cache, lib, cwd)
        assert set(loaders(found).values()) == {"SourceFileLoader"}, bad[:40]
        assert found["pkg.mod"]["value"] == "mod 1"
        assert kept.stat().st_mode & 0o777 == 0o600
    assert set(loaders(module_probe(cache, lib, cwd)).values()) == {"KeptLoader"}


CLI_PROBE = (
    RUN_MAIN
    + r"""
import json  # after the command, which imported it first

print("LOADERS:" + json.dumps({
    name: type(getattr(sys.modules[name], "__loader__", None)).__name__
    for name in ("labrunner.lab.cache", "labrunner.headless", "json", "json.decoder")
}))
"""
)


def test_the_cli_imports_its_modules_from_the_table_from_its_second_run(
    isolated_env: Path, tmp_path: Path
) -> None:
    def run() -> dict[str, str]:
        # not in HOME, where the first run makes the state folder (sys.path[0] is the cwd)
        loaders, output = run_probe(
            CLI_PROBE, ["--labs", str(REPO_LABS), "list"], tmp_path, "LOADERS:"
        )
        assert "base" in output, output
        return loaders

    assert set(run().values()) == {"SourceFileLoader"}
    # labrunner's own modules, a standard-library package and its module
    assert set(run().values()) == {"KeptLoader"}
    cache = Path(os.environ["LABRUNNER_STATE_DIR"]) / "cache"
    assert [p.name for p in cache.glob(f"{codecache.MODULE_FILE_PREFIX}-*")] == [
        f"{codecache.MODULE_FILE_PREFIX}-list-{sys.implementation.cache_tag}.marshal"
    ]


def test_a_new_sys_path_drops_the_top_level_modules_it_may_hide(tmp_path: Path) -> None:
    # a table kept while another lib folder was on sys.path: its `top` is not trusted once
    # the working folder changed, even by a run that did not import `top` (no shadow left)
    cache, lib, cwd = tmp_path / "cache", scratch_modules(tmp_path), tmp_path / "cwd"
    cwd.mkdir()
    module_probe(cache, lib, cwd)
    (cwd / "top.py").write_text('VALUE = "shadow"\n')
    other = subprocess.run(  # this run imports only pkg.mod, and keeps the new sys.path
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(1, sys.argv[2]); from labrunner import codecache; "
            "codecache.install(sys.argv[1], road='probe'); import pkg.mod; codecache.save()",
            str(cache),
            str(lib),
        ],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stderr == ""
    assert module_probe(cache, lib, cwd)["top"]["value"] == "shadow"
