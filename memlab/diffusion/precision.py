"""float32 by default; `enable_x64()` switches JAX to float64 for the whole process."""

import jax


def enable_x64(on: bool = True) -> None:
    jax.config.update("jax_enable_x64", bool(on))

