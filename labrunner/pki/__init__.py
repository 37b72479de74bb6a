"""X.509 for the workshop: a certificate toolbox that knows nothing of labs or checks.

- ``core``: mint, load, describe and verify certificates (imports ``cryptography``:
  import it lazily from anything on the CLI's start-up path);
- ``names``: parse distinguished names as lab authors write them (cheap, no
  ``cryptography``), so the loader can lint them.

Importing this package itself is free.
"""
