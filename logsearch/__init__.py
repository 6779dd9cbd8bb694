"""Centralized logging of the lab (issue 17): the engine's resources, search, retention, shipping metrics.

Why a package of its own: the Ansible role (`python -m logsearch apply|keeper`), the CLI (`lab logs`)
and the Pulumi path need the same index template, ingest pipelines and queries; it imports the lab
definition only, never the CLI.
"""
