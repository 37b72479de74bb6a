"""Where the workshop is: its labs directory, the root its commands run in, its ``certs/``.

Every command asks the same question, so there is one answer:

- the labs directory: ``--labs DIR``, else ``LABRUNNER_LABS``, else the nearest
  ``labs/`` in the current directory or one of its parents (the workshop
  folder is "the one that contains labs/"), else the bundled workshop;
- the root: where lab commands run, ``workdir`` of ``workshop.yaml`` if it sets
  one (relative to the labs directory), else the parent of a directory named
  ``labs``, else the labs directory itself;
- the certificates directory: ``certs/`` in the root, which is where the
  labs' commands and checks look for it.

The bundled workshop is the checkout's own ``labs/`` when labrunner runs from
a source checkout. A wheel installs a copy into the environment's data
directory (``share/labrunner/workshop``), which is shared and often
read-only, while labs write ``certs/`` and ``.lab-work/`` next to their
files: so an installed labrunner asks the learner to copy it somewhere
writable with ``labrunner init DIR`` rather than run it in place
(``BundledReadOnly``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import labrunner
from labrunner.errors import UsageProblem

WORKSHOP_FILE = "workshop.yaml"
PACKAGE_DIR = Path(labrunner.__file__).resolve().parent
CHECKOUT_LABS = PACKAGE_DIR.parent / "labs"
"""The bundled workshop's labs in a source checkout (or an editable install)."""


def packaged_workshop_dir() -> Path:
    """Where a wheel installs the bundled workshop: ``labs/``, ``manifests/``, ``certs/``."""
    import sysconfig  # lazy: only copying the workshop needs it (start-up speed)

    return Path(sysconfig.get_path("data")) / "share" / "labrunner" / "workshop"


class BundledReadOnly(UsageProblem):
    """The only workshop found is the copy inside the installed package."""

    def __init__(self) -> None:
        super().__init__(
            "no workshop here (no labs/ in this directory or above it, no --labs, no "
            "LABRUNNER_LABS); the bundled Istio workshop is installed read-only, so copy it "
            "somewhere writable with `labrunner init DIR`, then run labrunner in DIR"
        )


def bundled_labs_dir() -> Path | None:
    """The checkout's bundled ``labs/``, or None when labrunner is installed from a wheel."""
    return CHECKOUT_LABS if (CHECKOUT_LABS / WORKSHOP_FILE).is_file() else None


def packaged_workshop() -> Path | None:
    """The bundled workshop to copy: the wheel's installed copy, else the checkout's."""
    installed = packaged_workshop_dir()
    if (installed / "labs" / WORKSHOP_FILE).is_file():
        return installed
    checkout = bundled_labs_dir()
    return checkout.parent if checkout is not None else None


def _nearest_labs(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "labs"
        if candidate.is_dir():
            return candidate
    return None


def find_labs_dir(
    option: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The labs directory to use, in order of precedence (raises BundledReadOnly)."""
    environ = os.environ if env is None else env
    if option:
        return Path(option).expanduser().resolve()
    value = environ.get("LABRUNNER_LABS")
    if value:
        return Path(value).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    local = _nearest_labs(here)
    if local is not None:
        return local.resolve()
    bundled = bundled_labs_dir()
    if bundled is None:
        raise BundledReadOnly()
    return bundled.resolve()


def read_workdir(labs_dir: Path) -> str | None:
    """``workdir`` of the workshop's ``workshop.yaml``, if it sets one (read leniently)."""
    path = labs_dir / WORKSHOP_FILE
    if not path.is_file():
        return None
    # lazy: the YAML parser is needed only here, not by every command that locates labs
    from labrunner.lab.yamlsrc import SourceError, load_file

    try:
        sources = load_file(path)
    except SourceError:
        return None
    data = sources[0].data if len(sources) == 1 else None
    value = data.get("workdir") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def lab_files(labs_dir: Path) -> list[Path]:
    """The lab files in a directory, in name order (workshop.yaml excluded)."""
    files = [
        p
        for p in labs_dir.iterdir()
        if p.suffix in (".yaml", ".yml") and p.name != WORKSHOP_FILE and p.is_file()
    ]
    return sorted(files)


def workshop_root(labs_dir: Path, workdir: str | None = None) -> Path:
    """Where a workshop's commands run: ``workdir`` if set, else the parent of ``labs/``."""
    if workdir:
        return (labs_dir / workdir).resolve()
    return labs_dir.parent if labs_dir.name == "labs" else labs_dir


@dataclass(frozen=True)
class Location:
    """Where one workshop lives."""

    labs_dir: Path
    root: Path

    @property
    def certs_dir(self) -> Path:
        """Where ``labrunner certs`` writes and the labs look: ``certs/`` in the root."""
        return self.root / "certs"


def locate(
    option: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Location:
    """The labs directory, root and certificates directory of the workshop to use."""
    labs_dir = find_labs_dir(option, env=env, cwd=cwd)
    return Location(labs_dir, workshop_root(labs_dir, read_workdir(labs_dir)))


COPIED = ("labs", "manifests", "certs")
"""What ``labrunner init`` copies: the labs, what they apply, and certs/ (its README only)."""


class WorkshopCopyError(Exception):
    """``labrunner init`` cannot copy the workshop; the message says why."""


def copy_bundled(destination: Path) -> Path:
    """Copy the bundled workshop into ``destination``; returns the new labs directory.

    ``certs/`` is copied without generated files (only what the workshop
    ships: its README and .gitignore). Refuses to overwrite an existing workshop.
    """
    source = packaged_workshop()
    if source is None:
        raise WorkshopCopyError("this installation carries no bundled workshop")
    target = destination.expanduser().resolve()
    if (target / "labs").exists():
        raise WorkshopCopyError(f"{target / 'labs'} already exists; choose an empty directory")
    import shutil  # only `init` copies trees: the other commands start without it

    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if not (source / name).is_dir():
                continue
            ignore = (
                shutil.ignore_patterns("*.crt", "*.key", "*.pem", "*.srl")
                if name == "certs"
                else None
            )
            shutil.copytree(source / name, target / name, ignore=ignore, dirs_exist_ok=True)
    except OSError as exc:
        raise WorkshopCopyError(
            f"cannot copy the workshop to {target}: {exc.strerror or exc}"
        ) from None
    return target / "labs"
