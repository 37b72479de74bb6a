"""Certificates and HTTP for the workshop: minting, inspecting, serving, calling.

- ``pki``: the certificate toolbox (imports ``cryptography``: import it lazily).
- ``names``: parsing distinguished names as lab authors write them (cheap).
- ``checks``: the certificate comparisons shared by the certificate verifiers.
- ``transport``: HTTP(S) requests from here or via curl, with named failure kinds.
- ``tooling``: running kubectl/istioctl for checks and reading their failures.
- ``workshop``: the CA and server certificate behind ``labrunner certs``.
- ``mtls_server``: a stdlib HTTPS server that requires client certificates.
- ``cli``: the click command objects the main CLI registers.

Importing this package itself is free; the verifiers in ``labrunner.verify``
import these modules inside their functions.
"""
