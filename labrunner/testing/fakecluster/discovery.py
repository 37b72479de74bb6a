"""Version, discovery and the minimal OpenAPI v3 documents kubectl needs.

kubectl resolves ``ns``, ``deploy`` and ``pa`` through discovery, so every entry carries
``shortNames``, ``verbs``, ``categories`` and ``namespaced``. ``kubectl apply`` with its default
``--validate=strict`` refuses to run unless OpenAPI v3 says the server supports the
``fieldValidation`` query parameter; one PATCH operation per kind declaring it is enough, after
which kubectl leaves validation to the server (which :mod:`.schema` then does). OpenAPI v2 is
never served: kubectl asks for it only as protobuf, and a 404 is what makes it fall back cleanly.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import (
    ResourceRegistry,
    ResourceType,
    subresource_kind,
    subresource_verbs,
)

JsonDict = dict[str, Any]

GIT_VERSION = "v1.32.2"


def version_info() -> JsonDict:
    """``/version``: minor 32 makes the kubectl dispatcher pick kubectl 1.32."""
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "67a30c0adcf52bd3f56ff0893ce19966be12991f",
        "gitTreeState": "clean",
        "buildDate": "2025-02-12T21:19:47Z",
        "goVersion": "go1.23.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> JsonDict:
    """``/api``: the legacy core group."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, versions: list[str]) -> JsonDict:
    return {
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def api_group_list(registry: ResourceRegistry) -> JsonDict:
    """``/apis``: every group, CRD groups included as soon as their CRD exists."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in registry.groups()],
    }


def api_group(registry: ResourceRegistry, group: str) -> JsonDict | None:
    """``/apis/{group}``, or None for an unknown group."""
    for g, versions in registry.groups():
        if g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(g, versions)}
    return None


def _resource_entries(rt: ResourceType) -> list[JsonDict]:
    main: JsonDict = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    if rt.storage_version:
        main["storageVersionHash"] = hashlib.sha256(rt.group_resource.encode()).hexdigest()[:12]
    entries = [main]
    for sub in rt.subresources:
        group, version, kind = subresource_kind(rt, sub)
        entry: JsonDict = {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": kind,
            "verbs": subresource_verbs(sub),
        }
        if group != rt.group:
            entry["group"] = group
            entry["version"] = version
        entries.append(entry)
    return entries


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> JsonDict | None:
    """``/api/v1`` or ``/apis/{group}/{version}``, or None when nothing is served there."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for rt in types for e in _resource_entries(rt)],
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_gv_document(registry: ResourceRegistry, group: str, version: str) -> JsonDict | None:
    """A v3 document with one PATCH per kind that declares the ``fieldValidation`` parameter."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: JsonDict = {}
    prefix = "/" + _gv_path(group, version)
    for rt in types:
        item = (
            f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
            if rt.namespaced
            else f"{prefix}/{rt.plural}/{{name}}"
        )
        paths[item] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": version,
                    "kind": rt.kind,
                },
                "x-kubernetes-action": "patch",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "description": "Ignore, Warn or Strict handling of unknown fields.",
                        "schema": {"type": "string", "uniqueItems": True},
                    },
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_root(registry: ResourceRegistry) -> JsonDict:
    """``/openapi/v3``: one entry per group-version with a content hash kubectl caches by."""
    gvs: list[tuple[str, str]] = [("", "v1")]
    gvs.extend((g, v) for g, versions in registry.groups() for v in versions)
    paths: JsonDict = {}
    for group, version in gvs:
        doc = openapi_gv_document(registry, group, version)
        if doc is None:
            continue
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
