"""Closed-form reference denoisers (x0-prediction), batched over x_t (B x D) at one time t.

- `memorizing`: posterior mean of the empirical distribution of the training points (theta_mem); applied to
  a subset of M points it is theta_pmem(M).
- `gmm_posterior_mean` / `template_posterior_mean` (and `lowrank.lowrank_posterior_mean` for the low-rank
  GMM): posterior mean of the true distribution (theta_star).
All use log-sum-exp softmax; pass float64 arrays inside `with precision.x64():` for double precision.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.lowrank import lowrank_star
from memlab.diffusion.process import alpha, sigma

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]  # (x_t_BxD, t) -> x0_hat_BxD


def empirical_logits(x_BxD, t, points_NxD, sq_norms_N=None):
    """log softmax numerators -|x_t - alpha_t x_i|^2 / (2 sigma_t^2) up to a per-row constant (|x_t|^2 is
    dropped: it cancels in the softmax). Returns B x N."""
    a, s2 = alpha(t), sigma(t) ** 2
    if sq_norms_N is None:
        sq_norms_N = jnp.sum(points_NxD**2, axis=1)
    return (a * (x_BxD @ points_NxD.T) - 0.5 * a**2 * sq_norms_N[None, :]) / s2


@jax.jit
def memorizing(x_BxD, t, points_NxD):
    """theta_mem over `points` (theta_pmem(M) when `points` is a subset of M training points)."""
    w_BxN = jax.nn.softmax(empirical_logits(x_BxD, t, points_NxD), axis=1)
    return w_BxN @ points_NxD


@jax.jit
def gmm_posterior_mean(x_BxD, t, means_KxD, variance, log_weights_K):
    """Posterior mean of an isotropic Gaussian mixture (shared variance s2) under the VP process:
    v_t = alpha^2 s2 + sigma^2, w_k = softmax(log pi_k - |x_t - alpha mu_k|^2 / (2 v_t)),
    x0_hat = sum_k w_k (mu_k + alpha s2 (x_t - alpha mu_k) / v_t)."""
    a, s2t = alpha(t), sigma(t) ** 2
    v = a**2 * variance + s2t
    logits = log_weights_K[None, :] + (a * x_BxD @ means_KxD.T - 0.5 * a**2 * jnp.sum(means_KxD**2, 1)[None]) / v
    w_BxK = jax.nn.softmax(logits, axis=1)
    mean_mu = w_BxK @ means_KxD
    return mean_mu + a * variance / v * (x_BxD - a * mean_mu)


@jax.jit
def template_posterior_mean(x_BxD, t, templates_KxP, colour_means_KxC, colour_variance, log_weights_K):
    """Exact posterior mean of the colored-template mixture x = c (outer) a_k, c ~ N(mu_k, s_c^2 I_C), at
    time t (a scalar, or one time per row).

    Per component and colour channel, x_t[ch] ~ N(alpha mu_kc a_k, alpha^2 s_c^2 a_k a_k^T + sigma^2 I): by
    Woodbury the quadratic form is (|r|^2 - beta (a.r)^2) / sigma^2 with beta = alpha^2 s_c^2 / (sigma^2 +
    alpha^2 s_c^2 |a|^2), and the log-determinant is P log sigma^2 + log(1 + alpha^2 s_c^2 |a|^2 / sigma^2)
    per channel (C*P log sigma^2 + C log(1 + ...) in all). E[c_ch | x_t, k] = mu_kc + alpha s_c^2 (a.r_ch) /
    (sigma^2 + alpha^2 s_c^2 |a|^2)."""
    K, P = templates_KxP.shape
    C = colour_means_KxC.shape[1]
    B = x_BxD.shape[0]
    # t: a scalar or one time per row; as a B x 1 column every row's formulas are the same batched matmuls
    t_Bx1 = jnp.broadcast_to(jnp.reshape(t, (-1, 1)), (B, 1))
    a_Bx1, s2t_Bx1 = alpha(t_Bx1), sigma(t_Bx1) ** 2
    a_Bx1x1 = a_Bx1[:, :, None]
    x_BxCxP = x_BxD.reshape(B, C, P)
    norm2_K = jnp.sum(templates_KxP**2, axis=1)
    denom_BxK = s2t_Bx1 + a_Bx1**2 * colour_variance * norm2_K[None]  # sigma^2 + alpha^2 s_c^2 |a|^2
    proj_BxCxK = jnp.einsum("bcp,kp->bck", x_BxCxP, templates_KxP)  # a_k . x_t[ch]
    mean_proj_BxCxK = proj_BxCxK - a_Bx1x1 * colour_means_KxC.T[None] * norm2_K[None, None]  # a_k . r_ch
    # |r_ch|^2 = |x_ch|^2 - 2 alpha mu a.x_ch + alpha^2 mu^2 |a|^2; the |x|^2 part is common to all k.
    r2_BxK = jnp.sum(-2 * a_Bx1x1 * colour_means_KxC.T[None] * proj_BxCxK
                     + (a_Bx1x1**2) * (colour_means_KxC.T[None] ** 2) * norm2_K[None, None], axis=1)
    beta_BxK = a_Bx1**2 * colour_variance / denom_BxK
    quad_BxK = (r2_BxK - beta_BxK * jnp.sum(mean_proj_BxCxK**2, axis=1)) / s2t_Bx1
    # + C*P log sigma^2, the same for every k
    logdet_BxK = C * jnp.log1p(a_Bx1**2 * colour_variance * norm2_K[None] / s2t_Bx1)
    w_BxK = jax.nn.softmax(log_weights_K[None] - 0.5 * (quad_BxK + logdet_BxK), axis=1)
    colour_BxCxK = colour_means_KxC.T[None] + a_Bx1x1 * colour_variance * mean_proj_BxCxK / denom_BxK[:, None, :]
    x0_BxCxP = jnp.einsum("bk,bck,kp->bcp", w_BxK, colour_BxCxK, templates_KxP)
    return x0_BxCxP.reshape(B, C * P)


def star_denoiser(truth, dtype=jnp.float32) -> Denoiser:
    """theta_star for a ground truth from `synthetic` (dispatch on its type)."""
    name = type(truth).__name__
    if name not in _STAR:
        raise TypeError(f"no closed-form posterior mean for {name}; known: {', '.join(_STAR)}")
    return _STAR[name](truth, dtype)


# The star denoisers are jax.tree_util.Partial objects: callables whose arrays are pytree leaves, so a jitted
# function takes one as an ordinary argument and compiles once for every dataset of the same shapes.
def _gmm_call(means, variance, logw, x, t):
    return gmm_posterior_mean(x, t, means, variance, logw)


def _template_call(temps, mu, s2, logw, x, t):
    return template_posterior_mean(x, t, temps, mu, s2, logw)


def _gmm_star(truth, dtype) -> Denoiser:
    means = jnp.asarray(truth.means_KxD, dtype)
    logw = jnp.asarray(np.log(truth.weights_K), dtype)
    return jax.tree_util.Partial(_gmm_call, means, jnp.asarray(truth.variance, dtype), logw)


def _template_star(truth, dtype) -> Denoiser:
    temps = jnp.asarray(truth.templates_KxP, dtype)
    mu = jnp.asarray(truth.colour_means_KxC, dtype)
    logw = jnp.asarray(np.log(truth.weights_K), dtype)
    s2 = jnp.asarray(truth.colour_variance, dtype)
    return jax.tree_util.Partial(_template_call, temps, mu, s2, logw)


_STAR = {"GMMTruth": _gmm_star, "TemplateTruth": _template_star, "LowRankGMMTruth": lowrank_star}


def memorizing_denoiser(points_NxD, dtype=jnp.float32) -> Denoiser:
    pts = jnp.asarray(points_NxD, dtype)
    return lambda x, t: memorizing(x, t, pts)

