"""A tiny, generated GGUF model (llama architecture) so the lab runs fully offline.

Why generate instead of download: the lab host has no route to a model hub, and a lab about the
*security* of an LLM service needs a real inference server in the path (latency, token counts,
timeouts, fallbacks), not a good model. The weights are random (fixed seed: same bytes every time,
so a re-provisioning changes nothing), plus one deliberate bias: every token embedding carries a
constant component that the output matrix maps to "printable ASCII likely, control bytes and
end-of-sequence unlikely", so answers are readable gibberish of predictable length rather than
binary noise (it keeps the output checks and the benchmarks meaningful). It knows nothing.

llama.cpp requirements learned the hard way: a `llama` tokenizer model must contain byte tokens
`<0x00>`..`<0xFF>` of type BYTE (byte fallback) and the key `llama.attention.layer_norm_rms_epsilon`
must be present, otherwise loading crashes.

    python -m app.ai.tinymodel OUT.gguf [--seed N]
"""

from __future__ import annotations

import argparse
import os
import string
import sys
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

SPECIALS = ("<unk>", "<s>", "</s>")
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
BYTE_OFFSET = len(SPECIALS)
# A plain ChatML-like template so llama-cpp-python's OpenAI-compatible server can format chats
# without guessing a format. The markers are ordinary text to this model (byte tokens).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class TinySpec(BaseModel):
    """Shape of the generated model; defaults load in a few MB of RAM and answer in milliseconds."""

    n_layer: int = Field(default=2, ge=1, le=8)
    n_embd: int = Field(default=64, ge=32, le=512)
    n_head: int = Field(default=4, ge=1)
    n_ff: int = Field(default=128, ge=16)
    n_ctx: int = Field(default=512, ge=64)
    seed: int = 1337
    name: str = "seclab-tiny"


def vocabulary() -> tuple[list[bytes], list[float], list[int]]:
    """Specials then the 256 byte tokens (llama SPM byte fallback covers any input)."""
    tokens = [s.encode() for s in SPECIALS] + [f"<0x{b:02X}>".encode() for b in range(256)]
    scores = [0.0] * len(tokens)
    types = [int(t) for t in (2, 3, 3)] + [6] * 256  # UNKNOWN, CONTROL, CONTROL, BYTE...
    return tokens, scores, types


def _weights(spec: TinySpec) -> dict[str, np.ndarray]:
    """Random float32 tensors (numpy shapes are ggml's ne reversed)."""
    rng = np.random.default_rng(spec.seed)
    n_vocab = BYTE_OFFSET + 256
    d, ff = spec.n_embd, spec.n_ff

    def rnd(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    emb = rnd(n_vocab, d)
    emb[:, 0] = 4.0  # the constant "bias" component (see module docstring)
    out = rnd(n_vocab, d, scale=0.5)
    printable = {ord(c) for c in string.ascii_letters + string.digits + " .,!?'-"}
    for b in range(256):
        out[BYTE_OFFSET + b, 0] = 3.0 if b in printable else -8.0
    out[:BYTE_OFFSET, 0] = -8.0  # no <unk>/<s>; </s> rare, so max_tokens bounds the length
    out[EOS_ID, 0] = -1.0
    t: dict[str, np.ndarray] = {
        "token_embd.weight": emb,
        "output_norm.weight": np.ones(d, dtype=np.float32),
        "output.weight": out,
    }
    for i in range(spec.n_layer):
        p = f"blk.{i}."
        t[p + "attn_norm.weight"] = np.ones(d, dtype=np.float32)
        t[p + "attn_q.weight"] = rnd(d, d)
        t[p + "attn_k.weight"] = rnd(d, d)
        t[p + "attn_v.weight"] = rnd(d, d)
        t[p + "attn_output.weight"] = rnd(d, d)
        t[p + "ffn_norm.weight"] = np.ones(d, dtype=np.float32)
        t[p + "ffn_gate.weight"] = rnd(ff, d)
        t[p + "ffn_up.weight"] = rnd(ff, d)
        t[p + "ffn_down.weight"] = rnd(d, ff)
    return t


def write_tiny_model(path: Path, spec: TinySpec | None = None) -> Path:
    """Write the model atomically (temp file + rename): a half-written GGUF must never be served."""
    import gguf  # imported here: only the provisioning and `lab model` need it

    spec = spec or TinySpec()
    if spec.n_embd % spec.n_head:
        raise ValueError("n_embd must be a multiple of n_head")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tiny.", suffix=".gguf", dir=path.parent)
    os.close(fd)
    try:
        w = gguf.GGUFWriter(tmp, "llama")
        w.add_name(spec.name)
        w.add_context_length(spec.n_ctx)
        w.add_embedding_length(spec.n_embd)
        w.add_block_count(spec.n_layer)
        w.add_feed_forward_length(spec.n_ff)
        w.add_head_count(spec.n_head)
        w.add_head_count_kv(spec.n_head)
        w.add_rope_dimension_count(spec.n_embd // spec.n_head)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_vocab_size(BYTE_OFFSET + 256)
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
        tokens, scores, types = vocabulary()
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_unk_token_id(UNK_ID)
        w.add_bos_token_id(BOS_ID)
        w.add_eos_token_id(EOS_ID)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_chat_template(CHAT_TEMPLATE)
        for name, arr in _weights(spec).items():
            w.add_tensor(name, arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.chmod(tmp, 0o644)  # weights are not secret; the server user must read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.ai.tinymodel", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=TinySpec().seed)
    args = ap.parse_args(argv)
    p = write_tiny_model(args.out, TinySpec(seed=args.seed))
    print(f"wrote {p} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
