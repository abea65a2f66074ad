"""Monte Carlo training losses L_{N,t} (x0 units) of theta_mem, theta_star and theta_pmem(M) for a whole grid
of M at once.

Sharing work across M: for one random permutation of the training set, theta_pmem(M) uses the first M points.
The softmax numerators and normalizers of every prefix are running sums over blocks of the permuted set,
merged with a running log-sum-exp maximum (no underflow at small t, where the weights are one-hot). All M
of one permutation therefore cost one pass over N per query, and the query logits are computed once for all
permutations. Noise draws are common to every model and every M (common random numbers), so differences
between models carry less Monte Carlo noise than the losses themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from memlab.diffusion.denoisers import empirical_logits, star_denoiser
from memlab.diffusion.process import add_noise, psi_np


@dataclass(frozen=True)
class LossTable:
    """Per-training-point Monte Carlo losses (x0 units, summed over coordinates, averaged over draws)."""

    t_T: np.ndarray
    m_G: np.ndarray  # model sizes M (number of stored training points)
    mem_NxT: np.ndarray
    star_NxT: np.ndarray
    pmem_PxGxNxT: np.ndarray  # P permutations (nested subsets), G sizes
    perms_PxN: np.ndarray
    draws_P: np.ndarray  # noise draws per training point behind each permutation's estimate

    @property
    def psi_T(self) -> np.ndarray:
        return psi_np(self.t_T)

    @property
    def pmem_GxNxT(self) -> np.ndarray:
        """Pooled over permutations, weighted by their draws: the estimate that uses every draw."""
        w_P = self.draws_P / self.draws_P.sum()
        return np.einsum("p,pgnt->gnt", w_P, self.pmem_PxGxNxT)


def m_grid(n: int, size: int, spacing: str = "linear") -> np.ndarray:
    """`size` distinct model sizes from 1 to N (always ending at N, where theta_pmem = theta_mem)."""
    if spacing == "log":
        raw = np.geomspace(1, n, size)
    else:
        raw = np.linspace(1, n, size)
    grid = np.unique(np.clip(np.round(raw).astype(int), 1, n))
    # Rounding can merge small log-spaced values; top up with the smallest unused sizes.
    missing = size - len(grid)
    if missing > 0:
        extra = np.setdiff1d(np.arange(1, n + 1), grid)[:missing]
        grid = np.unique(np.concatenate([grid, extra]))
    return grid


def _segments(m_G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad the segments [M_{g-1}, M_g) of a permutation to a common length L.
    Returns positions G x L (into the permuted order) and a validity mask G x L."""
    starts = np.concatenate([[0], m_G[:-1]])
    lengths = m_G - starts
    L = int(lengths.max())
    pos = starts[:, None] + np.arange(L)[None, :]
    valid = np.arange(L)[None, :] < lengths[:, None]
    return np.where(valid, pos, 0), valid


@partial(jax.jit, static_argnames=("star_fn", "chunk"))
def _losses_one_perm(x0_BxD, eps_BxD, t, points_NxD, sq_norms_N, idx_GxL, valid_GxL, star_fn, chunk):
    """Squared x0 errors at one t for B queries (B a multiple of `chunk`): theta_mem (B), theta_star (B), and
    theta_pmem over every prefix of one permutation (G x B). Chunks keep the running sums in cache."""
    Xb_GxLxD = points_NxD[idx_GxL]
    neg_inf = jnp.array(-jnp.inf, x0_BxD.dtype)
    D = x0_BxD.shape[1]

    def one_chunk(args):
        x0_CxD, eps_CxD = args
        xt_CxD = add_noise(x0_CxD, eps_CxD, t)
        logits_CxN = empirical_logits(xt_CxD, t, points_NxD, sq_norms_N)
        mem_C = jnp.sum((jax.nn.softmax(logits_CxN, axis=1) @ points_NxD - x0_CxD) ** 2, axis=1)
        star_C = jnp.sum((star_fn(xt_CxD, t) - x0_CxD) ** 2, axis=1)
        l_GxCxL = jnp.where(valid_GxL[:, None, :], logits_CxN[:, idx_GxL].transpose(1, 0, 2), neg_inf)

        def step(carry, xs):
            m_C, S_CxD, Z_C = carry
            l_CxL, Xb_LxD = xs
            mb_C = jnp.max(l_CxL, axis=1)
            e_CxL = jnp.exp(l_CxL - mb_C[:, None])
            m_new = jnp.maximum(m_C, mb_C)
            ca, cb = jnp.exp(m_C - m_new), jnp.exp(mb_C - m_new)
            S_CxD = S_CxD * ca[:, None] + (e_CxL @ Xb_LxD) * cb[:, None]
            Z_C = Z_C * ca + jnp.sum(e_CxL, axis=1) * cb
            return (m_new, S_CxD, Z_C), jnp.sum((S_CxD / Z_C[:, None] - x0_CxD) ** 2, axis=1)

        C = x0_CxD.shape[0]
        init = (jnp.full((C,), neg_inf), jnp.zeros((C, D), x0_CxD.dtype), jnp.zeros((C,), x0_CxD.dtype))
        _, pmem_GxC = jax.lax.scan(step, init, (l_GxCxL, Xb_GxLxD))
        return mem_C, star_C, pmem_GxC

    n = x0_BxD.shape[0] // chunk
    mem, star, pmem = jax.lax.map(one_chunk, (x0_BxD.reshape(n, chunk, D), eps_BxD.reshape(n, chunk, D)))
    return mem.reshape(-1), star.reshape(-1), pmem.transpose(1, 0, 2).reshape(pmem.shape[1], -1)


