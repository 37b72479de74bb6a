"""The compiled-lab cache: a loaded workshop read back exactly, and only while it is current.

The model round-trip test builds a value for every field of every model
dataclass from its type hints, so a field someone adds to ``Lab``, ``Step``
or ``Workshop`` is covered the day it appears; if the codec cannot keep it,
that test fails.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import subprocess
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import labrunner
import labrunner.verify.registry as registry_module
from labrunner.lab import loader as loader_module
from labrunner.lab.cache import (
    Unrepresentable,
    WorkshopCache,
    decoder,
    encoder,
    load_workshop_cached,
)
from labrunner.lab.model import Workshop
from labrunner.lab.problems import LoadResult, Problem
from labrunner.verify.registry import (
    ENTRY_POINTS_FILE,
    EntrySource,
    Registry,
    builtin_registry,
    installed_entries,
)

from .conftest import assert_clean, cli_env, run_cli

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- a value per field


def _sample(hint: Any, label: str, default: Any = dataclasses.MISSING) -> Any:
    """A value of type ``hint`` that differs from ``default`` (and from an empty value)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return {"nested": [1, "two", None, True, 2.5, {"deep": label}]}
    if hint is bool:
        return not default if isinstance(default, bool) else True
    if hint is int:
        return 7 if default != 7 else 8
    if hint is float:
        return 2.5 if default != 2.5 else 3.5
    if hint is str:
        return f"{label}-text"
    if isinstance(hint, type) and issubclass(hint, Path):
        return Path(f"/somewhere/{label}.yaml")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[-1] if default != members[-1] else members[0]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return build(hint)
    if origin is typing.Literal:
        return next(a for a in reversed(args) if a != default)
    if origin in (typing.Union, types.UnionType):
        member = next(a for a in args if a is not type(None))
        return _sample(member, label)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], f"{label}-1"), _sample(args[0], f"{label}-2"))
        return tuple(_sample(a, f"{label}-{i}") for i, a in enumerate(args))
    if origin in (frozenset, set, list):
        return origin([_sample(args[0], f"{label}-1"), _sample(args[0], f"{label}-2")])
    if origin in (dict, Mapping, types.MappingProxyType):
        value = {"first": _sample(args[1], f"{label}-v1"), "second": _sample(args[1], label)}
        return value if origin is dict else types.MappingProxyType(value)
    raise AssertionError(f"the round-trip test cannot build a {hint!r} ({label}); teach it")


