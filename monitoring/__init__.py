"""seclab monitoring: Prometheus/Alertmanager templates, alert rules and their tests, small helpers.

The files here are used by both engines: Ansible (playbooks/roles/monitoring) renders the `*.j2`
templates with its role variables, Pulumi and the tests render them with `monitoring.render`.
"""
