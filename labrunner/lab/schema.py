"""The JSON Schema of the ``labrunner/v1`` lab format.

One schema serves two readers. The loader validates the shape of a lab file
against it (with check parameters left open, because those are validated
per verifier for sharper messages); ``labrunner schema`` prints the full
version, with every registered verifier's parameters spelled out, for
editors (VS Code's YAML extension, for one) to offer completion and inline
errors while an author types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labrunner.durations import SCHEMA as DURATION
from labrunner.lab.model import API_VERSION

if TYPE_CHECKING:
    from labrunner.lab.catalog import Catalog

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMA_ID = "https://labrunner.dev/schema/lab-v1.json"
CHECK_RESERVED = ("title", "hint")


def _commands(description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": {"$ref": "#/$defs/command"}}


def _defs() -> dict[str, Any]:
    return {
        "duration": DURATION,
        "id": {
            "type": "string",
            "pattern": ID_PATTERN,
            "description": "a stable id: lowercase letters, digits and dashes",
        },
        "env": {
            "type": "object",
            "description": "variables exported into the lab shell; values may use ${OTHER}",
            "propertyNames": {"pattern": VAR_PATTERN},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "expect": {
            "type": "object",
            "description": "answer an interactive prompt when headless",
            "properties": {
                "prompt": {"type": "string", "description": "regular expression for the prompt"},
                "send": {"type": "string", "description": "what to type (Enter is added)"},
                "secret": {"type": "boolean", "description": "hide the answer in output"},
            },
            "required": ["prompt", "send"],
            "additionalProperties": False,
        },
        "command": {
            "description": "a shell command, or a command with options",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "properties": {
                        "cmd": {"type": "string", "minLength": 1, "description": "the command"},
                        "timeout": {"$ref": "#/$defs/duration"},
                        "expect": {"type": "array", "items": {"$ref": "#/$defs/expect"}},
                        "allow_failure": {
                            "type": "boolean",
                            "description": "a non-zero exit does not fail the step",
                        },
                    },
                    "required": ["cmd"],
                    "additionalProperties": False,
                },
            ],
        },
        "needs": {
            "type": "array",
            "description": "what this needs: cluster, istioctl, helm, internet, traffic, ...",
            "items": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]*$"},
        },
    }


def _check_schema(registry: Catalog | None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": {"type": "string", "description": "a label for this check"},
        "hint": {"type": "string", "description": "shown when this check fails (Markdown)"},
    }
    if registry is not None:
        for spec in registry:
            schema = dict(spec.params)
            if spec.summary:
                schema.setdefault("description", spec.summary)
            properties[spec.name] = (
                {"anyOf": [schema, {"type": "null"}]} if not schema.get("required") else schema
            )
        return {
            "type": "object",
            "description": "one verifier and its parameters, e.g. `- file: {path: x}`",
            "properties": properties,
            "additionalProperties": False,
            "minProperties": 1,
        }
    return {"type": "object", "minProperties": 1}


def lab_schema(registry: Catalog | None = None) -> dict[str, Any]:
    """The lab file schema; with a registry, check parameters are spelled out."""
    step = {
        "type": "object",
        "properties": {
            "id": {"$ref": "#/$defs/id"},
            "title": {"type": "string", "minLength": 1},
            "body": {"type": "string", "description": "instructions (Markdown)"},
            "run": _commands("commands run in order in the lab's shell"),
            "check": {
                "type": "array",
                "description": "all must pass to complete the step",
                "items": {"$ref": "#/$defs/check"},
            },
            "exports": {
                "type": "array",
                "description": "variables this step must leave set for later steps",
                "items": {"type": "string", "pattern": VAR_PATTERN},
            },
            "within": {"$ref": "#/$defs/duration"},
            "consecutive": {
                "type": "integer",
                "minimum": 1,
                "description": "passes needed in a row before the step counts as done",
            },
            "hints": {
                "type": "array",
                "items": {"type": "string"},
                "description": "revealed one at a time after a failed check",
            },
            "solution": _commands("what to run to solve the step; defaults to run"),
            "needs": {"$ref": "#/$defs/needs"},
            "timeout": {"$ref": "#/$defs/duration"},
            "recheck": {
                "type": "boolean",
                "description": "re-check on resume (default true); false for a state "
                "that later steps of the workshop replace by design",
            },
        },
        "required": ["id", "title"],
        "additionalProperties": False,
    }
    service = {
        "type": "object",
        "description": "a background process the lab needs once `step` has started it",
        "properties": {
            "id": {"$ref": "#/$defs/id"},
            "title": {"type": "string", "minLength": 1},
            "step": {
                "$ref": "#/$defs/id",
                "description": "the step whose commands start it the first time",
            },
            "start": {
                "$ref": "#/$defs/command",
                "description": "how the runner starts it again (a long-running command, or "
                "one that returns once the service runs)",
            },
            "ready": {
                "type": "array",
                "minItems": 1,
                "description": "checks that pass while the service is up",
                "items": {"$ref": "#/$defs/check"},
            },
            "stop": {"$ref": "#/$defs/command", "description": "how to stop it (optional)"},
            "within": {"$ref": "#/$defs/duration"},
        },
        "required": ["id", "step", "start", "ready"],
        "additionalProperties": False,
    }
    defs = _defs()
    defs["check"] = _check_schema(registry)
    defs["step"] = step
    defs["service"] = service
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "labrunner lab",
        "type": "object",
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": "Lab"},
            "id": {"$ref": "#/$defs/id"},
            "title": {"type": "string", "minLength": 1},
            "summary": {"type": "string"},
            "requires": {"type": "array", "items": {"$ref": "#/$defs/id"}},
            "needs": {"$ref": "#/$defs/needs"},
            "env": {"$ref": "#/$defs/env"},
            "import": {
                "type": "object",
                "description": "exports to take from labs this one requires: lab id → names",
                "propertyNames": {"pattern": ID_PATTERN},
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": VAR_PATTERN},
                },
            },
            "services": {
                "type": "array",
                "description": "background processes the lab's steps rely on",
                "items": {"$ref": "#/$defs/service"},
            },
            "setup": _commands("brings a fresh environment to this lab's starting point"),
            "cleanup": _commands("undoes what the lab created"),
            "namespaces": {
                "type": "array",
                "description": "namespaces the lab works in (${VAR} allowed); when a step "
                "fails, forensics collect events, pods and logs there",
                "items": {"type": "string", "minLength": 1},
            },
            "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/step"}},
        },
        "required": ["apiVersion", "id", "title", "steps"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _paths(description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "items": {"type": "string", "minLength": 1},
    }


def _rehearse_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "what `labrunner rehearse` gives its simulated cluster",
        "properties": {
            "crds": _paths(
                "CRD files to serve (${VAR} allowed); a missing one is a warning and the "
                "rehearsal runs with built-in stand-ins"
            ),
            "preload": _paths(
                "manifests (files or directories, relative to the workshop root) applied "
                "before each lab: the state the labs start from"
            ),
            "files": _paths(
                "paths some steps read that the workshop does not hold (a downloaded "
                "release); a step whose commands name a missing one is not rehearsable"
            ),
            "get": {
                "type": "string",
                "description": "how to get what crds and files name (shown when missing)",
            },
            "kept": {
                "type": "object",
                "description": "LAB/STEP: why that step's effect outlives the lab's cleanup",
                "propertyNames": {"pattern": r"^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$"},
                "additionalProperties": {"type": "string", "minLength": 1},
            },
        },
        "additionalProperties": False,
    }


def workshop_schema() -> dict[str, Any]:
    """The schema of ``workshop.yaml``, the optional file that ties labs together."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "labrunner workshop",
        "type": "object",
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": "Workshop"},
            "title": {"type": "string"},
            "env": {"$ref": "#/$defs/env"},
            "labs": {
                "type": "array",
                "description": "lab files in order (default: file name order)",
                "items": {"type": "string"},
            },
            "contexts": {
                "type": "array",
                "description": "extra kube context name patterns (fnmatch) that are safe to use",
                "items": {"type": "string"},
            },
            "workdir": {
                "type": "string",
                "description": "the directory commands run in, relative to this file (default ..)",
            },
            "rehearse": _rehearse_schema(),
        },
        "required": ["apiVersion", "kind"],
        "additionalProperties": False,
        "$defs": {"env": _defs()["env"]},
    }