def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a model class (whose module names ``Any`` for the type
    checker only: it imports no ``typing`` at run time)."""
    return typing.get_type_hints(cls, {"Any": Any, **vars(sys.modules[cls.__module__])})


def build(cls: type) -> Any:
    """An instance of ``cls`` with every field set to a non-default value."""
    hints = type_hints(cls)
    init, late = {}, {}
    for f in dataclasses.fields(cls):
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        value = _sample(hints[f.name], f"{cls.__name__}.{f.name}", default)
        assert value != default, f"{cls.__name__}.{f.name}: sample equals the default"
        (init if f.init else late)[f.name] = value
    instance = cls(**init)
    for name, value in late.items():
        object.__setattr__(instance, name, value)
    return instance


def assert_same(one: Any, two: Any, where: str = "value") -> None:
    """Equal and of the same types all the way down, fields that skip ``==`` included."""
    assert type(one) is type(two), f"{where}: {type(one).__name__} != {type(two).__name__}"
    if dataclasses.is_dataclass(one):
        for f in dataclasses.fields(one):
            assert_same(getattr(one, f.name), getattr(two, f.name), f"{where}.{f.name}")
    elif isinstance(one, Mapping):
        assert list(one) == list(two), where
        for key in one:
            assert_same(one[key], two[key], f"{where}[{key!r}]")
    elif isinstance(one, tuple | list):
        assert len(one) == len(two), where
        for i, (a, b) in enumerate(zip(one, two, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert one == two, where


def model_classes(root: type) -> Iterator[type]:
    """Every dataclass reachable from ``root`` through field types."""
    seen: set[type] = set()
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        hints = type_hints(cls)
        stack = list(hints.values())
        while stack:
            hint = stack.pop()
            if dataclasses.is_dataclass(hint) and isinstance(hint, type):
                todo.append(hint)
            stack.extend(typing.get_args(hint))


def roundtrip(value: Any, hint: Any) -> Any:
    return decoder(hint)(json.loads(json.dumps(encoder(hint)(value))))


def test_every_field_of_the_model_round_trips() -> None:
    classes = list(model_classes(Workshop))
    names = {c.__name__ for c in classes}
    assert {"Workshop", "Lab", "Step", "Check", "Command", "Where"} <= names
    workshop = build(Workshop)
    assert_same(roundtrip(workshop, Workshop), workshop, "Workshop")
    for cls in classes:  # each class on its own too, so a failure names it
        value = build(cls)
        assert_same(roundtrip(value, cls), value, cls.__name__)
    problem = build(Problem)
    assert_same(roundtrip(problem, Problem), problem, "Problem")


def test_the_model_hints_are_what_get_type_hints_says() -> None:
    from labrunner.lab.cache import _hints

    for cls in [*model_classes(Workshop), *model_classes(Problem)]:
        expected = type_hints(cls)
        assert _hints(cls) == expected, cls.__name__


@dataclasses.dataclass(frozen=True)
class _Odd:
    """Annotations ``_hints`` leaves to ``get_type_hints``: a forward reference inside a type,
    ``Annotated``; and a Literal of strings, which it evaluates itself."""

    kinds: list["_Odd"]  # noqa: UP037 - the quoted name inside is the point
    size: typing.Annotated[int, "bytes"]
    mode: typing.Literal["a", "b"]
    nothing: None


def test_hints_with_forward_references_inside_are_left_to_get_type_hints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from labrunner.lab import cache as cache_module

    asked: list[type] = []
    real = typing.get_type_hints

    def spy(obj: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(obj)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", spy)  # the codec imports typing for it
    hints = cache_module._hints(_Odd)
    assert asked == [_Odd]
    assert hints == real(_Odd, vars(sys.modules[__name__]))
    assert hints["kinds"] == list[_Odd] and hints["nothing"] is type(None)
    asked.clear()
    assert cache_module._hints(Workshop) == real(
        Workshop, {"Any": Any, **vars(sys.modules[Workshop.__module__])}
    )
    assert asked == []  # the model's own hints never need it


def test_the_bundled_workshop_round_trips() -> None:
    result = loader_module.load_workshop(REPO / "labs", builtin_registry())
    assert result.workshop is not None
    assert_same(roundtrip(result.workshop, Workshop), result.workshop, "workshop")


@pytest.mark.parametrize(
    "value",
    [datetime.date(2024, 1, 1), b"bytes", {1: "int key"}, ("a", "tuple"), {"a": {1, 2}}],
    ids=["date", "bytes", "int-key", "tuple", "set"],
)
def test_values_json_cannot_keep_are_refused(value: Any) -> None:
    with pytest.raises(Unrepresentable):
        encoder(Mapping[str, Any])({"key": value})


# --------------------------------------------------------------------------- the cache


LAB = """\
apiVersion: labrunner/v1
id: {id}
title: {title}
steps:
  - id: one
    title: One
    run: ['true']
    check:
      - file: {{path: marker}}
"""


@pytest.fixture
def labs(tmp_path: Path) -> Path:
    folder = tmp_path / "ws" / "labs"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text(LAB.format(id="a", title="First"))
    (folder / "b.yaml").write_text(LAB.format(id="b", title="Second"))
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> WorkshopCache:
    registry = builtin_registry()
    key = registry.fingerprint()
    assert key is not None
    return WorkshopCache(tmp_path / "cache", key)


def load(labs: Path, cache: WorkshopCache | None) -> LoadResult:
    return load_workshop_cached(labs, builtin_registry(), cache=cache)


@pytest.fixture
def no_loader(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call to make any real load fail: what loads afterwards came from the cache."""

    def refuse(*args: object, **kwargs: object) -> LoadResult:
        raise AssertionError("the files were read again")

    return lambda: monkeypatch.setattr(loader_module, "load_workshop", refuse)


