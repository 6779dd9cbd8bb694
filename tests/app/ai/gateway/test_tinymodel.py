"""The generated model: reproducible bytes, the keys llama.cpp needs, and it really loads and generates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf


def test_same_seed_same_bytes(tmp_path: Path, tiny_model: Path) -> None:
    from app.ai.tinymodel import write_tiny_model

    again = write_tiny_model(tmp_path / "again.gguf")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(tiny_model.read_bytes()).digest()


def test_has_byte_tokens_and_rms_epsilon(tiny_model: Path) -> None:
    r = gguf.GGUFReader(str(tiny_model))
    assert "llama.attention.layer_norm_rms_epsilon" in r.fields
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]).decode() for i in f.data]
    assert tokens[3] == "<0x00>" and tokens[-1] == "<0xFF>" and len(tokens) == 259
    types = r.fields["tokenizer.ggml.token_type"]
    assert {int(types.parts[i][0]) for i in types.data[3:]} == {6}  # BYTE


def test_loads_and_generates(tiny_model: Path) -> None:
    import llama_cpp

    m = llama_cpp.Llama(model_path=str(tiny_model), n_ctx=256, verbose=False)
    out = m("Hello", max_tokens=8, temperature=0.0, stream=False)
    assert isinstance(out, dict)
    assert out["usage"]["completion_tokens"] >= 1
    assert out["choices"][0]["text"]
