"""One shared Kubernetes API client per lab run, built from the lab's kubeconfig."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labrunner.cluster.kubeconfig import current_context, kubeconfig_paths

if TYPE_CHECKING:
    from labrunner.verify.context import CheckContext


def _merged_config(env: dict[str, str]) -> dict[str, Any]:
    """The kubeconfig files in KUBECONFIG merged the way kubectl merges them."""
    import yaml

    merged: dict[str, Any] = {"contexts": [], "clusters": [], "users": []}
    seen: dict[str, set[str]] = {"contexts": set(), "clusters": set(), "users": set()}
    for path in kubeconfig_paths(env):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        if "current-context" not in merged and data.get("current-context"):
            merged["current-context"] = data["current-context"]
        for key in ("contexts", "clusters", "users"):
            for item in data.get(key) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in seen[key]:
                    seen[key].add(name)
                    entry = dict(item)
                    if key != "contexts":
                        entry = _absolute_files(entry, key, path.parent)
                    merged[key].append(entry)
    return merged


def _absolute_files(entry: dict[str, Any], key: str, base: Any) -> dict[str, Any]:
    inner_key = "cluster" if key == "clusters" else "user"
    inner = dict(entry.get(inner_key) or {})
    for field in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
        value = inner.get(field)
        if isinstance(value, str) and value and not value.startswith("/"):
            inner[field] = str(base / value)
    return {**entry, inner_key: inner}


def api_client(ctx: CheckContext) -> Any:
    """The run's shared ``kubernetes.client.ApiClient`` for ``ctx``'s kubeconfig and context.

    Cached in ``ctx.resources`` so every check in a run reuses one connection pool.
    """
    env = dict(ctx.env)
    context = ctx.kube_context or current_context(env)
    key = f"kube-api-client:{env.get('KUBECONFIG', '')}:{context or ''}"

    def build() -> Any:
        from kubernetes import config

        client = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            _merged_config(env), context=context
        )
        ctx.resources.on_close(client.close)
        return client

    return ctx.resources.get(key, build)
