"""The lab model: lab files loaded into frozen dataclasses, linted, and located.

- ``model``: the frozen dataclasses (``Workshop``, ``Lab``, ``Step``, ``Check``);
- ``loader``/``schema``/``yamlsrc``/``expand``: from YAML to the model, with
  ``file:line`` problems;
- ``catalog``: what the loader needs to know of verifiers (callers pass one in);
- ``locate``: where the labs, the workshop root and ``certs/`` are.

This layer imports no verifier, engine or front end.
"""
