"""The certificate commands: ``labrunner certs`` and ``labrunner mtls-server``.

- ``files``: the workshop's CA and ``istioinaction.io`` server certificate, kept
  or renewed in the workshop's ``certs/`` directory;
- ``mtls_server``: a stdlib HTTPS server that requires client certificates;
- ``cli``: the click command objects the main CLI registers.

The X.509 work itself is ``labrunner.pki``; where ``certs/`` lives is
``labrunner.lab.locate``.
"""
