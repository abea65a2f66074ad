"""Posterior mean (x0) of a mixture of low-rank-plus-isotropic Gaussians under the VP process: theta_star of
the low-rank GMM (`synthetic.lowrank`).

Component k: x0 ~ N(mu_k, s2_k U_k U_k^T + tau^2 I), U_k d x r with orthonormal columns. Then
x_t | k ~ N(alpha mu_k, alpha^2 s2_k U_k U_k^T + v I) with v = alpha^2 tau^2 + sigma^2: variance w_k =
v + alpha^2 s2_k along the subspace, v off it. With r = x_t - alpha mu_k and p = U_k^T r,
  log N = -(|r - U_k p|^2 / v + |p|^2 / w_k + r log w_k + (d - r) log v) / 2 + const,
  E[x0 | x_t, k] = mu_k + alpha tau^2 / v r + alpha (s2_k sigma^2 / (v w_k)) U_k p
(the coefficient along the subspace is alpha (s2_k + tau^2) / w_k, off it alpha tau^2 / v).

The colored templates are the block-diagonal case (U_k = a_k / |a_k| in each colour channel, s2_k =
s_c^2 |a_k|^2, tau^2 = 0); `denoisers.template_posterior_mean` computes that case without forming the
d x C bases (C times fewer flops), and a test checks that the two agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.process import alpha, sigma


@jax.jit
def lowrank_posterior_mean(x_BxD, t, means_KxD, bases_KxDxR, variances_K, noise, log_weights_K):
    """x0_hat (B x D) at time t (a scalar, or one time per row). Residuals r = x_t - alpha mu_k are formed
    explicitly (B x K x D): no |x_t|^2 is dropped and re-added, so the quadratic forms keep their accuracy
    at small t, where 1/v is large."""
    B = x_BxD.shape[0]
    R = bases_KxDxR.shape[2]
    t_Bx1 = jnp.broadcast_to(jnp.reshape(t, (-1, 1)), (B, 1))
    a_Bx1, s2t_Bx1 = alpha(t_Bx1), sigma(t_Bx1) ** 2
    v_Bx1 = a_Bx1**2 * noise + s2t_Bx1
    w_BxK = v_Bx1 + a_Bx1**2 * variances_K[None]
    r_BxKxD = x_BxD[:, None, :] - a_Bx1[:, :, None] * means_KxD[None]
    p_BxKxR = jnp.einsum("bkd,kdr->bkr", r_BxKxD, bases_KxDxR)
    perp_BxKxD = r_BxKxD - jnp.einsum("bkr,kdr->bkd", p_BxKxR, bases_KxDxR)
    quad_BxK = jnp.sum(perp_BxKxD**2, axis=2) / v_Bx1 + jnp.sum(p_BxKxR**2, axis=2) / w_BxK
    logdet_BxK = R * jnp.log1p(a_Bx1**2 * variances_K[None] / v_Bx1)  # (d log v is common to every k)
    resp_BxK = jax.nn.softmax(log_weights_K[None] - 0.5 * (quad_BxK + logdet_BxK), axis=1)
    along_BxK = variances_K[None] * s2t_Bx1 / (v_Bx1 * w_BxK)
    mean_BxD = resp_BxK @ means_KxD
    iso_BxD = (a_Bx1 * noise / v_Bx1) * jnp.einsum("bk,bkd->bd", resp_BxK, r_BxKxD)
    sub_BxD = a_Bx1 * jnp.einsum("bk,bkr,kdr->bd", resp_BxK * along_BxK, p_BxKxR, bases_KxDxR)
    return mean_BxD + iso_BxD + sub_BxD


def _lowrank_call(means, bases, variances, noise, logw, x, t):
    return lowrank_posterior_mean(x, t, means, bases, variances, noise, logw)


def lowrank_star(truth, dtype):
    """theta_star for a `synthetic.LowRankGMMTruth` (a jax.tree_util.Partial, as the other star denoisers)."""
    K = len(truth.weights_K)
    return jax.tree_util.Partial(
        _lowrank_call, jnp.asarray(truth.means_KxD, dtype), jnp.asarray(truth.bases_KxDxR, dtype),
        jnp.full((K,), truth.variance, dtype), jnp.asarray(truth.noise, dtype),
        jnp.asarray(np.log(truth.weights_K), dtype))
