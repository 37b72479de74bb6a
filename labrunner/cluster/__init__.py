"""The cluster layer: the only package that imports the ``kubernetes`` client.

Everything that talks to the Kubernetes API goes through here, so the rest of
labrunner never depends on a client library's quirks and the CLI starts
without loading it (every module imports ``kubernetes`` inside functions):

* ``kubeconfig``: which kubeconfig files and context are in effect (no client);
* ``guard``: whether that context looks disposable enough to act on (no client);
* ``client``: one connection per lab run, raw JSON requests with bounded timeouts;
* ``errors``: API and transport failures as messages a learner can act on;
* ``resources``: discovery, so checks can name any kind, CRDs included;
* ``watch``: watch-based ``wait`` callables for pending checks;
* ``api``: the facade verifiers use (``connect(ctx)``);
* ``status``: pod and rollout states in kubectl's words (no client);
* ``versions``: which Kubernetes releases each Istio release supports;
* ``doctor``: the cluster findings of ``labrunner doctor``;
* ``portforward``: reaching Services from the runner.
"""
