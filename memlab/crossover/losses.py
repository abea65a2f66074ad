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

import os
from concurrent.futures import ThreadPoolExecutor
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
    # theta_star's loss on each permutation's own draws (pooled with draws_P it is star_NxT): the partner of
    # that permutation's pmem losses under common random numbers, for a bootstrap over permutations
    star_PxNxT: np.ndarray | None = None

    @property
    def star_per_permutation_PxNxT(self) -> np.ndarray:
        """star_PxNxT, or (for a table built without it) star_NxT for every permutation."""
        if self.star_PxNxT is not None:
            return self.star_PxNxT
        return np.broadcast_to(self.star_NxT, (len(self.draws_P), *self.star_NxT.shape))

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


def _prefix_losses(x0_CxD, logits_CxN, idx_GxL, valid_GxL, points_NxD, unroll):
    """Squared x0 errors of theta_pmem over every prefix of one permutation for C queries (G x C): running
    softmax numerators S and normalizers Z over the segments, kept relative to the running maximum logit
    m (ca = exp(m_old - m_new) <= 1; the prefix's best point has weight exactly 1, so Z >= 1)."""
    neg_inf = jnp.array(-jnp.inf, x0_CxD.dtype)
    C, D = x0_CxD.shape
    l_GxCxL = jnp.where(valid_GxL[:, None, :], logits_CxN[:, idx_GxL].transpose(1, 0, 2), neg_inf)

    def step(carry, xs):
        m_C, S_CxD, Z_C = carry
        l_CxL, Xb_LxD = xs
        m_new = jnp.maximum(m_C, jnp.max(l_CxL, axis=1))
        e_CxL = jnp.exp(l_CxL - m_new[:, None])
        ca_C = jnp.exp(m_C - m_new)
        S_CxD = S_CxD * ca_C[:, None] + e_CxL @ Xb_LxD
        Z_C = Z_C * ca_C + jnp.sum(e_CxL, axis=1)
        return (m_new, S_CxD, Z_C), jnp.sum((S_CxD / Z_C[:, None] - x0_CxD) ** 2, axis=1)

    init = (jnp.full((C,), neg_inf), jnp.zeros((C, D), x0_CxD.dtype), jnp.zeros((C,), x0_CxD.dtype))
    return jax.lax.scan(step, init, (l_GxCxL, points_NxD[idx_GxL]), unroll=unroll)[1]