def titles(result: LoadResult) -> list[str]:
    assert result.workshop is not None, result.problems
    return [lab.title for lab in result.workshop.labs]


def test_a_second_load_is_answered_from_the_cache(
    labs: Path, cache: WorkshopCache, no_loader: Callable[[], None]
) -> None:
    first = load(labs, cache)
    path = cache.file_for(labs.resolve())
    assert path.is_file()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert cache.directory.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["key"]["labs_dir"] == str(labs.resolve())
    no_loader()
    second = load(labs, cache)
    assert first.workshop is not None
    assert_same(second.workshop, first.workshop)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary files"


@pytest.mark.parametrize("change", ["edit", "add", "remove", "workshop.yaml", "rename"])
def test_any_change_to_the_files_reads_them_again(
    labs: Path, cache: WorkshopCache, change: str
) -> None:
    assert titles(load(labs, cache)) == ["First", "Second"]
    if change == "edit":
        (labs / "a.yaml").write_text(LAB.format(id="a", title="Edited"))
        expected = ["Edited", "Second"]
    elif change == "add":
        (labs / "c.yaml").write_text(LAB.format(id="c", title="Third"))
        expected = ["First", "Second", "Third"]
    elif change == "remove":
        (labs / "b.yaml").unlink()
        expected = ["First"]
    elif change == "rename":
        (labs / "b.yaml").rename(labs / "0-b.yaml")
        expected = ["Second", "First"]
    else:
        (labs / "workshop.yaml").write_text(
            "apiVersion: labrunner/v1\nkind: Workshop\ntitle: Named\nlabs: [b.yaml, a.yaml]\n"
        )
        expected = ["Second", "First"]
    assert titles(load(labs, cache)) == expected
    assert titles(load(labs, cache)) == expected  # and that is what is kept now


def test_an_edit_that_keeps_size_and_time_is_still_seen(labs: Path, cache: WorkshopCache) -> None:
    # the key is the files' bytes, not their stat
    path = labs / "a.yaml"
    info = path.stat()
    load(labs, cache)
    path.write_text(LAB.format(id="a", title="Fisrt"))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size
    assert titles(load(labs, cache))[0] == "Fisrt"


def test_other_verifiers_or_another_version_read_the_files_again(
    labs: Path, cache: WorkshopCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(labs, cache)
    assert cache.read(labs.resolve()) is not None
    other = WorkshopCache(cache.directory, "another set of verifiers")
    assert other.read(labs.resolve()) is None
    monkeypatch.setattr(labrunner, "__version__", "99.0")
    assert cache.read(labs.resolve()) is None


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00\xff not json", b'{"key": ', b"[]", b'{"key": {}, "workshop": 1}', b"null"],
    ids=["empty", "binary", "truncated", "list", "wrong-shape", "null"],
)
def test_a_corrupt_cache_is_ignored_and_replaced(
    labs: Path, cache: WorkshopCache, garbage: bytes
) -> None:
    load(labs, cache)
    path = cache.file_for(labs.resolve())
    path.write_bytes(garbage)
    assert titles(load(labs, cache)) == ["First", "Second"]
    assert json.loads(path.read_bytes())["workshop"]["title"] == "labs"


def test_a_tampered_cache_with_the_right_key_but_wrong_data_is_ignored(
    labs: Path, cache: WorkshopCache
) -> None:
    load(labs, cache)
    path = cache.file_for(labs.resolve())
    data = json.loads(path.read_bytes())
    data["workshop"]["labs"][0]["steps"] = "not a list of steps"
    data["workshop"]["labs"][0].pop("title")
    path.write_text(json.dumps(data))
    assert titles(load(labs, cache)) == ["First", "Second"]


