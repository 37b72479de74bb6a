"""What a run needs before its first command: the approved cluster, pinned, in a private folder.

Both front ends start a run the same way, so they share ``prepare_run``: it
takes the user's environment and the ``--context`` they gave (if any), and
makes a private per-run directory (mode 0700, removed when the run closes,
at interpreter exit at the latest) for the kubeconfigs the run hands out.

The guard does not just *name* a cluster, it *pins* it. For each lab the run
works out the cluster the lab would act on (``target``): the lab's own
``env: KUBECONFIG`` or the workshop's, if they set one, else the user's,
resolved exactly as kubectl resolves it; the ``--context`` given, else that
kubeconfig's current context. ``decide`` judges it with the context guard
before anything runs. Once a face has approved it (``approve``: the guard
allowed it, or the learner confirmed it in the TUI), the run writes a
private kubeconfig (0600) holding only that context, its cluster and its
user, and every shell, setup, cleanup and check of the lab runs with
``KUBECONFIG`` set to it (``kubeconfig_for``). ``kubectl config
use-context other`` and ``--context other`` then fail harmlessly, and the
user's own kubeconfig is never written. A lab that needs no cluster, or whose
cluster was not approved, gets a kubeconfig whose only context points at an
unroutable server: an *empty* kubeconfig would make kubectl try
``http://localhost:8080``.

The directory is a fresh private temporary folder (``fsutil.private_dir``,
made as ``mkdtemp`` makes one) rather than a folder in the state directory:
the state directory may be read-only, and a temporary directory is private
from its first moment. The lab shells keep their own files in it
(``shell-<id>/``: the saved environment, the command being run).

A run also makes sure nothing it starts survives it: labrunner becomes a
child subreaper, so detached descendants of the lab shells come back to it
(``labrunner.proctree``); the directory records its owner (pid and start
time), and every new run first reaps the directories of runs whose owner
died without cleaning up (SIGKILL, a crash) — their processes are killed and
their files removed — while a run whose owner still lives (a TUI beside a
``verify``) is left alone.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labrunner import proctree
from labrunner.cluster.errors import ClusterError
from labrunner.cluster.guard import GuardDecision, decide
from labrunner.cluster.kubeconfig import (
    NO_CLUSTER,
    KubeConfig,
    current_context,
    load,
    pinned_config,
    resolve_context,
    write_kubeconfig,
)
from labrunner.fsutil import private_dir, remove_tree, sha256_hex, temp_root
from labrunner.lab.expand import with_env
from labrunner.lab.model import Lab, Workshop

NO_CLUSTER_FILE = "kubeconfig-no-cluster.json"


@dataclass(frozen=True)
class Target:
    """The cluster a lab would act on, before anyone approved it."""

    key: str
    """The kubeconfig chain (absolute) and context name: equal keys, same cluster."""
    source: str
    """Where KUBECONFIG came from: ``"KUBECONFIG"``, ``"the workshop's env"``, ``"lab X's env"``."""
    kubeconfig: str
    """The KUBECONFIG value as it was set (before it is made absolute)."""
    context: str | None
    server: str | None = None
    proxy_url: str | None = None
    problem: str | None = None
    """Why the kubeconfig cannot be used at all (unreadable, no such context)."""
    config: KubeConfig | None = None

    @property
    def from_lab(self) -> bool:
        """True when the lab or the workshop chose the kubeconfig, not the user."""
        return self.source != "KUBECONFIG"


class PreparedRun:
    """A run's private directory, its targets and the kubeconfigs it pinned (close to remove)."""

    def __init__(
        self,
        *,
        user_env: Mapping[str, str],
        context_option: str | None,
        directory: Path,
        cwd: Path,
    ) -> None:
        self.user_env = dict(user_env)
        self.context_option = context_option
        self.explicit = bool(context_option)
        self.directory = directory
        self.cwd = cwd
        self.context = context_option or current_context(self.user_env, cwd)
        self.no_cluster = write_kubeconfig(directory / NO_CLUSTER_FILE, NO_CLUSTER)
        self.env = {**self.user_env, "KUBECONFIG": str(self.no_cluster)}
        """The user's environment with KUBECONFIG pointing nowhere: safe to hand to anything."""
        self._targets: dict[tuple[str, str, str], Target] = {}
        self._pinned: dict[str, Path] = {}
        self._remove = weakref.finalize(self, _remove, directory)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop what the run's shells left running; remove its directory (safe to call twice)."""
        self._remove()

    @property
    def closed(self) -> bool:
        """True once the directory is gone."""
        return not self._remove.alive

    def __enter__(self) -> PreparedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ targets

    def target(self, workshop: Workshop, lab: Lab | None = None) -> Target:
        """The cluster ``lab`` (or, with None, any lab of ``workshop``) would act on."""
        lab_env = lab.env if lab is not None else {}
        layers: tuple[Mapping[str, str], ...] = ()
        source = "KUBECONFIG"
        if "KUBECONFIG" in lab_env and lab is not None:
            source, layers = f"lab {lab.id}'s env", (workshop.env, lab_env)
        elif "KUBECONFIG" in workshop.env:
            source, layers = "the workshop's env", (workshop.env,)
        env = with_env(self.user_env, *layers) if layers else self.user_env
        value = env.get("KUBECONFIG") or ""
        # kubectl in the lab's shell resolves a relative path from the workshop root
        # (where the shell starts); the user's own from where labrunner was started
        cwd = workshop.root if layers else self.cwd
        memo = (value, str(cwd), env.get("HOME") or "")
        found = self._targets.get(memo)
        if found is not None:
            return found
        found = self._resolve(env, value, cwd, source)
        self._targets[memo] = found
        return found

    def _resolve(self, env: Mapping[str, str], value: str, cwd: Path, source: str) -> Target:
        try:
            config = load(env, cwd)
            context = resolve_context(config, self.context_option, env_value=value)
        except ClusterError as exc:
            named = self.context_option or (current_context(env, cwd) if value else None)
            key = f"{value}@{cwd}|{named or ''}"
            return Target(key, source, value, named, problem=exc.message)
        key = f"{config.describe()}|{context}"
        return Target(
            key,
            source,
            value,
            context,
            server=config.server(context),
            proxy_url=config.proxy_url(context),
            config=config,
        )

    def decide(self, workshop: Workshop, lab: Lab | None = None) -> GuardDecision:
        """The context guard's verdict on ``lab``'s target (see ``labrunner.cluster.guard``)."""
        target = self.target(workshop, lab)
        where = f" (KUBECONFIG={target.kubeconfig} from {target.source})" if target.from_lab else ""
        if target.problem is not None:
            named = decide(target.context, explicit=self.explicit, extra=workshop.context_patterns)
            if target.context is not None and not named.allowed:
                return GuardDecision(target.context, False, named.reason + where)
            return GuardDecision(target.context, False, target.problem + where)
        decision = decide(
            target.context,
            explicit=self.explicit,
            extra=workshop.context_patterns,
            server=target.server,
            proxy_url=target.proxy_url,
        )
        if where:
            return GuardDecision(decision.context, decision.allowed, decision.reason + where)
        return decision

    def approve(self, workshop: Workshop, lab: Lab | None = None) -> Path | None:
        """Pin ``lab``'s target: write its one-context kubeconfig (0600) and return it.

        Returns None when the target cannot be pinned (no usable kubeconfig
        or context); such a lab keeps the no-cluster kubeconfig.
        """
        target = self.target(workshop, lab)
        if target.config is None or target.context is None:
            return None
        pinned = self._pinned.get(target.key)
        if pinned is None:
            name = sha256_hex(target.key.encode())[:12]
            pinned = write_kubeconfig(
                self.directory / f"kubeconfig-{name}.json",
                pinned_config(target.config, target.context),
            )
            self._pinned[target.key] = pinned
        return pinned

    def approved(self, workshop: Workshop, lab: Lab | None = None) -> bool:
        """True once ``lab``'s target was approved in this run."""
        return self.target(workshop, lab).key in self._pinned

    def kubectl_guard(self, kubeconfig: Path) -> Path:
        """A folder holding a ``kubectl`` that runs the real one only with ``kubeconfig``.

        Put first on a lab shell's PATH. The shell's KUBECONFIG is checked after
        each command, but within one command line ``unset KUBECONFIG; kubectl …``
        (kubectl then reads ``~/.kube/config``), ``export KUBECONFIG=other && kubectl
        …`` or ``KUBECONFIG=other kubectl …`` would already have reached another
        cluster by then. This ``kubectl`` refuses to run when KUBECONFIG is not
        the approved file (named as it is, or again in any spelling, as the check after
        each command allows), and otherwise runs the next ``kubectl`` on PATH.
        A command that names a kubectl by its full path is not covered (as one
        that names its own ``--kubeconfig``).
        """
        name = sha256_hex(str(kubeconfig).encode())[:12]
        folder = self.directory / f"guard-{name}"
        script = folder / "kubectl"
        if not script.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
            text = (
                GUARD_SCRIPT.replace("@EXPECTED@", _sh_quote(str(kubeconfig)))
                .replace("@REAL@", _sh_quote(os.path.realpath(kubeconfig)))
                .replace("@HERE@", _sh_quote(str(folder)))
            )
            tmp = folder / ".kubectl.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o700)
            os.replace(tmp, script)
        return folder

    def kubeconfig_for(self, workshop: Workshop, lab: Lab) -> Path:
        """The kubeconfig ``lab``'s shell and checks get: its pinned cluster once approved,
        else (no cluster needed, or not approved) the one that leads nowhere."""
        if lab.needs_cluster:
            pinned = self._pinned.get(self.target(workshop, lab).key)
            if pinned is not None:
                return pinned
        return self.no_cluster


