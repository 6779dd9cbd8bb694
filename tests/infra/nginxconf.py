"""A small parser for the output of `nginx -T` (or one nginx.conf), enough for the DevSec checks.

Why our own parser: DevSec's InSpec `parse_config` reads `key value;` lines with a regex, which breaks on
quoted values that contain `;` (every real Content-Security-Policy does). We tokenize like nginx does:
quotes, escapes, comments, blocks, and keep for every directive the block path it sits in, so a check can
ask "in the https server" rather than "somewhere in the file".
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Directive:
    """One simple directive: its name, its arguments (quotes removed) and the enclosing block names."""

    name: str
    args: tuple[str, ...]
    context: tuple[str, ...]

    @property
    def value(self) -> str:
        return " ".join(self.args)


_FILE_MARK = re.compile(r"^# configuration file (\S+):\s*$", re.MULTILINE)


def _tokens(text: str) -> list[str]:
    """Split nginx syntax into words and the punctuation `{`, `}`, `;` (quotes and `#` comments honoured)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            out.append(c)
            i += 1
        elif c in "\"'":
            q, i, buf = c, i + 1, []
            while i < n and text[i] != q:
                if text[i] == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                buf.append(text[i])
                i += 1
            out.append("".join(buf))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                if text[j] == "\\" and j + 1 < n:
                    j += 2
                    continue
                j += 1
            out.append(text[i:j])
            i = j
    return out


def parse(text: str) -> list[Directive]:
    """All simple directives of a configuration (`nginx -T` output: the included files are inline).

    `nginx -T` prints each file after a `# configuration file PATH:` comment; included files appear
    again at top level there, so we only parse the first file and let `include` lines be resolved by
    the caller when needed. For checks, `parse_dump` is what you want.
    """
    directives: list[Directive] = []
    stack: list[str] = []
    words: list[str] = []
    for tok in _tokens(text):
        if tok == ";":
            if words:
                directives.append(Directive(words[0], tuple(words[1:]), tuple(stack)))
            words = []
        elif tok == "{":
            stack.append(" ".join(words) if words else "?")
            words = []
        elif tok == "}":
            if stack:
                stack.pop()
            words = []
        else:
            words.append(tok)
    return directives


def split_dump(dump: str) -> dict[str, str]:
    """`nginx -T` output -> {path: text} for every configuration file it printed."""
    marks = list(_FILE_MARK.finditer(dump))
    files: dict[str, str] = {}
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(dump)
        files[m.group(1)] = dump[m.end():end]
    return files


def parse_dump(dump: str, main: str = "/etc/nginx/nginx.conf") -> list[Directive]:
    """Directives of `main` with every `include` expanded in place (globs matched against the dump)."""
    files = split_dump(dump) or {main: dump}
    import fnmatch

    def expand(path: str, context: tuple[str, ...], depth: int) -> list[Directive]:
        text = files.get(path)
        if text is None or depth > 10:
            return []
        out: list[Directive] = []
        for d in parse(text):
            ctx = context + d.context
            if d.name == "include" and d.args:
                pattern = d.args[0] if d.args[0].startswith("/") else f"/etc/nginx/{d.args[0]}"
                for p in sorted(f for f in files if fnmatch.fnmatch(f, pattern)):
                    out.extend(expand(p, ctx, depth + 1))
            else:
                out.append(Directive(d.name, d.args, ctx))
        return out

    first = main if main in files else next(iter(files))
    return expand(first, (), 0)


def find(directives: list[Directive], name: str, within: str | None = None) -> list[Directive]:
    """Directives called `name`; `within` keeps those whose block path mentions it (e.g. `ssl`)."""
    return [d for d in directives if d.name == name and (within is None or any(within in c for c in d.context))]


def headers(directives: list[Directive]) -> dict[str, list[str]]:
    """add_header NAME VALUE [always] -> {lower-case name: [values]}."""
    out: dict[str, list[str]] = {}
    for d in find(directives, "add_header"):
        if len(d.args) >= 2:
            out.setdefault(d.args[0].lower(), []).append(d.args[1])
    return out


def seconds(value: str) -> float:
    """nginx time (`10s`, `1m`, `15`, `5 5` -> first value) in seconds."""
    first = value.split()[0]
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", first)
    if not m:
        raise ValueError(f"not an nginx time: {value!r}")
    mult = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * mult


def size(value: str) -> int:
    """nginx size (`1k`, `64m`, `65536`) in bytes."""
    m = re.fullmatch(r"(\d+)([kKmMgG])?", value.strip())
    if not m:
        raise ValueError(f"not an nginx size: {value!r}")
    mult = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[(m.group(2) or "").lower() or None]
    return int(m.group(1)) * mult
