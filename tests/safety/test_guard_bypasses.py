"""Every known way around the context guard, through the real CLI and the real kubectl.

Two HTTPS fake API servers: ``safe`` (behind the disposable-looking, current
context ``kind-safe``) and ``prod`` (behind ``prod-eks`` and ``kind-prod``,
which show an EKS URL and reach prod through ``proxy-url``, and behind
``prod-local`` on loopback). Each test runs lab content that used to reach
prod, and then asks prod's own counters: not one TCP connection, TLS hello
or request. The user's kubeconfig must be byte for byte what it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import World

pytestmark = pytest.mark.timeout(120)


def test_use_context_in_a_step_fails_harmlessly(world: World) -> None:
    world.lab(
        "switch",
        """\
        apiVersion: labrunner/v1
        id: switch
        title: Switch to prod, then act
        needs: [cluster]
        steps:
          - id: switch
            title: Switch
            run: ['kubectl config use-context prod-eks || true', 'kubectl config current-context']
            check: [{namespace: {name: default}}]
          - id: act
            title: Act on whatever is current now
            run: ['kubectl get configmaps -n default -o name']
            check: [{namespace: {name: default}}]
        """,
    )
    done = world.cli("verify", "--no-save")
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'no context exists with the name: "prod-eks"' in done.stdout
    assert world.safe.requests(path_prefix="/api/v1/namespaces/default/configmaps")
    world.assert_prod_untouched()


def test_context_flag_in_a_command_fails_harmlessly(world: World) -> None:
    world.lab(
        "flag",
        """\
        apiVersion: labrunner/v1
        id: flag
        title: Name prod on the command line
        needs: [cluster]
        steps:
          - id: label
            title: Label prod's config
            run: ['kubectl --context prod-eks label configmap prod-config -n default hit=yes']
            check: [{namespace: {name: default}}]
        """,
    )
    done = world.cli("verify", "--no-save")
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'context "prod-eks" does not exist' in done.stdout
    world.assert_prod_untouched()


@pytest.mark.parametrize(
    ("current", "why"),
    [
        ("prod-eks", "does not look like a disposable workshop cluster"),
        ("kind-prod", "is an API endpoint of Amazon EKS"),
        ("prod-local", "does not look like a disposable workshop cluster"),
    ],
)
def test_a_labs_own_kubeconfig_is_judged_before_anything_runs(
    world: World, current: str, why: str
) -> None:
    world.kubeconfig_with(world.root / "prod.yaml", current=current)
    world.cluster_lab(
        "own",
        "touch ran; kubectl label configmap prod-config -n default hit=yes",
        header="env:\n  KUBECONFIG: prod.yaml\n",
    )
    done = world.cli("verify", "--no-save")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"refusing to act on kube context {current!r}" in done.stderr
    assert why in done.stderr
    assert "KUBECONFIG=prod.yaml from lab own's env" in done.stderr
    assert not (world.root / "ran").exists()
    world.assert_prod_untouched()


def test_a_workshops_kubeconfig_is_judged_too(world: World) -> None:
    prod = world.kubeconfig_with(world.root / "class.yaml", current="prod-eks")
    world.labs.mkdir()
    (world.labs / "workshop.yaml").write_text(
        f"apiVersion: labrunner/v1\nkind: Workshop\ntitle: W\nenv:\n  KUBECONFIG: {prod}\n"
    )
    world.cluster_lab("any", "kubectl get ns")
    done = world.cli("check", "any")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "refusing to act on kube context 'prod-eks'" in done.stderr
    assert "from the workshop's env" in done.stderr
    world.assert_prod_untouched()


def test_an_exported_kubeconfig_does_not_redirect_the_checks(world: World) -> None:
    prod = world.kubeconfig_with(world.root / "prod.yaml", current="prod-eks")
    world.lab(
        "export",
        f"""\
        apiVersion: labrunner/v1
        id: export
        title: Export another kubeconfig
        needs: [cluster]
        steps:
          - id: switch
            title: Switch the shell to prod
            run: ['export KUBECONFIG={prod}']
            check:
              - resource: {{apiVersion: v1, kind: ConfigMap, name: prod-config, namespace: default,
                            exists: false}}
        """,
    )
    done = world.cli("verify", "--no-save")
    # the check looked at the approved cluster (no prod-config there), or the run stopped
    # because the command changed KUBECONFIG; either way prod saw nothing
    assert done.returncode in (0, 3), done.stdout + done.stderr
    if done.returncode == 0:
        assert world.safe.requests(path_prefix="/api/v1/namespaces/default/configmaps")
    world.assert_prod_untouched()


def test_cluster_commands_the_loader_cannot_see_reach_no_cluster(world: World) -> None:
    world.use("prod-eks")  # even with prod current, a lab that declares no cluster gets none
    world.lab(
        "hidden",
        r"""
        apiVersion: labrunner/v1
        id: hidden
        title: Be kind to your future self
        setup: ['K=kubectl; $K label configmap prod-config -n default setup=yes || true']
        cleanup: ['ku\bectl delete configmap prod-config -n default || true']
        steps:
          - id: words
            title: Only words
            run: ['echo "be kind to your future self"', 'K=kubectl; $K get ns 2>&1 || true']
            check:
              - command:
                  run: kubectl get configmaps -n default 2>&1 || true
                  stdout: {contains: no-cluster.invalid}
        """,
    )
    done = world.cli("verify", "--no-save", "--setup", "--cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no-cluster.invalid" in done.stdout
    assert "localhost:8080" not in done.stdout
    world.assert_prod_untouched()
    world.safe.assert_untouched()


def test_check_is_guarded_and_pinned(world: World) -> None:
    world.lab(
        "label",
        """\
        apiVersion: labrunner/v1
        id: label
        title: Label the config
        needs: [cluster]
        steps:
          - id: labelled
            title: Labelled
            check:
              - command:
                  run: kubectl label configmap prod-config -n default checked=yes --overwrite
        """,
    )
    world.use("prod-eks")
    refused = world.cli("check", "label")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refusing to act on kube context 'prod-eks'" in refused.stderr
    world.assert_prod_untouched()
    world.use("kind-safe")
    pinned = world.cli("check", "label")
    assert pinned.returncode == 1, pinned.stdout + pinned.stderr  # safe has no prod-config
    assert 'configmaps "prod-config" not found' in pinned.stdout
    world.assert_prod_untouched()


@pytest.mark.parametrize("name", ["kind-prod", "minikube"])
def test_a_disposable_name_on_a_cloud_server_is_refused(world: World, name: str) -> None:
    if name != "kind-prod":  # a second disposable-looking name for prod's cluster and user
        text = world.kubeconfig.read_text().replace("name: kind-prod", f"name: {name}")
        world.kubeconfig.write_text(text.replace("cluster: kind-prod", f"cluster: {name}"))
        world.original = world.kubeconfig.read_bytes()
    world.use(name)
    world.lab(
        "any",
        """\
        apiVersion: labrunner/v1
        id: any
        title: Any
        steps:
          - id: ns
            title: Namespace
            run: ['kubectl create namespace touched']
            check: [{namespace: {name: touched}}]
        """,
    )
    for command in (("verify", "--no-save"), ("check", "any")):
        done = world.cli(*command)
        assert done.returncode == 3, done.stdout + done.stderr
        assert f"refusing to act on kube context {name!r}" in done.stderr
        assert "is an API endpoint of Amazon EKS" in done.stderr
        assert f"pass --context {name}" in done.stderr
    world.assert_prod_untouched()


def test_kubeconfig_paths_are_resolved_as_kubectl_resolves_them(world: World) -> None:
    """``~`` is not expanded and relative entries are relative to where labrunner runs."""
    home = Path(world.env["HOME"])
    world.kubeconfig_with(home / "safe.yaml", current="kind-safe")
    prod = world.kubeconfig_with(world.root / "prod.yaml", current="prod-eks")
    world.cluster_lab("any", "kubectl create namespace from-chain")
    chain = {**world.env, "KUBECONFIG": f"~/safe.yaml:{prod}"}
    done = world.cli("verify", "--no-save", env=chain, cwd=world.root)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "refusing to act on kube context 'prod-eks'" in done.stderr

    # relative: the file next to where labrunner starts, not next to the workshop
    elsewhere = world.root / "elsewhere"
    world.kubeconfig_with(elsewhere / "kc.yaml", current="prod-eks")
    world.kubeconfig_with(world.root / "kc.yaml", current="kind-safe")
    relative = {**world.env, "KUBECONFIG": "kc.yaml"}
    refused = world.cli("verify", "--no-save", env=relative, cwd=elsewhere)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refusing to act on kube context 'prod-eks'" in refused.stderr
    world.assert_prod_untouched()
    accepted = world.cli("verify", "--no-save", env=relative, cwd=world.root)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert world.safe.get("namespaces", "from-chain") is not None
    world.assert_prod_untouched()


@pytest.mark.parametrize(
    "command",
    [
        "unset KUBECONFIG; kubectl --context prod-eks get configmaps -n default",
        "export KUBECONFIG={prod} && kubectl get configmaps -n default",
        "KUBECONFIG={prod} kubectl get configmaps -n default",
        "env -u KUBECONFIG kubectl --context prod-eks get configmaps -n default",
    ],
)
def test_kubectl_in_the_same_command_that_moves_kubeconfig_does_not_run(
    world: World, command: str
) -> None:
    # the common setup: the user's kubeconfig is ~/.kube/config, KUBECONFIG unset, and it
    # also holds the production contexts
    home_config = Path(world.env["HOME"]) / ".kube" / "config"
    home_config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(world.kubeconfig, home_config)
    env = {k: v for k, v in world.env.items() if k != "KUBECONFIG"}
    prod = world.kubeconfig_with(world.root / "prod.yaml", current="prod-eks")
    world.cluster_lab("same-line", command.format(prod=prod))
    done = world.cli("verify", "--no-save", env=env)
    assert "not running kubectl" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "prod-config" not in done.stdout
    world.prod.assert_untouched()
    assert home_config.read_bytes() == world.original


def test_kubectl_runs_when_the_pinned_file_is_named_again(world: World) -> None:
    world.cluster_lab(
        "renamed",
        'KUBECONFIG="$KUBECONFIG::$(realpath "$KUBECONFIG")" kubectl get namespace default'
        ' && cd "$(dirname "$KUBECONFIG")" && KUBECONFIG="./$(basename "$KUBECONFIG")"'
        " kubectl get namespace default",
    )
    done = world.cli("verify", "--no-save")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not running kubectl" not in done.stdout + done.stderr
    assert done.stdout.count("default   Active") == 2, done.stdout
    world.assert_prod_untouched()
