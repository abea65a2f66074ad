"""PyTorch half: tokenizers, image-autoregressive models, training, hooks, UnitMem, extraction, ablation.
Never imports jax."""
