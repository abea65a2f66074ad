"""Training objective and per-noise-level evaluation losses.

All losses are squared errors summed over the D coordinates (the units of the closed-form excess losses
`d s2 / (1 + psi s2)`). The x0 loss is |x0_hat - x0|^2; the epsilon loss is psi_t times it. A weighting
maps t to the factor applied to the x0 loss in the training objective."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.process import add_noise, psi

MIN_SNR_GAMMA = 5.0

# weighting name -> w(t) multiplying the x0 loss.
WEIGHTINGS: dict[str, Callable] = {
    "eps": lambda t: psi(t),  # = the epsilon loss, the default objective
    "x0-uniform": lambda t: jnp.ones_like(t),  # the plain denoiser (x0) loss
    "min-snr": lambda t: jnp.minimum(psi(t), MIN_SNR_GAMMA),  # min-SNR-gamma (Hang et al. 2023), gamma 5
    "v": lambda t: psi(t) + 1.0,  # v-prediction loss = (1 + psi) x0 loss (alpha^2 + sigma^2 = 1)
}


def x0_sq_error(x0_fn, params, x0_BxD, eps_BxD, t_B):
    """|x0_hat(x_t, t) - x0|^2 per row (B), x0 units."""
    x_t = add_noise(x0_BxD, eps_BxD, t_B)
    return jnp.sum((x0_fn(params, x_t, t_B) - x0_BxD) ** 2, axis=1)


def training_objective(x0_fn, weighting: str, grid_T, draws: int, batch: int | None):
    """loss(params, key, train_NxD) -> scalar: the weighted x0 loss averaged over `batch` training points (all N
    when None), `draws` noise draws each, t uniform on the grid. Divided by D so the numbers are per
    coordinate (Adam does not care; people reading logs do). Data is an argument, not a closure constant:
    XLA would fold it into the program, slowing compilation and defeating the compilation cache."""
    weight = WEIGHTINGS[weighting]
    grid_T = jnp.asarray(grid_T)

    def loss(params, key, train_NxD):
        n, d = train_NxD.shape
        k_pick, k_t, k_eps = jax.random.split(key, 3)
        if batch is None:
            x0_BxD = jnp.tile(train_NxD, (draws, 1))
        else:
            idx = jax.random.choice(k_pick, n, (batch,), replace=False)
            x0_BxD = jnp.tile(train_NxD[idx], (draws, 1))
        t_B = grid_T[jax.random.randint(k_t, (x0_BxD.shape[0],), 0, grid_T.shape[0])]
        eps_BxD = jax.random.normal(k_eps, x0_BxD.shape, x0_BxD.dtype)
        err_B = x0_sq_error(x0_fn, params, x0_BxD, eps_BxD, t_B)
        return jnp.mean(weight(t_B) * err_B) / d

    return loss


def stack_sets(sets: list, draws: int):
    """(x0_BxD, segment_B): the data sets (e.g. train, test) tiled `draws` times and concatenated, with
    each row's set index, for `per_t_x0_loss`."""
    x0_BxD = np.concatenate([np.tile(np.asarray(x, np.float32), (draws, 1)) for x in sets])
    seg_B = np.concatenate([np.full(len(x) * draws, j) for j, x in enumerate(sets)])
    return jnp.asarray(x0_BxD), jnp.asarray(seg_B)


def per_t_x0_loss(x0_fn, grid_T, n_sets: int):
    """loss(params, key, x0_BxD, segment_B) -> T x n_sets: the mean x0 loss of each data set at every
    grid time (one program for all sets). The same key gives the same noise, so checkpoints compare on
    equal terms."""
    grid_T = jnp.asarray(grid_T)

    def at(params, key, x0_BxD, seg_B):
        eps_BxD = jax.random.normal(key, x0_BxD.shape, x0_BxD.dtype)  # common noise across t
        counts = jax.ops.segment_sum(jnp.ones_like(seg_B, jnp.float32), seg_B, n_sets)

        def one_t(carry, t):
            err_B = x0_sq_error(x0_fn, params, x0_BxD, eps_BxD, jnp.full((x0_BxD.shape[0],), t))
            return carry, jax.ops.segment_sum(err_B, seg_B, n_sets) / counts

        return jax.lax.scan(one_t, None, grid_T)[1]

    return at
