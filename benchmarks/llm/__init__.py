"""LLM benchmarks (the local llama.cpp server with the generated tiny model)."""
