"""The lab report (`lab report --out DIR`): compliance, attacks, WAF, load, TLS, lynis, identity.

See build.py for the page and its inputs, lynis.py for the host audit runner, docs/compliance.md for
what each section means and how to produce its input.
"""
