"""Text normalization and de-obfuscation for the prompt-injection guard.

Why: attackers hide trigger phrases behind Unicode tricks (full-width letters, zero-width joiners,
Cyrillic look-alikes), leetspeak, spaced letters and encodings (base64, hex, binary, Morse) so that a
naive filter never sees them (OWASP LLM01 prompt injection, "obfuscation / token smuggling").
Everything here is pure Python and deterministic: the classifier's tokenizer and the heuristics both
read the same normalized view, in training and at run time.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

# Zero-width and invisible format characters: removed, they only serve to split trigger words.
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D, 0x200E,
     0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0x2066,
     0x2067, 0x2068, 0x2069, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0xE0000, 0xE0080))  # Unicode "tag" characters (ASCII smuggling)
)

# Cyrillic/Greek letters that render like Latin ones; only folded inside mixed-script words so that
# genuine Russian or Greek text is left alone.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "ε": "e",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l"})

_WORD = re.compile(r"\S+")
_LATIN = re.compile(r"[A-Za-z]")
_NONLATIN_LOOKALIKE = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0500-\u052f\u0261]")
_LEET_TOKEN = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9@$!|])[A-Za-z0-9@$!|]{3,}$")
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")
_REGIONAL = {chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)}


def _fold_word(word: str) -> str:
    """Fold homoglyphs in mixed-script words and leetspeak in letter+digit words."""
    if _LATIN.search(word) and _NONLATIN_LOOKALIKE.search(word):
        word = word.translate(_HOMOGLYPHS)
    core = word.strip(".,;:!?\"'()[]{}")
    if core and _LEET_TOKEN.match(core) and not core.isdigit():
        # keep version-like tokens (gpt4, h264, python3) mostly intact: only fold if >=2 leet chars
        if sum(ch in "0134573@$!|" for ch in core) >= 2 or core[0] in "013457@$":
            word = word.replace(core, core.translate(_LEET))
    return word


def strip_invisible(text: str) -> str:
    """NFKC and invisible characters removed, nothing else (the view encodings are decoded from)."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def normalize(text: str) -> str:
    """NFKC, invisible characters removed, regional-indicator emoji to letters, homoglyph/leet folding.

    Case is kept (callers lower-case when they need to); whitespace runs are collapsed.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    if any("\U0001F1E6" <= ch <= "\U0001F1FF" for ch in text):
        text = "".join(_REGIONAL.get(ch, ch) for ch in text)
    text = _WORD.sub(lambda m: _fold_word(m.group(0)), text)
    return re.sub(r"\s+", " ", text).strip()


def collapse_spaced(text: str) -> str:
    """Join letters written one by one ("i g n o r e", "i.g.n.o.r.e") into words."""
    return _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)


_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?:\b[0-9a-fA-F]{2}[ :]?){12,}|\b(?:[0-9a-fA-F]{2}){12,}\b")
_BIN = re.compile(r"(?:\b[01]{8}\b\s?){4,}")
_MORSE_RUN = re.compile(r"(?:[.\-]{1,7}(?: / | |/)){6,}[.\-]{1,7}")
_MORSE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g", "....": "h",
    "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n", "---": "o", ".--.": "p",
    "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u", "...-": "v", ".--": "w", "-..-": "x",
    "-.--": "y", "--..": "z", "-----": "0", ".----": "1", "..---": "2", "...--": "3", "....-": "4",
    ".....": "5", "-....": "6", "--...": "7", "---..": "8", "----.": "9",
}


def _printable(raw: bytes) -> str | None:
    """Return the decoded text if it looks like natural language, else None."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 6:
        return None
    good = sum(ch.isalpha() or ch in " .,;:!?'\"-" for ch in s)
    if good / len(s) < 0.85 or " " not in s.strip():
        return None
    return s


def decode_payloads(text: str, limit: int = 8) -> list[str]:
    """Decode embedded base64, hex, binary and Morse runs that turn out to be readable text.

    Why: "token smuggling" hides the instruction in an encoding the model can read but a filter
    cannot (OWASP LLM01). Only readable decodings are returned, so random ids and hashes are ignored.
    """
    out: list[str] = []
    for m in _B64.finditer(text):
        chunk = m.group(0)
        if chunk.isalpha() and (chunk.islower() or chunk.isupper()):
            continue  # plain words, not base64
        try:
            s = _printable(base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False))
        except (binascii.Error, ValueError):
            s = None
        if s:
            out.append(s)
        if len(out) >= limit:
            return out
    for m in _HEX.finditer(text):
        digits = re.sub(r"[ :]", "", m.group(0))
        if len(digits) % 2 or digits.isdigit():
            continue
        try:
            s = _printable(bytes.fromhex(digits))
        except ValueError:
            s = None
        if s:
            out.append(s)
    for m in _BIN.finditer(text):
        bits = m.group(0).split()
        s = _printable(bytes(int(b, 2) for b in bits))
        if s:
            out.append(s)
    for m in _MORSE_RUN.finditer(text):
        words = re.split(r"\s*/\s*", m.group(0).strip())
        letters = ["".join(_MORSE.get(sym, "?") for sym in w.split()) for w in words]
        s = " ".join(letters)
        if s.count("?") <= len(s) // 10 and len(s) >= 6:
            out.append(s)
    return out[:limit]
