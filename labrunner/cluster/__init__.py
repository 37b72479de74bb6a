"""The cluster layer: everything that talks to a Kubernetes API server.

Everything that talks to the Kubernetes API goes through here, so the rest of
labrunner never depends on a client library's quirks. The common path needs
no ``kubernetes`` package at all (urllib3 and the standard library); the
official client is imported, inside functions, only for the port-forward
websocket and for legacy ``auth-provider`` users. This is a library: it knows
nothing of labs, checks or outcomes. Calls take a timeout or a deadline and a
cancel event, and return data or raise ``ClusterError`` kinds (``errors``);
``labrunner.verify.kube`` decides what a check makes of them.

* ``kubeconfig``: kubeconfig files read with kubectl's rules; pinned copies;
* ``guard``: whether a context (its name, then its server) may be acted on;
* ``auth``: credentials: tokens, client certificates, exec credential plugins;
* ``client``: one connection, raw JSON requests with whole-request deadlines;
* ``errors``: API and transport failures as messages a learner can act on;
* ``resources``: discovery, so callers can name any kind, CRDs included;
* ``objects``: reads bounded by a deadline, and ``wait`` callables from lists;
* ``watch``: watch-based ``wait`` callables for pending checks;
* ``status``: pod and rollout states in kubectl's words (no client);
* ``versions``: which Kubernetes releases each Istio release supports, and
  which Istio a cluster runs;
* ``portforward``: reaching Services from the runner.
"""
