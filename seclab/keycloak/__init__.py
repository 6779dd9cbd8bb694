"""Keycloak, the lab's identity provider: its credentials, realm import file and admin-API convergence.

The realm itself is `labdef.realm.build_realm_export(lab)`; this package puts it into a running
Keycloak: `provision` writes the credentials and the import file for the first start, `converge`
applies the same definition through the admin REST API on every later `./lab up` (python-keycloak).
`python -m seclab.keycloak render|converge` is what the keycloak Ansible role runs.
"""
