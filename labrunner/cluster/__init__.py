"""The cluster layer: the only package that imports the ``kubernetes`` client.

Everything that talks to the Kubernetes API goes through here: loading the
kubeconfig the learner's lab shell points at, one shared API client per run,
watch-based waiting, port-forwards, and turning API errors into messages a
learner can act on. Light helpers (kubeconfig parsing, the context guard)
live in modules that do not import the client, so the CLI stays fast.
"""
