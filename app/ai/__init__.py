"""AI layer: providers, prompt-injection guard, PII pseudonymization."""
