"""WAF measurements: false positives on chat prompts, CRS regression coverage, CPU cost per request."""