def test_errors_are_never_kept(labs: Path, cache: WorkshopCache) -> None:
    (labs / "a.yaml").write_text(LAB.format(id="a", title="First").replace("file:", "fiel:"))
    for _ in range(2):
        result = load(labs, cache)
        assert result.workshop is None
        assert any("unknown verifier 'fiel'" in p.message for p in result.errors)
    assert not cache.file_for(labs.resolve()).exists()


def test_warnings_come_back_from_the_cache(
    labs: Path, cache: WorkshopCache, no_loader: Callable[[], None]
) -> None:
    (labs / "a.yaml").write_text(
        LAB.format(id="a", title="First").replace("run: ['true']", "run: ['sleep 5']")
    )
    first = load(labs, cache)
    assert first.warnings and "sleeps" in first.warnings[0].message
    no_loader()
    second = load(labs, cache)
    assert second.problems == first.problems
    assert [str(p) for p in second.problems] == [str(p) for p in first.problems]


def test_a_workshop_the_cache_cannot_keep_exactly_is_not_kept(
    labs: Path, cache: WorkshopCache
) -> None:
    result = load(labs, None)
    assert result.workshop is not None
    lab = result.workshop.labs[0]
    step = lab.steps[0]
    check = dataclasses.replace(
        step.check[0], params=types.MappingProxyType({"when": datetime.date(2024, 1, 1)})
    )
    odd = dataclasses.replace(
        result.workshop,
        labs=(dataclasses.replace(lab, steps=(dataclasses.replace(step, check=(check,)),)),),
    )
    assert cache.write(labs.resolve(), LoadResult(odd, [])) is False
    assert not cache.file_for(labs.resolve()).exists()


