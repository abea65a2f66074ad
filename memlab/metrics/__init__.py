"""Memorization ratio with bootstrap intervals, and diagnostics of learned mixture parameters.
numpy only: these run on samples and parameters already pulled off the device."""
