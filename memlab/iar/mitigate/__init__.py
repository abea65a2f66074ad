"""Mitigations of memorization in IAR models. Each one writes a new run (unlearning, MemSinks training,
cartography pruning, checkpoint merging, deduplication) that the yardstick scores like any other model."""