def test_a_cache_that_cannot_be_written_is_not_an_error(labs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    cache = WorkshopCache(blocker, "key")
    assert titles(load(labs, cache)) == ["First", "Second"]


# --------------------------------------------------------------------------- entry points


def test_the_entry_point_list_is_kept_while_the_import_path_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = installed_entries(cache_dir=tmp_path)
    assert any(e.name == "pods_ready" and e.dist.startswith("labrunner ") for e in first)
    assert (tmp_path / ENTRY_POINTS_FILE).stat().st_mode & 0o777 == 0o600

    def refuse(group: str) -> tuple[EntrySource, ...]:
        raise AssertionError("scanned again")

    monkeypatch.setattr("labrunner.verify.registry._scan", refuse)
    assert installed_entries(cache_dir=tmp_path) == first


def test_an_install_makes_the_entry_points_scanned_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    cache_dir = tmp_path / "cache"
    sys.path.insert(0, str(site))
    try:
        before = installed_entries(cache_dir=cache_dir)
        info = site / "lr_cache_probe-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: lr-cache-probe\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text("[labrunner.verifiers]\nprobe = json\n")
        after = installed_entries(cache_dir=cache_dir)
    finally:
        sys.path.remove(str(site))
    assert EntrySource("probe", "json", "lr-cache-probe 1.0") in after
    assert len(after) == len(before) + 1
    one = Registry.from_sources(before).fingerprint()
    two = Registry.from_sources(after).fingerprint()
    assert one is not None and two is not None and one != two


def test_a_corrupt_entry_point_list_is_scanned_again(tmp_path: Path) -> None:
    (tmp_path / ENTRY_POINTS_FILE).write_text('{"key": 1, "entries": [["x"')
    entries = installed_entries(cache_dir=tmp_path)
    assert any(e.name == "command" for e in entries)
    assert json.loads((tmp_path / ENTRY_POINTS_FILE).read_text())["records"][0]["entries"]


def test_two_import_paths_keep_their_lists_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``labrunner`` and ``python -m labrunner`` see different import paths; alternating
    them scans the entry points once for each, not at every start."""
    scans: list[str] = []
    scan = registry_module._scan

    def counted(group: str) -> tuple[EntrySource, ...]:
        scans.append(group)
        return scan(group)

    monkeypatch.setattr(registry_module, "_scan", counted)
    first_path = [str(tmp_path / "bin"), *sys.path]
    second_path = [str(tmp_path / "elsewhere"), *sys.path]
    for _ in range(3):
        for path in (first_path, second_path):
            monkeypatch.setattr(sys, "path", path)
            assert any(e.name == "pods_ready" for e in installed_entries(cache_dir=tmp_path))
    assert len(scans) == 2
    # the oldest of more paths than it keeps is dropped; the newest stay
    for n in range(registry_module.ENTRY_RECORDS + 1):
        monkeypatch.setattr(sys, "path", [str(tmp_path / f"p{n}"), *sys.path[1:]])
        installed_entries(cache_dir=tmp_path)
    kept = json.loads((tmp_path / ENTRY_POINTS_FILE).read_text())["records"]
    assert len(kept) == registry_module.ENTRY_RECORDS
    assert kept[0]["key"]["path"][0][0] == str(tmp_path / f"p{registry_module.ENTRY_RECORDS}")


def test_only_a_registry_of_entry_points_has_a_fingerprint() -> None:
    registry = Registry.from_sources(installed_entries())
    assert registry.fingerprint() is not None
    assert registry.get("file") is not None  # loading entry points changes nothing
    assert registry.fingerprint() == Registry.from_sources(installed_entries()).fingerprint()
    assert Registry().fingerprint() is None
    assert registry.copy().fingerprint() is None
    spec = registry.get("env")
    assert spec is not None
    registry.add(dataclasses.replace(spec, name="by_hand"))
    assert registry.fingerprint() is None


# --------------------------------------------------------------------------- the CLI


def test_validate_and_list_give_the_same_answers_from_the_cache(tmp_path: Path) -> None:
    labs = tmp_path / "ws" / "labs"
    labs.mkdir(parents=True)
    (labs / "a.yaml").write_text(
        textwrap.dedent(LAB.format(id="a", title="First")).replace("'true'", "'sleep 1'")
    )
    runs = [run_cli("--labs", labs, "validate") for _ in range(2)]
    for proc in runs:
        assert_clean(proc, 0)
    assert runs[0].stdout == runs[1].stdout
    assert "command sleeps" in runs[1].stdout
    assert runs[0].stderr == runs[1].stderr == "1 lab file checked: 0 errors, 1 warning\n"
    cached = list((Path(cli_env()["LABRUNNER_STATE_DIR"]) / "cache" / "workshops").iterdir())
    assert len(cached) == 1
    listing = run_cli("--labs", labs, "list")
    assert_clean(listing, 0)
    assert "First" in listing.stdout
    (labs / "a.yaml").write_text(LAB.format(id="a", title="Renamed"))
    listing = run_cli("--labs", labs, "list")
    assert_clean(listing, 0)
    assert "Renamed" in listing.stdout and "First" not in listing.stdout


WITHOUT_TYPING = r"""
import sys
from pathlib import Path

from labrunner.lab.cache import WorkshopCache, encoder
from labrunner.lab.model import Workshop

result = WorkshopCache(Path(sys.argv[1]), sys.argv[2]).read(Path(sys.argv[3]))
assert result is not None and result.workshop is not None
import json  # after the decoding: nothing here loads typing before it

print(json.dumps({
    "typing": "typing" in sys.modules,
    "encoded": encoder(Workshop)(result.workshop),
}))
"""


def test_a_process_without_typing_decodes_the_same_workshop(cache: WorkshopCache) -> None:
    # the check road never imports typing: the codec reads the model's hints without it
    labs = REPO / "labs"
    first = load(labs, cache)
    assert first.workshop is not None and cache.file_for(labs).is_file()
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TYPING, str(cache.directory), cache.catalog_key, str(labs)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=True,
    )
    child = json.loads(proc.stdout)
    assert child["typing"] is False  # the control: the codec's typing-free road was taken
    # what the child decoded is what this process loaded (sets compared as sets: each
    # process orders them by its own string hashes)
    assert_same(decoder(Workshop)(child["encoded"]), first.workshop, "workshop")
