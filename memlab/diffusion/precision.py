"""float32 by default. `x64()` computes in float64 for the duration of a `with` block and leaves the caller's
precision as it was: library code never switches the process (a notebook that calls `predict(x64=True)` and
then trains, trains in float32).

There is deliberately no process-wide switch here: nothing in memlab needs one, the `--x64` option of
`memlab crossover predict` included (the prediction is the only JAX work of that command, and it runs
inside the scope)."""

import jax


def x64(on: bool = True):
    """Context manager: inside, JAX's default float is float64 (on=True) or float32 (on=False); on exit the
    previous setting is back. Thread-local, and part of jit's cache key, so functions compiled in one
    precision are re-traced in the other rather than reused."""
    return jax.enable_x64(bool(on))
