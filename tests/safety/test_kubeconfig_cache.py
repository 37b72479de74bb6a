"""The parsed-kubeconfig cache never answers for a file that changed, and holds no secret.

``labrunner check`` rebuilds the kubeconfig from ``cluster.yamlcache`` instead
of importing PyYAML. The context guard judges what that returns, so a stale
entry would be a way past it: after ``kubectl config use-context`` (and after
an edit that keeps the file's size, modification time and inode) the next
check must act on the new context — here a production one, refused.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labrunner.cluster import kubeconfig, yamlcache

from .conftest import World


def _entries(world: World) -> list[Path]:
    return sorted((Path(world.env["LABRUNNER_STATE_DIR"]) / "cache" / "kubeconfig").glob("*"))


def test_check_follows_the_kubeconfig_as_it_changes(world: World) -> None:
    world.cluster_lab("shop", "true")
    first = world.cli("check", "shop")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "'kind-safe'" in first.stderr
    (entry,) = _entries(world)
    kept = entry.read_text()
    for secret in (world.safe.token, world.prod.token):
        assert secret not in kept
    assert "BEGIN CERTIFICATE" not in kept and "kind-safe" not in kept  # offsets, not values

    again = world.cli("check", "shop")  # from the cache
    assert again.returncode == 0 and "'kind-safe'" in again.stderr, again.stderr

    subprocess.run(
        ["kubectl", "config", "use-context", "prod-eks"],
        env=world.env,
        check=True,
        capture_output=True,
    )
    refused = world.cli("check", "shop")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "prod-eks" in refused.stderr
    world.prod.assert_untouched()

    # back by rewriting the file (kubectl 1.32 run with prod current asks prod for /version)
    world.use("kind-safe")
    back = world.cli("check", "shop")
    assert back.returncode == 0 and "'kind-safe'" in back.stderr, back.stderr
    # the same size, modification time and inode: only the content tells
    before = world.kubeconfig.stat()
    text = world.kubeconfig.read_bytes()
    edited = text.replace(b"current-context: kind-safe", b"current-context: kind-prod")
    assert edited != text and len(edited) == len(text)
    with open(world.kubeconfig, "r+b") as handle:
        handle.write(edited)
    os.utime(world.kubeconfig, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = world.kubeconfig.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    refused = world.cli("check", "shop")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "kind-prod" in refused.stderr
    world.prod.assert_untouched()


def test_the_cache_answers_as_pyyaml_and_ignores_a_corrupt_entry(
    tmp_path: Path, world: World
) -> None:
    yamlcache.enable(tmp_path / "cache")
    try:
        config = tmp_path / "config"
        config.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: 'kind-a'\n"
            'clusters:\n- name: kind-a\n  cluster: {server: "https://127.0.0.1:6443",'
            " insecure-skip-tls-verify: true}\n"
            "contexts:\n- name: kind-a\n  context: {cluster: kind-a, user: u, namespace: shop}\n"
            "users:\n- name: u\n  user:\n    token: abc.def-ghi\n    port: 6443\n"
        )
        env = {"KUBECONFIG": str(config)}
        parsed = kubeconfig.load(env)
        (entry,) = (tmp_path / "cache" / "kubeconfig").glob("*.json")
        assert "abc.def-ghi" not in entry.read_text()
        kubeconfig._CACHE.clear()
        found, data = yamlcache.lookup(config, config.read_bytes())
        assert found
        assert data["users"][0]["user"] == {"token": "abc.def-ghi", "port": 6443}
        assert data["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True
        assert kubeconfig.load(env) == parsed

        entry.write_text('{"format": 1, "sha256": "')  # corrupt: parsed again, rewritten
        kubeconfig._CACHE.clear()
        assert kubeconfig.load(env) == parsed
        assert yamlcache.lookup(config, config.read_bytes())[0]

        # a string spelt with an escape cannot be an offset: such a file is not kept
        escaped = tmp_path / "escaped"
        escaped.write_text('users:\n- name: u\n  user: {token: "a\\u0062c"}\n')
        data = kubeconfig.load({"KUBECONFIG": str(escaped)})
        assert data.users["u"]["token"] == "abc"
        assert not yamlcache.lookup(escaped, escaped.read_bytes())[0]
    finally:
        yamlcache.enable(None)
        kubeconfig._CACHE.clear()
