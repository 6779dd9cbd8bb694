"""PII detection: structured identifiers (validated by checksum where one exists) and, best-effort, names.

Why: text sent to an external model provider leaves the lab, so personal data in it is replaced by
placeholders first (OWASP LLM02:2025 / LLM06:2023 sensitive information disclosure; GDPR art. 25
data protection by design; ASVS 4.0.3 V8.3 sensitive private data). Checksums (IBAN mod-97, Luhn,
NIR key, BSN 11-check, DNI letter, Steuer-ID ISO 7064, codice fiscale) keep ordinary numbers in code
and maths from being taken for identifiers.

Kinds: EMAIL, PHONE, IBAN, CARD, IP, NATIONAL_ID, PERSON. PERSON is best-effort only: cues ("my
name is", "Mr./Ms./Dr.") and capitalized bigrams whose first word is a known first name (lists from
several locales, shipped in ``first_names.txt.gz``); names without such cues are missed.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import phonenumbers
from pydantic import BaseModel

Kind = Literal["EMAIL", "PHONE", "IBAN", "CARD", "IP", "NATIONAL_ID", "PERSON"]
# Overlap resolution: the earlier kind wins when two findings overlap.
PRIORITY: tuple[Kind, ...] = ("EMAIL", "IBAN", "NATIONAL_ID", "CARD", "IP", "PHONE", "PERSON")
PHONE_REGIONS = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "BE", "CH", "AT", "PT", "PL", "SE", "IE")


class Finding(BaseModel):
    """One detected value: kind, exact text and its span in the input."""

    kind: Kind
    value: str
    start: int
    end: int
    detail: str = ""  # sub-type, e.g. "US-SSN", "NL-BSN"


# --- checksums ----------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """Luhn mod-10 (ISO/IEC 7812 card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check."""
    s = iban[4:] + iban[:4]
    num = "".join(str(int(ch, 36)) for ch in s)
    return len(iban) >= 15 and int(num) % 97 == 1


def nir_ok(s: str) -> bool:
    """French NIR (INSEE): key = 97 - (13 digits mod 97); Corsica 2A/2B mapped to 19/18."""
    body, key = s[:13], s[13:]
    body = body.upper().replace("2A", "19").replace("2B", "18")
    return body.isdigit() and int(key) == 97 - int(body) % 97


def bsn_ok(s: str) -> bool:
    """Dutch BSN 11-check: sum(d_i * (9..2)) - last digit, divisible by 11."""
    if len(s) != 9 or s == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(s[:8], range(9, 1, -1))) - int(s[8])
    return total % 11 == 0


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_ok(s: str) -> bool:
    """Spanish DNI/NIE: control letter = table[number mod 23] (NIE X/Y/Z -> 0/1/2)."""
    s = s.upper()
    num = s[:-1]
    if num[0] in "XYZ":
        num = str("XYZ".index(num[0])) + num[1:]
    return num.isdigit() and _DNI_LETTERS[int(num) % 23] == s[-1]


def steuer_id_ok(s: str) -> bool:
    """German Steuer-IdNr: 11 digits, first not 0, ISO 7064 MOD 11,10 check digit."""
    if len(s) != 11 or not s.isdigit() or s[0] == "0":
        return False
    product = 10
    for ch in s[:10]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(s[10])


_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def codice_fiscale_ok(s: str) -> bool:
    """Italian codice fiscale check character (odd/even position tables)."""
    s = s.upper()
    total = 0
    for i, ch in enumerate(s[:15]):
        idx = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _CF_ODD[idx] if i % 2 == 0 else idx
    return chr(65 + total % 26) == s[15]


def ssn_ok(s: str) -> bool:
    """US SSN structure: area not 000/666/9xx, group not 00, serial not 0000."""
    area, group, serial = s[:3], s[4:6], s[7:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# --- patterns -----------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d+-])(?<!\d )(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})"
                   r"(?![\d-]|\.\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                   r"(?![\d.]\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
_SSN = re.compile(r"(?<![\d+-])(?<!\d )\d{3}-\d{2}-\d{4}(?![\d-]|\.\d)")
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-Z]\b")  # suffix A-D officially; test data varies
_NIR = re.compile(r"(?<![\d+])(?<!\d )[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\d]|\.\d)")
_BSN = re.compile(r"(?<![\d.+-])(?<!\d )\d{9}(?![\d-]|\.\d)|(?<![\d.+-])\d{4}\.\d{2}\.\d{3}(?![\d-]|\.\d)")
_DNI = re.compile(r"(?<![\w-])[XYZ]?\d{7,8}-?[A-Z](?![\w-])")
_STEUER = re.compile(r"(?<![\d+])(?<!\d )\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\d])")
_CF = re.compile(r"\b[A-Z]{6}\d{2}[A-EHLMPRST]\d{2}[A-Z]\d{3}[A-Z]\b")
_PHONE = re.compile(
    r"(?<![\w+.\-/])(?:\+|00)?\(?\d[\d\s().\-/]{5,20}\d(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?(?![\w/])"
)
_DATE_LIKE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$|^\d{4}\s*-\s*\d{4}$")


def _ids(text: str) -> list[Finding]:
    out: list[Finding] = []

    def add(m: re.Match[str], detail: str) -> None:
        out.append(Finding(kind="NATIONAL_ID", value=m.group(0), start=m.start(), end=m.end(), detail=detail))

    for m in _SSN.finditer(text):
        if ssn_ok(m.group(0)):
            add(m, "US-SSN")
    for m in _NINO.finditer(text):
        add(m, "UK-NINO")
    for m in _NIR.finditer(text):
        if nir_ok(m.group(0).replace(" ", "")):
            add(m, "FR-NIR")
    for m in _BSN.finditer(text):
        if bsn_ok(m.group(0).replace(".", "")):
            add(m, "NL-BSN")
    for m in _DNI.finditer(text):
        if dni_ok(m.group(0).replace("-", "")):
            add(m, "ES-DNI")
    for m in _STEUER.finditer(text):
        if steuer_id_ok(m.group(0).replace(" ", "")):
            add(m, "DE-STEUER-ID")
    for m in _CF.finditer(text):
        if codice_fiscale_ok(m.group(0)):
            add(m, "IT-CF")
    return out


def _phones(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _PHONE.finditer(text):
        raw = m.group(0).rstrip(" .-/(")
        main = re.split(r"\s?(?:x|ext\.?|#)\s?\d", raw)[0]
        digits = re.sub(r"\D", "", main)
        if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(main.strip()):
            continue
        has_sep = bool(re.search(r"[\s().\-/]", main.strip()))
        intl = main.startswith(("+", "00"))
        # a bare digit run is an id or a quantity more often than a phone number: only accept it
        # when it is a *valid* number (full numbering-plan pattern) somewhere
        bare = not has_sep and not intl and not (main.startswith("0") and 9 <= len(digits) <= 12)
        if bare and not (9 <= len(digits) <= 12 and _possible_phone(main, strict=True)):
            continue
        if re.fullmatch(r"\d{1,3}(?:\.\d+)+", main.strip()) and not re.fullmatch(r"\d{3}\.\d{3}\.\d{4}", main):
            continue  # decimals and version numbers
        if not _possible_phone(main):
            continue
        end = m.start() + len(raw)
        out.append(Finding(kind="PHONE", value=raw, start=m.start(), end=end))
    return out


def _possible_phone(s: str, strict: bool = False) -> bool:
    """Length/prefix plausibility in any supported numbering plan (libphonenumber metadata)."""
    cand = s.strip()
    if cand.startswith("00"):
        cand = "+" + cand[2:]
    regions: tuple[str | None, ...] = (None,) if cand.startswith("+") else PHONE_REGIONS
    for region in regions:
        try:
            num = phonenumbers.parse(cand, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num) if strict else phonenumbers.is_possible_number(num):
            return True
    return False


def _ips(text: str) -> list[Finding]:
    out = [Finding(kind="IP", value=m.group(0), start=m.start(), end=m.end(), detail="v4")
           for m in _IPV4.finditer(text)]
    for m in _IPV6.finditer(text):
        val = m.group(0)
        if val.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", val):
            continue
        try:
            ipaddress.IPv6Address(val.split("%")[0])
        except ValueError:
            continue
        if re.fullmatch(r"\d{1,2}:\d{2}:\d{2}", val):
            continue  # a time of day
        out.append(Finding(kind="IP", value=val, start=m.start(), end=m.end(), detail="v6"))
    return out


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """Known first names (from faker's locale lists, shipped as a file: no faker at run time)."""
    path = Path(__file__).with_name("first_names.txt.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        names = {n.strip() for n in fh if n.strip()}
    return frozenset(names - _NAME_STOP)


# Names that are also frequent capitalized words in prompts (sentence starts, titles, product names).
_NAME_STOP = frozenset(
    ["Will", "May", "June", "April", "August", "Grace", "Hope", "Faith", "Joy", "Rose", "Mark", "Bill", "Art", "Chase", "Hunter", "Page", "Summer", "Star", "Sky", "Max", "Ray", "Dean", "Frank", "Guy", "Jack", "Young", "Don", "Lee", "Long", "King", "Case", "Chi", "Mo", "In", "Be", "An", "Amber", "Ruby", "Pearl", "Crystal", "Dawn", "Destiny", "Genesis", "Harmony", "Heaven", "Liberty", "Justice", "Major", "Miles", "Rich", "Royal", "Sage", "Stone", "True", "Van", "Angel", "Christian", "Precious", "Prince", "Rebel", "Rock", "Scout", "Storm", "Tru", "Sunny", "Golden", "Victory", "Ivy", "Iris", "Jade", "Holly", "Olive", "Paris", "London", "Florence", "Austin", "Jordan", "Dallas", "Sydney", "Victoria", "Georgia", "Virginia", "Carolina", "Dakota", "Chelsea", "Ali", "Ada", "Julia", "Python", "Ruby", "Rust", "Go", "Java", "Swift", "Dart", "Elixir", "Pascal", "Ada", "Claude", "Gemini", "Alexa", "Siri", "Cortana", "Lorem", "Ipsum", "Easter", "Christmas", "Santa", "Marvel", "Thor", "Loki", "Apple", "Amazon", "Tesla", "Franklin", "Lincoln", "Washington"]
)
_UP = "A-ZÀ-ÖØ-ÞĀ-Ž"
_PERSON_CUE = re.compile(
    r"\b(?i:my name is|my name's|i am called|i'm called|call me|mein name ist|je m'appelle|me llamo|"
    r"mi chiamo|mijn naam is|ik heet|ich heiße|ich heisse)\s+"
    rf"([{_UP}][\w'\-]+(?:\s+[{_UP}][\w'\-]+){{0,2}})"
)
_TITLE = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|M|Sr|Sra|Sig|Sig\.ra|Dhr|Mevr)\.?\s+"
    r"([A-ZÀ-ÖØ-Þ][\w'\-]+(?:\s+[A-ZÀ-ÖØ-Þ][\w'\-]+){0,2})"
)
_BIGRAM = re.compile(r"\b([A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'\-]+)\s+((?:(?:van|von|de|der|den|di|da|del|la|le)\s+){0,2}"
                     r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'\-]+)\b")


def _persons(text: str) -> list[Finding]:
    out: list[Finding] = []
    for rx in (_PERSON_CUE, _TITLE):
        for m in rx.finditer(text):
            name = m.group(1)
            if rx is _PERSON_CUE and not name[0].isupper():
                continue
            out.append(Finding(kind="PERSON", value=name, start=m.start(1), end=m.end(1), detail="cue"))
    names = first_names()
    for m in _BIGRAM.finditer(text):
        if m.group(1) in names and m.group(2).split()[-1] not in _NAME_STOP:
            out.append(Finding(kind="PERSON", value=m.group(0), start=m.start(), end=m.end(), detail="first-name"))
    return out


def find_pii(text: str, kinds: tuple[Kind, ...] = PRIORITY) -> list[Finding]:
    """All non-overlapping PII findings in ``text``, in text order.

    Also for output checks: compare ``find_pii(answer)`` with what the user sent (OWASP LLM02).
    """
    cands: list[Finding] = []
    if "EMAIL" in kinds:
        cands += [Finding(kind="EMAIL", value=m.group(0), start=m.start(), end=m.end()) for m in _EMAIL.finditer(text)]
    if "IBAN" in kinds:
        for m in _IBAN.finditer(text):
            compact = m.group(0).replace(" ", "")
            if iban_ok(compact):
                cands.append(Finding(kind="IBAN", value=m.group(0), start=m.start(), end=m.end()))
    if "CARD" in kinds:
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if 12 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
                cands.append(Finding(kind="CARD", value=m.group(0), start=m.start(), end=m.end()))
    if "NATIONAL_ID" in kinds:
        cands += _ids(text)
    if "IP" in kinds:
        cands += _ips(text)
    if "PHONE" in kinds:
        cands += _phones(text)
    if "PERSON" in kinds:
        cands += _persons(text)
    rank = {k: i for i, k in enumerate(PRIORITY)}
    cands.sort(key=lambda f: (rank[f.kind], -(f.end - f.start), f.start))
    taken: list[Finding] = []
    for f in cands:
        if all(f.end <= t.start or f.start >= t.end for t in taken):
            taken.append(f)
    return sorted(taken, key=lambda f: f.start)