def draws_per_permutation(draws: int, repeats: int) -> np.ndarray:
    """How many of the draws each permutation gets when draw r goes to permutation r mod P."""
    return np.array([draws // repeats + (p < draws % repeats) for p in range(repeats)])


def _draws(key_t, ids, draws, D, dtype):
    """Noise of training point i depends only on (seed, t, i): the same whatever the batching."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key_t, i), (draws, D), dtype))(jnp.asarray(ids))


def monte_carlo_losses(dataset, t_T: np.ndarray, m_G: np.ndarray, draws: int, repeats: int, seed: int = 0,
                       dtype=jnp.float32, chunk: int = 4096, progress=None) -> LossTable:
    """Losses of theta_mem, theta_star (all `draws` noise draws per training point at every t) and of
    theta_pmem(M) for every M in m_G under `repeats` nested-subset permutations. The draws are dealt out to
    the permutations (draw r goes to permutation r mod P), so each permutation's estimate uses about
    draws/P draws per point and the spread across permutations carries both subset and Monte Carlo noise,
    while the mean over permutations has the accuracy of all the draws."""
    X = np.asarray(dataset.train_NxD)
    N, D = X.shape
    if not 1 <= repeats <= draws:
        raise ValueError(f"repeats must be in [1, draws={draws}], got {repeats}")
    points = jnp.asarray(X, dtype)
    sq_norms = jnp.sum(points**2, axis=1)
    star_fn = star_denoiser(dataset.truth, dtype)
    perms = permutations(N, repeats, seed)
    draws_P = draws_per_permutation(draws, repeats)
    pos_GxL, valid_GxL = _segments(np.asarray(m_G))
    valid = jnp.asarray(valid_GxL)
    key = jax.random.key(seed)
    T, G = len(t_T), len(m_G)
    mem, star = np.zeros((N, T)), np.zeros((N, T))
    pmem = np.zeros((repeats, G, N, T))
    for ti, t in enumerate(t_T):
        eps_NxRxD = _draws(jax.random.fold_in(key, ti), np.arange(N), draws, D, dtype)
        mem_sum, star_sum = np.zeros(N), np.zeros(N)
        pending = []
        for p, r_p in enumerate(draws_P):  # dispatch every permutation before collecting: JAX overlaps the calls
            eps_p = eps_NxRxD[:, p::repeats].reshape(-1, D)
            x0 = jnp.repeat(points, r_p, axis=0)
            c = min(chunk, x0.shape[0])
            pad = (-x0.shape[0]) % c
            x0_pad = jnp.concatenate([x0, x0[:pad]]) if pad else x0
            eps_pad = jnp.concatenate([eps_p, eps_p[:pad]]) if pad else eps_p
            pending.append((r_p, _losses_one_perm(x0_pad, eps_pad, jnp.asarray(t, dtype), points, sq_norms,
                                                  jnp.asarray(perms[p][pos_GxL]), valid, star_fn, c)))
        for p, (r_p, (m_B, s_B, p_GxB)) in enumerate(pending):
            B = N * r_p
            mem_sum += np.asarray(m_B[:B]).reshape(N, r_p).sum(1)
            star_sum += np.asarray(s_B[:B]).reshape(N, r_p).sum(1)
            pmem[p, :, :, ti] = np.asarray(p_GxB[:, :B]).reshape(G, N, r_p).mean(2)
        mem[:, ti], star[:, ti] = mem_sum / draws, star_sum / draws
        if progress is not None:
            progress(ti + 1, T)
    return LossTable(np.asarray(t_T), np.asarray(m_G), mem, star, pmem, perms, draws_P)


def permutations(n: int, repeats: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0]))
    return np.stack([rng.permutation(n) for _ in range(repeats)])


def naive_pmem_losses(dataset, t_T, m_G, draws: int, perms_PxN: np.ndarray, seed: int = 0,
                      dtype=jnp.float32, t_ids=None) -> np.ndarray:
    """Reference implementation: every (permutation, M, t) evaluated from scratch with theta_pmem on its own
    subset, with the same noise draws as `monte_carlo_losses` (`t_ids`: the grid index of each t, which
    seeds its draws; default 0..T-1). Returns P x G x N x T. Used by tests and by
    benchmarks/crossover.py to measure the speed-up of the shared computation."""
    from memlab.diffusion.denoisers import memorizing

    X = np.asarray(dataset.train_NxD)
    N, D = X.shape
    points = jnp.asarray(X, dtype)
    key = jax.random.key(seed)
    P = len(perms_PxN)
    out = np.zeros((P, len(m_G), N, len(t_T)))
    t_ids = range(len(t_T)) if t_ids is None else t_ids
    for ti, (tid, t) in enumerate(zip(t_ids, t_T)):
        eps_NxRxD = _draws(jax.random.fold_in(key, int(tid)), np.arange(N), draws, D, dtype)
        for p, (perm, r_p) in enumerate(zip(perms_PxN, draws_per_permutation(draws, P))):
            x0 = jnp.repeat(points, r_p, axis=0)
            xt = add_noise(x0, eps_NxRxD[:, p::P].reshape(-1, D), t)
            for g, m in enumerate(m_G):
                sub = points[jnp.asarray(perm[:m])]
                err = jnp.sum((memorizing(xt, jnp.asarray(t, dtype), sub) - x0) ** 2, axis=1)
                out[p, g, :, ti] = np.asarray(err).reshape(N, r_p).mean(1)
    return out
