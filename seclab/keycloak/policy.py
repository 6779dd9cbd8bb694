"""The realm's password policy, checked at provisioning before a password reaches Keycloak.

Keycloak checks its policy when a password is set through the admin API but not when a realm is
imported; the lab's passwords come from generated files, so provisioning checks them against the same
policy string (realm export `passwordPolicy`) and refuses a weak one with a clear message instead of
importing it. Ref: ASVS 4.0.3 V2.1.1, V2.1.2.
"""

from __future__ import annotations

import re


def parse(policy: str) -> dict[str, str]:
    """'length(12) and notUsername' -> {'length': '12', 'notUsername': ''}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in policy.split(" and "))):
        m = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", part)
        if m is None:
            raise ValueError(f"unreadable password policy part: {part!r}")
        out[m.group(1)] = m.group(2) or ""
    return out


def violations(policy: str, password: str, username: str, email: str | None) -> list[str]:
    """The policy rules `password` breaks (empty list: it passes)."""
    rules = parse(policy)
    bad: list[str] = []

    def count(pred: object) -> int:
        return sum(1 for ch in password if pred(ch))  # type: ignore[operator,misc]

    if "length" in rules and len(password) < int(rules["length"] or 8):
        bad.append("length")
    if "maxLength" in rules and len(password) > int(rules["maxLength"] or 64):
        bad.append("maxLength")
    if "upperCase" in rules and count(str.isupper) < int(rules["upperCase"] or 1):
        bad.append("upperCase")
    if "lowerCase" in rules and count(str.islower) < int(rules["lowerCase"] or 1):
        bad.append("lowerCase")
    if "digits" in rules and count(str.isdigit) < int(rules["digits"] or 1):
        bad.append("digits")
    if "specialChars" in rules and count(lambda c: not c.isalnum()) < int(rules["specialChars"] or 1):
        bad.append("specialChars")
    if "notUsername" in rules and password.lower() == username.lower():
        bad.append("notUsername")
    if "notEmail" in rules and email and password.lower() == email.lower():
        bad.append("notEmail")
    return bad
