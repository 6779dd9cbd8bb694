"""Offline evaluations of the guard, kept with the model they evaluate (``python -m app.ai.guard.eval.<name>``).

``measure``: per-corpus rates of the shipped and the held-out evaluation model, calibration, speed, size
and load time. ``generalization``: group-aware cross-validation and leave-one-family-out (minutes).
Development tools: they need the corpora (and scikit-learn for ``generalization``), never the chat path.
"""
