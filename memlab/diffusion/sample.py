"""Samplers on the time grid, from N(0, I) at the first grid time down to the last, finishing with one
denoising step (the output is x0_hat at the last grid time).

- 'ddim' (deterministic): x_{t'} = (sigma_{t'}/sigma_t) x_t + alpha_{t'} (1 - alpha_t sigma_{t'} /
  (alpha_{t'} sigma_t)) x0_hat(x_t, t);
- 'ancestral': a draw from the forward process' posterior q(x_{t'} | x_t, x0 = x0_hat).

Per-sample seeds: sample i uses only key fold_in(key, i) (its start and its ancestral noise), so sample i
depends only on seed i, whatever the number of samples drawn."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from memlab.diffusion.process import alpha, sigma


def ddim_update(x_BxD, x0_BxD, t, t_next, key_B):
    del key_B
    s, s_next, a, a_next = sigma(t), sigma(t_next), alpha(t), alpha(t_next)
    return (s_next / s) * x_BxD + a_next * (1.0 - a * s_next / (a_next * s)) * x0_BxD


def ancestral_update(x_BxD, x0_BxD, t, t_next, key_B):
    """Posterior of the VP process between t_next < t: with a = alpha_t / alpha_{t'} and
    s2 = sigma_t^2 - a^2 sigma_{t'}^2, mean = (a sigma_{t'}^2 x_t + alpha_{t'} s2 x0) / sigma_t^2 and
    variance = s2 sigma_{t'}^2 / sigma_t^2."""
    a_ts = alpha(t) / alpha(t_next)
    s2_ts = sigma(t) ** 2 - a_ts**2 * sigma(t_next) ** 2
    mean = (a_ts * sigma(t_next) ** 2 * x_BxD + alpha(t_next) * s2_ts * x0_BxD) / sigma(t) ** 2
    std = jnp.sqrt(s2_ts) * sigma(t_next) / sigma(t)
    dtype = jnp.asarray(x_BxD).dtype  # the default float (float32 unless x64 is on)
    noise_BxD = jax.vmap(lambda k: jax.random.normal(k, x_BxD.shape[1:], dtype))(key_B)
    return mean + std * noise_BxD


SAMPLERS: dict[str, Callable] = {"ddim": ddim_update, "ancestral": ancestral_update}


def sample_keys(key, n: int):
    """One key per sample: fold_in(key, i) for i < n."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))


def make_sampler(x0_fn, dim: int, grid_T, method: str = "ddim"):
    """Jitted sampler(params, keys_S) -> samples_SxD for a denoiser x0_fn(params, x_BxD, t_B)."""
    update = SAMPLERS[method]
    grid_T = jnp.asarray(grid_T)

    @jax.jit
    def run(params, keys_S):
        x_SxD = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (dim,)))(keys_S)
        n = x_SxD.shape[0]

        def step(x, i):
            t, t_next = grid_T[i], grid_T[i + 1]
            x0 = x0_fn(params, x, jnp.full((n,), t))
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, i + 1))(keys_S)
            return update(x, x0, t, t_next, step_keys), None

        x_SxD, _ = jax.lax.scan(step, x_SxD, jnp.arange(grid_T.shape[0] - 1))
        return x0_fn(params, x_SxD, jnp.full((n,), grid_T[-1]))

    return run


def draw(x0_fn, params, dim: int, grid_T, key, n: int, method: str = "ddim"):
    """n samples (n x dim) of denoiser x0_fn with per-sample keys fold_in(key, i)."""
    return make_sampler(x0_fn, dim, grid_T, method)(params, sample_keys(key, n))
