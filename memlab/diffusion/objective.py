"""Training objective and per-noise-level evaluation losses.

All losses are squared errors summed over the D coordinates (the units of the closed-form excess losses
`d s2 / (1 + psi s2)`). The x0 loss is |x0_hat - x0|^2; the epsilon loss is psi_t times it. A weighting
gives each grid time the factor applied to its x0 loss in the training objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion import rng
from memlab.diffusion.process import add_noise, psi_np

MIN_SNR_GAMMA = 5.0


def _elbo(t):
    """-(1/2) dpsi/dt = 1/t^3 per unit t, times T dt: with t uniform on the grid, the mean over t is then
    the grid's Riemann sum of the continuous-time ELBO (x0 units)."""
    dt = np.abs(np.gradient(t)) if len(t) > 1 else np.ones_like(t)
    return len(t) * dt / t**3


# weighting name -> w(t) on the x0 loss, in natural units: 'eps' is exactly the epsilon loss.
# memlab.crossover.weighting normalizes these same functions, so a trained model and the crossover
# prediction weigh noise levels alike. The scale matters through gradient clipping.
WEIGHTINGS = {
    "eps": psi_np,
    "x0-uniform": np.ones_like,
    "elbo": _elbo,
    "min-snr": lambda t: np.minimum(psi_np(t), MIN_SNR_GAMMA),  # min-SNR-gamma (Hang et al. 2023), gamma 5
    "v": lambda t: psi_np(t) + 1.0,  # the v-prediction loss: (1 + psi) x0 loss, since alpha^2 + sigma^2 = 1
}


def grid_weights(weighting: str, grid_T) -> np.ndarray:
    """w(t) of each grid time, multiplying its x0 loss in the training objective."""
    return WEIGHTINGS[weighting](np.asarray(grid_T, float))


def x0_sq_error(x0_fn, params, x0_BxD, eps_BxD, t_B):
    """|x0_hat(x_t, t) - x0|^2 per row (B), x0 units."""
    x_t = add_noise(x0_BxD, eps_BxD, t_B)
    return jnp.sum((x0_fn(params, x_t, t_B) - x0_BxD) ** 2, axis=1)


def training_objective(sq_error_fn, weighting: str, grid_T, draws: int, batch: int | None, n: int, d: int):
    """(noise, loss). sq_error_fn(params, x0_BxD, eps_BxD, t_B, w_B) -> sum_b w_b |x0_hat - x0|^2 (a
    Denoiser's `weighted_sq_error`). noise(key) -> the step's random draws: which `batch` training points
    (all N when None), a grid index per row (t uniform on the grid) and epsilon, `draws` rows per point.
    loss(params, noise, train_NxD) -> the weighted x0 loss (with 'eps': the epsilon loss), divided by D so
    the numbers are per coordinate. Drawing is separate so that several seeds trained under vmap draw
    exactly what each would draw alone ('rbg' bits differ under vmap). Data is an argument, not a closure
    constant: XLA would fold it into the program, slowing compilation and defeating the compilation cache."""
    w_T = jnp.asarray(grid_weights(weighting, grid_T), jnp.float32)
    grid_T = jnp.asarray(grid_T)
    rows = (n if batch is None else batch) * draws

    def noise(key):
        k_pick, k_t, k_eps = jax.random.split(key, 3)
        pick = jnp.arange(n) if batch is None else jax.random.choice(k_pick, n, (batch,), replace=False)
        return {"pick": pick, "t_idx": jax.random.randint(k_t, (rows,), 0, grid_T.shape[0]),
                "eps": rng.normal(k_eps, (rows, d))}

    def loss(params, nz, train_NxD):
        x0_BxD = jnp.tile(train_NxD[nz["pick"]], (draws, 1))
        t_idx = nz["t_idx"]
        return sq_error_fn(params, x0_BxD, nz["eps"], grid_T[t_idx], w_T[t_idx]) / (rows * d)

    return noise, loss


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
        eps_BxD = rng.normal(key, x0_BxD.shape, x0_BxD.dtype)  # common noise across t
        counts = jax.ops.segment_sum(jnp.ones_like(seg_B, jnp.float32), seg_B, n_sets)

        def one_t(carry, t):
            err_B = x0_sq_error(x0_fn, params, x0_BxD, eps_BxD, jnp.full((x0_BxD.shape[0],), t))
            return carry, jax.ops.segment_sum(err_B, seg_B, n_sets) / counts

        return jax.lax.scan(one_t, None, grid_T)[1]

    return at
