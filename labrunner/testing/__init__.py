"""Fakes shipped with the package: the fake Kubernetes API server, lab builders."""
