"""``labrunner new LAB-ID``: a new lab file that validates, added to the workshop's order.

The scaffold is a complete small lab (a title, one step with a command, a
check and three hints, a cleanup) that passes ``labrunner validate`` and
``labrunner verify`` as written, so an author starts from something that
works and changes it. Its first line is the modeline the VS Code YAML
extension (and other yaml-language-server editors) reads to offer completion
from the lab format's JSON Schema, which is written beside the labs when
there is none yet.

The lab is added to ``workshop.yaml`` by inserting one line into its ``labs:``
list, as text: a YAML round trip would drop the file's comments and reorder
what the author wrote. Nothing is ever overwritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labrunner.lab.locate import WORKSHOP_FILE
from labrunner.lab.schema import ID_PATTERN

SCHEMA_FILE = "lab.schema.json"
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"
_NUMBERED = re.compile(r"^(\d+)-")
_LABS_KEY = re.compile(r"^labs:\s*(#.*)?$")
_ITEM = re.compile(r"^(\s*)-\s+(.+?)\s*(#.*)?$")

TEMPLATE = """\
{modeline}
apiVersion: labrunner/v1
kind: Lab
id: {id}
title: {title}
summary: |
  One or two sentences: what the learner builds in this lab, and why it matters.
# requires: [install-istio]     # labs that must be complete before this one unlocks
# needs: [cluster]              # what it needs: cluster, istioctl, traffic, internet, helm
cleanup:                        # undoes what the lab made (verify --cleanup, rehearse)
  - rm -f .lab-work/{id}.txt
steps:
  - id: say-hello
    title: Write a greeting
    body: |
      Markdown for the learner: what to do, and why it matters.
      Commands below run in the lab's own shell, in the workshop folder.
    run:
      - mkdir -p .lab-work && echo "hello from {id}" > .lab-work/{id}.txt
    check:
      - title: the greeting is written
        file: {{path: .lab-work/{id}.txt, contains: hello}}
    hints:
      - The command writes a file under `.lab-work/` in the workshop folder.
      - '`cat .lab-work/{id}.txt` shows what it holds.'
      - 'Run: `mkdir -p .lab-work && echo "hello from {id}" > .lab-work/{id}.txt`'
"""


class ScaffoldError(Exception):
    """The lab cannot be created; the message says why and what to do."""


@dataclass(frozen=True)
class Created:
    """What ``new_lab`` wrote."""

    lab_file: Path
    workshop_file: Path | None
    """``workshop.yaml`` when a line was added to its ``labs:``."""
    schema_file: Path | None
    """The JSON Schema for editors, when there was none yet."""


def title_for(lab_id: str) -> str:
    """A first title from an id: ``mesh-basics`` → ``Mesh basics``."""
    words = lab_id.replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def next_file_name(labs_dir: Path, lab_id: str) -> str:
    """``NN-LAB-ID.yaml`` after the highest numbered lab file, else ``LAB-ID.yaml``."""
    numbers = [
        (int(m.group(1)), len(m.group(1)))
        for p in labs_dir.glob("*.y*ml")
        if (m := _NUMBERED.match(p.name))
    ]
    if not numbers:
        return f"{lab_id}.yaml"
    highest, width = max(numbers)
    return f"{highest + 1:0{width}d}-{lab_id}.yaml"


def insert_into_labs(text: str, name: str) -> str:
    """``workshop.yaml`` text with ``- name`` as the last item of its ``labs:`` list.

    Only the one line is added: comments, quoting and order stay as written.
    Raises ScaffoldError for a ``labs:`` it cannot extend line by line.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _LABS_KEY.match(line)), None)
    if start is None:
        if re.search(r"^labs:", text, re.MULTILINE):
            raise ScaffoldError(
                "workshop.yaml lists its labs inline (labs: [...]); add "
                f"{name} to that list yourself"
            )
        return text  # no list: every lab file loads, in name order
    last, indent = start, "  "
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = _ITEM.match(line.rstrip("\n"))
        if item is None or not item.group(1):
            break
        last, indent = i, item.group(1)
    lines.insert(last + 1, f"{indent}- {name}\n")
    return "".join(lines)


def new_lab(
    labs_dir: Path,
    lab_id: str,
    *,
    title: str | None = None,
    schema: Mapping[str, Any] | None = None,
) -> Created:
    """Write a new lab into ``labs_dir`` and list it in ``workshop.yaml`` (never overwrites);
    with ``schema``, also the JSON Schema its modeline names, when there is none yet."""
    if not re.match(ID_PATTERN, lab_id):
        raise ScaffoldError(
            f"{lab_id!r} is not a lab id: use lowercase letters, digits and dashes "
            "(e.g. traffic-mirroring)"
        )
    if not labs_dir.is_dir():
        raise ScaffoldError(f"no labs directory at {labs_dir}")
    for existing in labs_dir.glob("*.y*ml"):
        if existing.name == WORKSHOP_FILE:
            continue
        if existing.stem == lab_id or existing.stem.endswith(f"-{lab_id}"):
            raise ScaffoldError(f"{existing} already exists; choose another id")
        if re.search(rf"^id:\s*['\"]?{re.escape(lab_id)}['\"]?\s*(#.*)?$", _read(existing), re.M):
            raise ScaffoldError(f"lab id {lab_id!r} is already used by {existing.name}")
    name = next_file_name(labs_dir, lab_id)
    path = labs_dir / name
    workshop = labs_dir / WORKSHOP_FILE
    updated = None
    if workshop.is_file():
        before = workshop.read_text(encoding="utf-8")
        after = insert_into_labs(before, name)
        updated = after if after != before else None
    body = TEMPLATE.format(modeline=MODELINE, id=lab_id, title=title or title_for(lab_id))
    try:
        with path.open("x", encoding="utf-8") as fh:  # "x": never overwrite
            fh.write(body)
    except FileExistsError:
        raise ScaffoldError(f"{path} already exists; choose another id") from None
    if updated is not None:
        workshop.write_text(updated, encoding="utf-8")
    schema_file = labs_dir / SCHEMA_FILE
    wrote_schema = None
    if schema is not None and not schema_file.exists():
        schema_file.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        wrote_schema = schema_file
    return Created(path, workshop if updated is not None else None, wrote_schema)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