GUARD_SCRIPT = """#!/bin/sh
# labrunner: kubectl only with the kubeconfig this run approved (see labrunner.engine.prepare).
expected=@EXPECTED@
real_expected=@REAL@
here=@HERE@
resolve() {
  case $1 in /*) p=$1 ;; *) p=$PWD/$1 ;; esac
  realpath -m -- "$p" 2>/dev/null && return
  d=$(cd -P -- "$(dirname -- "$p")" 2>/dev/null && pwd -P) || { printf '%s\\n' "$p"; return; }
  printf '%s/%s\\n' "$d" "$(basename -- "$p")"
}
same=
if [ "${KUBECONFIG-}" = "$expected" ]; then
  same=1
elif [ -n "${KUBECONFIG-}" ]; then
  # the same file named again (another spelling, twice, with empty entries) is fine,
  # as the check after each command says
  set -f; IFS=:
  for entry in $KUBECONFIG; do
    [ -n "$entry" ] || continue
    if [ "$(resolve "$entry")" = "$real_expected" ]; then same=1; else same=; break; fi
  done
  unset IFS; set +f
fi
if [ -z "$same" ]; then
  if [ -n "${KUBECONFIG+set}" ]; then now="KUBECONFIG is '$KUBECONFIG'"
  else now="KUBECONFIG is unset (kubectl would read ~/.kube/config)"; fi
  echo "labrunner: not running kubectl: $now, not the kubeconfig this run approved" \\
    "($expected); a lab command must not point kubectl at another cluster" >&2
  exit 1
fi
set -f
IFS=:
for dir in $PATH; do
  [ -n "$dir" ] || dir=.
  [ "$dir" = "$here" ] && continue
  if [ -f "$dir/kubectl" ] && [ -x "$dir/kubectl" ]; then
    exec "$dir/kubectl" "$@"
  fi
done
echo "kubectl: command not found" >&2
exit 127
"""


def _sh_quote(text: str) -> str:
    """``text`` as one single-quoted sh word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _remove(directory: Path) -> None:
    """Stop what the run's shells left running, then remove the run's directory."""
    proctree.end_leftovers(directory, mine=True)
    remove_tree(directory)


def prepare_run(
    context_option: str | None,
    *,
    base_env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    reaper: bool = True,
) -> PreparedRun:
    """A run for the user's environment (default: this process's) and ``--context``.

    Also: labrunner becomes a child subreaper, and the leftovers of runs whose
    owner died are reaped first. With ``reaper=False`` (``labrunner check``, which
    usually starts no process) becoming the subreaper waits for the first process
    started: the lab shell, a service and ``procs.run`` each see to it before they
    start theirs, which spares a run that starts none loading ``ctypes``.
    """
    env = dict(base_env if base_env is not None else os.environ)
    if reaper:
        proctree.become_subreaper()
    proctree.sweep(Path(temp_root()))
    directory = private_dir("labrunner-run-")
    proctree.write_owner(directory)
    return PreparedRun(
        user_env=env,
        context_option=context_option,
        directory=directory,
        cwd=Path(cwd) if cwd is not None else Path.cwd(),
    )
