"""Keycloak, the lab's identity provider: its credentials, realm import file and admin-API convergence.

The realm itself is `labdef.realm.build_realm_export(lab)`; this package puts it into a running
Keycloak: `provision` writes the credentials and the import file for the first start, `converge`
applies the same definition through the admin REST API on every later `./lab up` (python-keycloak).
`python -m seclab.keycloak render|converge` is what the keycloak Ansible role runs.

Why under the CLI's package: it is provisioning run by the Ansible engine (and the operator), not a
service, and it imports only the kernel; nothing below the CLI imports it (tests/test_import_rules.py).
The TOTP codes that `labdef.tokens` needs for lab-admin logins are the kernel's `labdef.totp`.
"""
