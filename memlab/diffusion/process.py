"""The variance-preserving noise process: x_t = alpha_t x_0 + sigma_t eps, alpha_t = sqrt(1 - t^2),
sigma_t = t, signal-to-noise psi_t = alpha_t^2 / sigma_t^2.

Loss units: the epsilon loss |eps_hat - eps|^2 equals psi_t times the x0 loss |x0_hat - x0|^2, because
eps_hat - eps = -(alpha_t / sigma_t)(x0_hat - x0)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

T_MAX, T_MIN, N_GRID = 0.999, 0.001, 26


def default_grid(n: int = N_GRID, t_max: float = T_MAX, t_min: float = T_MIN) -> np.ndarray:
    """Time grid from t_max down to t_min (26 points by default), shared by training, loss evaluation and
    the DDIM sampler. Returned as numpy so that it is usable without tracing."""
    return np.linspace(t_max, t_min, n)


def alpha(t):
    return jnp.sqrt(1.0 - t**2)


def sigma(t):
    return t


def psi(t):
    """Signal-to-noise ratio alpha_t^2 / sigma_t^2."""
    return (1.0 - t**2) / t**2


def psi_np(t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    return (1.0 - t**2) / t**2


def add_noise(x0, eps, t):
    """x_t for clean x0 (B x D), noise eps (B x D) and times t (scalar or B)."""
    t = jnp.asarray(t)
    if t.ndim == 1:
        t = t[:, None]
    return alpha(t) * x0 + sigma(t) * eps


def x0_to_eps_loss(loss_x0, t):
    """Convert an x0 (denoiser) loss at time t to epsilon-loss units."""
    return psi(t) * loss_x0


def eps_to_x0_loss(loss_eps, t):
    return loss_eps / psi(t)


def x0_from_eps(x_t, eps_hat, t):
    return (x_t - sigma(t) * eps_hat) / alpha(t)


def eps_from_x0(x_t, x0_hat, t):
    return (x_t - alpha(t) * x0_hat) / sigma(t)
