"""Posterior mean (x0) of a mixture of low-rank-plus-isotropic Gaussians under the VP process: theta_star of
the low-rank GMM (`synthetic.lowrank`) and the output of the trainable low-rank mixture estimator.

Component k: x0 ~ N(mu_k, F_k F_k^T + tau^2 I), F_k a d x r factor (for the low-rank GMM F_k = sqrt(s2) U_k
with orthonormal U_k). Then x_t | k ~ N(alpha mu_k, alpha^2 F_k F_k^T + v I), v = alpha^2 tau^2 + sigma^2,
and by Woodbury, with r = x_t - alpha mu_k, q = F_k^T r, S = v I_r + alpha^2 F_k^T F_k, y = S^-1 q:
  r^T Cov^-1 r = (|r|^2 - alpha^2 q.y) / v,   log det Cov = d log v + log det(S / v),
  E[x0 | x_t, k] = mu_k + alpha (F_k y + tau^2 (r - alpha^2 F_k y) / v).
The colored templates are the block-diagonal case (F_k = s_c a_k in each colour channel, tau^2 = 0);
`denoisers.template_posterior_mean` computes that case without forming the d x C factors (C times fewer
flops), and a test checks that the two agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.process import alpha, sigma


@jax.jit
def lowrank_posterior_mean(x_BxD, t, means_KxD, factors_KxDxR, noise, log_weights_K):
    """x0_hat (B x D) at time t (a scalar, or one time per row); `noise` is tau^2 (>= 0, a scalar).
    Residuals r = x_t - alpha mu_k are formed explicitly (B x K x D): no |x_t|^2 is dropped and re-added.
    One r x r Cholesky per row and component."""
    B = x_BxD.shape[0]
    R = factors_KxDxR.shape[2]
    t_Bx1 = jnp.broadcast_to(jnp.reshape(t, (-1, 1)), (B, 1))
    a_Bx1, s2t_Bx1 = alpha(t_Bx1), sigma(t_Bx1) ** 2
    a2_Bx1 = a_Bx1**2
    v_Bx1 = a2_Bx1 * noise + s2t_Bx1
    r_BxKxD = x_BxD[:, None, :] - a_Bx1[:, :, None] * means_KxD[None]
    q_BxKxR = jnp.einsum("bkd,kdr->bkr", r_BxKxD, factors_KxDxR)
    gram_KxRxR = jnp.einsum("kdr,kds->krs", factors_KxDxR, factors_KxDxR)
    S_BxKxRxR = v_Bx1[:, :, None, None] * jnp.eye(R, dtype=x_BxD.dtype) + a2_Bx1[:, :, None, None] * gram_KxRxR[None]
    L_BxKxRxR = jnp.linalg.cholesky(S_BxKxRxR)
    y_BxKxR = jax.scipy.linalg.cho_solve((L_BxKxRxR, True), q_BxKxR[..., None])[..., 0]
    quad_BxK = (jnp.sum(r_BxKxD**2, axis=2) - a2_Bx1 * jnp.sum(q_BxKxR * y_BxKxR, axis=2)) / v_Bx1
    logdet_BxK = 2 * jnp.sum(jnp.log(jnp.diagonal(L_BxKxRxR, axis1=2, axis2=3)), axis=2) - R * jnp.log(v_Bx1)
    resp_BxK = jax.nn.softmax(log_weights_K[None] - 0.5 * (quad_BxK + logdet_BxK), axis=1)
    Fy_BxKxD = jnp.einsum("kdr,bkr->bkd", factors_KxDxR, y_BxKxR)
    x0_BxKxD = means_KxD[None] + a_Bx1[:, :, None] * (
        Fy_BxKxD + (noise / v_Bx1)[:, :, None] * (r_BxKxD - a2_Bx1[:, :, None] * Fy_BxKxD))
    return jnp.einsum("bk,bkd->bd", resp_BxK, x0_BxKxD)


def _lowrank_call(means, factors, noise, logw, x, t):
    return lowrank_posterior_mean(x, t, means, factors, noise, logw)


def lowrank_star(truth, dtype):
    """theta_star for a `synthetic.LowRankGMMTruth` (a jax.tree_util.Partial, as the other star denoisers)."""
    return jax.tree_util.Partial(
        _lowrank_call, jnp.asarray(truth.means_KxD, dtype),
        jnp.asarray(np.sqrt(truth.variance) * truth.bases_KxDxR, dtype), jnp.asarray(truth.noise, dtype),
        jnp.asarray(np.log(truth.weights_K), dtype))