def query_layout(n: int, draws: int, repeats: int, chunk: int) -> tuple[int, int, int]:
    """(R, chunk, chunks): each permutation's queries are its N x R (point, draw) pairs, R = ceil(draws / P)
    (a permutation with fewer draws masks its last), padded to `chunks` even chunks of at most `chunk`."""
    R = -(-draws // repeats)
    n_chunks = -(-(n * R) // chunk)
    return R, -(-(n * R) // n_chunks), n_chunks


@partial(jax.jit, static_argnames=("draws", "chunk", "last_prefix_is_all", "unroll"))
def _losses_at_t(key, t_index, t_T, points_NxD, idx_PxGxL, valid_GxL, star, draws: int, chunk: int,
                 last_prefix_is_all: bool = False, unroll=1):
    """Every loss at one noise level in one program: the noise draws, then per permutation and per chunk of
    its queries the logits (once), theta_mem, theta_star and the prefix losses. Returns the mean over draws
    of theta_mem (N), theta_star (N), theta_pmem per permutation (P x G x N) and theta_star on each
    permutation's own draws (P x N); x0 units.
    Draw r of point i goes to permutation r mod P, as in `draws_per_permutation`. t_T: the time grid,
    t_index: the level (it also seeds the draws). last_prefix_is_all: the largest M is N, so theta_mem's loss
    is the last prefix's (no separate softmax over all N points)."""
    N, D = points_NxD.shape
    P = idx_PxGxL.shape[0]
    R, C, n_chunks = query_layout(N, draws, P, chunk)
    Q, pad = N * R, n_chunks * C - N * R
    t = t_T[t_index]
    eps_NxDrawsxD = _draws(jax.random.fold_in(key, t_index), jnp.arange(N), draws, D, points_NxD.dtype)
    eps_NxRPxD = jnp.concatenate([eps_NxDrawsxD, jnp.zeros((N, R * P - draws, D), points_NxD.dtype)], axis=1)
    eps_PxQxD = eps_NxRPxD.reshape(N, R, P, D).transpose(2, 0, 1, 3).reshape(P, Q, D)
    x0_QxD = jnp.repeat(points_NxD, R, axis=0)
    if pad:
        eps_PxQxD = jnp.concatenate([eps_PxQxD, eps_PxQxD[:, :pad]], axis=1)
        x0_QxD = jnp.concatenate([x0_QxD, x0_QxD[:pad]])
    x0_KxCxD = x0_QxD.reshape(n_chunks, C, D)
    sq_norms_N = jnp.sum(points_NxD**2, axis=1)

    def one_chunk(idx_GxL, x0_CxD, eps_CxD):
        xt_CxD = add_noise(x0_CxD, eps_CxD, t)
        logits_CxN = empirical_logits(xt_CxD, t, points_NxD, sq_norms_N)
        star_C = jnp.sum((star(xt_CxD, t) - x0_CxD) ** 2, axis=1)
        pmem_GxC = _prefix_losses(x0_CxD, logits_CxN, idx_GxL, valid_GxL, points_NxD, unroll)
        if last_prefix_is_all:  # theta_pmem(N) is theta_mem: its loss is already there
            return pmem_GxC[-1], star_C, pmem_GxC
        mem_C = jnp.sum((jax.nn.softmax(logits_CxN, axis=1) @ points_NxD - x0_CxD) ** 2, axis=1)
        return mem_C, star_C, pmem_GxC

    def one_perm(args):
        idx_GxL, eps_QxD = args
        return jax.lax.map(lambda a: one_chunk(idx_GxL, *a), (x0_KxCxD, eps_QxD.reshape(n_chunks, C, D)))

    mem, star_, pmem = jax.lax.map(one_perm, (idx_PxGxL, eps_PxQxD))  # P x K x C, P x K x C, P x K x G x C
    G = idx_PxGxL.shape[1]
    mem_PxNxR = mem.reshape(P, -1)[:, :Q].reshape(P, N, R)
    star_PxNxR = star_.reshape(P, -1)[:, :Q].reshape(P, N, R)
    pmem_PxGxNxR = pmem.transpose(0, 2, 1, 3).reshape(P, G, -1)[:, :, :Q].reshape(P, G, N, R)
    real_PxR = (jnp.arange(R)[None, :] * P + jnp.arange(P)[:, None]) < draws  # draw r*P + p exists
    w_PxR = real_PxR.astype(points_NxD.dtype)
    mem_N = jnp.einsum("pnr,pr->n", mem_PxNxR, w_PxR) / draws
    star_N = jnp.einsum("pnr,pr->n", star_PxNxR, w_PxR) / draws
    pmem_PxGxN = jnp.einsum("pgnr,pr->pgn", pmem_PxGxNxR, w_PxR) / jnp.sum(w_PxR, axis=1)[:, None, None]
    star_PxN = jnp.einsum("pnr,pr->pn", star_PxNxR, w_PxR) / jnp.sum(w_PxR, axis=1)[:, None]
    return mem_N, star_N, pmem_PxGxN, star_PxN


def level_workers() -> int:
    """Threads that run noise levels side by side: one per available core on CPU (a compiled level runs
    mostly on one core; 2 threads were 1.9x faster in wall time on 2 cores, with the same CPU time), 1 when
    the process was asked for one thread (OMP_NUM_THREADS=1, or XLA_FLAGS with
    intra_op_parallelism_threads=1, as sweep workers set) and on accelerators."""
    single = os.environ.get("OMP_NUM_THREADS") == "1" or "intra_op_parallelism_threads=1" in os.environ.get("XLA_FLAGS", "")
    if single or jax.default_backend() != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _run_levels(level, T: int, workers: int):
    """level(ti) for ti < T, in order, each as soon as it is ready (so progress can be shown). With several
    `workers`, threads run levels side by side, each waiting for its own result (np.asarray); with one, every
    level is dispatched before any is collected, so JAX runs them back to back while Python waits."""
    if min(T, workers) > 1:
        with ThreadPoolExecutor(min(T, workers)) as pool:
            yield from pool.map(lambda ti: tuple(np.asarray(a) for a in level(ti)), range(T))
        return
    yield from [level(ti) for ti in range(T)]


def draws_per_permutation(draws: int, repeats: int) -> np.ndarray:
    """How many of the draws each permutation gets when draw r goes to permutation r mod P."""
    return np.array([draws // repeats + (p < draws % repeats) for p in range(repeats)])


def _draws(key_t, ids, draws, D, dtype):
    """Noise of training point i depends only on (seed, t, i): the same whatever the batching."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key_t, i), (draws, D), dtype))(jnp.asarray(ids))


def monte_carlo_losses(dataset, t_T: np.ndarray, m_G: np.ndarray, draws: int, repeats: int, seed: int = 0,
                       dtype=jnp.float32, chunk: int = 512, progress=None, workers: int | None = None) -> LossTable:
    """Losses of theta_mem, theta_star (all `draws` noise draws per training point at every t) and of
    theta_pmem(M) for every M in m_G under `repeats` nested-subset permutations. The draws are dealt out to
    the permutations (draw r goes to permutation r mod P), so each permutation's estimate uses about
    draws/P draws per point and the spread across permutations carries both subset and Monte Carlo noise,
    while the mean over permutations has the accuracy of all the draws. `chunk`: queries per block (a few
    hundred keep each block's running sums in cache). `workers`: threads running noise levels side by side
    (None: `level_workers()`); the numbers do not depend on it."""
    X = np.asarray(dataset.train_NxD)
    N, D = X.shape
    if not 1 <= repeats <= draws:
        raise ValueError(f"repeats must be in [1, draws={draws}], got {repeats}")
    points = jnp.asarray(X, dtype)
    star = star_denoiser(dataset.truth, dtype)
    perms = permutations(N, repeats, seed)
    pos_GxL, valid_GxL = _segments(np.asarray(m_G))
    idx_PxGxL, valid = jnp.asarray(perms[:, pos_GxL]), jnp.asarray(valid_GxL)
    key = jax.random.key(seed)
    T = len(t_T)
    t_T_dev = jnp.asarray(np.asarray(t_T), dtype)
    last_is_all = int(m_G[-1]) == N

    def level(ti):
        return _losses_at_t(key, ti, t_T_dev, points, idx_PxGxL, valid, star, draws, chunk, last_is_all)

    mem, star_, pmem = np.zeros((N, T)), np.zeros((N, T)), np.zeros((repeats, len(m_G), N, T))
    star_p = np.zeros((repeats, N, T))
    for ti, (m_N, s_N, p_PxGxN, s_PxN) in enumerate(_run_levels(level, T, level_workers() if workers is None else workers)):
        mem[:, ti], star_[:, ti], pmem[..., ti] = np.asarray(m_N), np.asarray(s_N), np.asarray(p_PxGxN)
        star_p[..., ti] = np.asarray(s_PxN)
        if progress is not None:
            progress(ti + 1, T)
    return LossTable(np.asarray(t_T), np.asarray(m_G), mem, star_, pmem, perms, draws_per_permutation(draws, repeats),
                     star_p)


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
