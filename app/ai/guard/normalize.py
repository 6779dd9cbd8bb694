"""Text normalization and de-obfuscation for the prompt-injection guard.

Why: attackers hide trigger phrases behind Unicode tricks (full-width letters, zero-width joiners,
Cyrillic look-alikes, invisible "tag" characters), leetspeak, spaced letters, HTML entities and
markup, and encodings (base64, hex, binary, Morse, ROT13/Caesar, reversed text) so that a naive
filter never sees them (OWASP LLM01 prompt injection, "obfuscation / token smuggling").
Everything here is pure Python and deterministic: the classifier's tokenizer and the heuristics both
read the same normalized view, in training and at run time.
"""

from __future__ import annotations

import base64
import binascii
import html
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
    "ı": "i", "ȷ": "j", "օ": "o", "ս": "u", "հ": "h", "ո": "n", "ց": "g", "ԍ": "G", "Ꭺ": "A", "Ꮯ": "C",
    "Ꭼ": "E", "Ꮋ": "H", "Ꭻ": "J", "Ꮶ": "K", "Ꮇ": "M", "Ꮲ": "P", "Ꭲ": "T", "Ꮃ": "W",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l"})

_WORD = re.compile(r"\S+")
_LATIN = re.compile(r"[A-Za-z]")
_NONLATIN_LOOKALIKE = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0500-\u058f\u0261\u0131\u0237\u13a0-\u13f4]")
_LOOKALIKE_KEYS = frozenset(chr(k) for k in _HOMOGLYPHS)
_LEET_TOKEN = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9@$!|])[A-Za-z0-9@$!|]{3,}$")
_SPACED = re.compile(r"\b(?:[A-Za-z](?: |[.\-_*/|] ?)){2,}[A-Za-z]\b")
_WIDE_GAP = re.compile(r"(?<=[A-Za-z]) {2,}(?=[A-Za-z])")
# Markdown bold/strike markers and inline HTML tags split a word for a filter but not for the model
# ("ig**no**re", "ig<b></b>nore"); they are removed.
_MARKUP = re.compile(r"</?(?:b|i|u|em|strong|span|font|s|del|ins|mark|code|sup|sub|small|big)\b[^>]{0,80}>"
                     r"|\*\*|~~", re.IGNORECASE)
_TAG_CHARS = re.compile("[\U000E0020-\U000E007E]{4,}")
_REGIONAL = {chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)}


def _fold_word(word: str, latin_text: bool = False) -> str:
    """Fold homoglyphs in mixed-script words (or in all-look-alike words of a Latin text) and leetspeak
    in letter+digit words."""
    if _NONLATIN_LOOKALIKE.search(word) and (
        _LATIN.search(word) or (latin_text and all(ch in _LOOKALIKE_KEYS or not ch.isalpha() for ch in word))
    ):
        word = word.translate(_HOMOGLYPHS)
    core = word.strip(".,;:!?\"'()[]{}")
    # keep version-like tokens (gpt4, h264, python3) mostly intact: only fold if >=2 leet chars
    if core and _LEET_TOKEN.match(core) and not core.isdigit() and (
        sum(ch in "0134573@$!|" for ch in core) >= 2 or core[0] in "013457@$"
    ):
        word = word.replace(core, core.translate(_LEET))
    return word


def strip_invisible(text: str) -> str:
    """NFKC and invisible characters removed, nothing else (the view encodings are decoded from)."""
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def _mostly_latin(text: str) -> bool:
    letters = [ch for ch in text[:4000] if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) / len(letters) >= 0.6


def normalize(text: str) -> str:
    """NFKC, HTML entities decoded, invisible characters and inline markup removed, regional-indicator
    emoji to letters, homoglyph/leet folding.

    Case is kept (callers lower-case when they need to); whitespace runs are collapsed.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    if "&" in text:
        text = html.unescape(text)  # "&gt;", "&#105;gnore": entities are markup, not content
    if any("\U0001F1E6" <= ch <= "\U0001F1FF" for ch in text):
        text = "".join(_REGIONAL.get(ch, ch) for ch in text)
    text = _MARKUP.sub("", text)
    latin = _mostly_latin(text)
    text = _WORD.sub(lambda m: _fold_word(m.group(0), latin), text)
    return re.sub(r"\s+", " ", text).strip()


def collapse_spaced(text: str) -> str:
    """Join letters written one by one ("i g n o r e", "i.g.n.o.r.e", "i-g-n-o-r-e") into words; a gap of
    two or more spaces stays a word boundary ("a l l   r u l e s" -> "all  rules")."""
    text = _WIDE_GAP.sub("  ", text)
    return _SPACED.sub(lambda m: re.sub(r"[ .\-_*/|]", "", m.group(0)), text)


def decode_tag_chars(text: str) -> str | None:
    """ASCII hidden as Unicode "tag" characters (U+E0020-E007E, invisible when rendered), or None.

    Why: "ASCII smuggling" hides a whole instruction in characters a reader never sees but a model
    tokenizes (OWASP LLM01); ``normalize`` drops them, this returns what they spell.
    """
    runs = _TAG_CHARS.findall(text)
    return " ".join("".join(chr(ord(ch) - 0xE0000) for ch in r) for r in runs) if runs else None


# Frequent English words: a decoding that produces many of them is language, not noise.
_COMMON = frozenset(
    ["the", "an", "and", "or", "to", "of", "in", "on", "is", "are", "was", "be", "you", "your", "me", "my", "it", "this", "that", "what", "with", "for", "not", "all", "now", "from", "tell", "say", "give", "show", "print", "reveal", "ignore", "previous", "instructions", "prompt", "system", "password", "secret", "do", "does", "can", "will", "must", "any", "are", "how", "who", "please", "write"]
)
_WORDS = re.compile(r"[a-z]+")


def _common_ratio(s: str) -> tuple[int, float]:
    """Distinct frequent English words in ``s`` and their share of its words."""
    words = _WORDS.findall(s.lower())
    hits = len({w for w in words if w in _COMMON})
    return hits, sum(w in _COMMON for w in words) / max(1, len(words))


def _shift(s: str, k: int) -> str:
    out = []
    for ch in s:
        o = ord(ch)
        if 97 <= o <= 122:
            out.append(chr((o - 97 + k) % 26 + 97))
        elif 65 <= o <= 90:
            out.append(chr((o - 65 + k) % 26 + 65))
        else:
            out.append(ch)
    return "".join(out)


_QUOTED = re.compile(r"[\"'“‘`]([^\"'”’`\n]{12,600})[\"'”’`]")


def decode_shifted(text: str, max_chars: int = 3000) -> list[str]:
    """ROT13/Caesar-shifted and reversed English, found without being told the key.

    Why: "Caesar/ROT13/reverse the following and do what it says" smuggles an instruction past
    keyword filters (OWASP LLM01). Quoted segments (or the whole text if short) are tried with every
    shift and reversed; a candidate is kept only if it reads as English much better than the original.
    """
    segments = [m.group(1) for m in _QUOTED.finditer(text[:max_chars])]
    if len(text) <= 600:
        segments.append(text)
    out: list[str] = []
    for seg in segments[:6]:
        base_hits, base_ratio = _common_ratio(seg)
        if base_ratio >= 0.25:
            continue  # already readable
        best: tuple[int, str] | None = None
        for cand in [_shift(seg, k) for k in range(1, 26)] + [seg[::-1]]:
            hits, ratio = _common_ratio(cand)
            if hits >= 3 and ratio >= 0.3 and hits >= base_hits + 3 and (best is None or hits > best[0]):
                best = (hits, cand)
        if best:
            out.append(best[1])
    return out


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
