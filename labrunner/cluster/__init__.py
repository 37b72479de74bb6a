"""The cluster layer: the only package that imports the ``kubernetes`` client.

Everything that talks to the Kubernetes API goes through here, so the rest of
labrunner never depends on a client library's quirks and the CLI starts
without loading it (``kubernetes`` is imported inside functions). This is a
library: it knows nothing of labs, checks or outcomes. Calls take a timeout or
a deadline and a cancel event, and return data or raise ``ClusterError`` kinds
(``errors``); ``labrunner.verify.kube`` decides what a check makes of them.

* ``kubeconfig``: which kubeconfig files and context are in effect (no client);
* ``guard``: whether that context looks disposable enough to act on (no client);
* ``client``: one connection, raw JSON requests with bounded timeouts;
* ``errors``: API and transport failures as messages a learner can act on;
* ``resources``: discovery, so callers can name any kind, CRDs included;
* ``objects``: reads bounded by a deadline, and ``wait`` callables from lists;
* ``watch``: watch-based ``wait`` callables for pending checks;
* ``status``: pod and rollout states in kubectl's words (no client);
* ``versions``: which Kubernetes releases each Istio release supports, and
  which Istio a cluster runs;
* ``portforward``: reaching Services from the runner.
"""
