"""Provisioning engines: `ansible` (native Debian host) and `pulumi` (Docker host)."""
