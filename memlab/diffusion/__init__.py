"""JAX diffusion core: the VP noise process, closed-form reference denoisers, trainable denoisers,
training and sampling. Never imports torch."""
