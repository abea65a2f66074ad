"""Memorization ratio: a sample is memorized when d1 < threshold * d2 (threshold 1/3 by default), d1 and
d2 its distances to the nearest and second-nearest training points. Reported with a bootstrap interval
and each sample's nearest training point."""

from __future__ import annotations

import numpy as np

from memlab.errors import check_range

THRESHOLD = 1.0 / 3.0


def nearest_two(samples_SxD, points_NxD, chunk: int = 4096):
    """(d1_S, d2_S, nearest_S): distances to the nearest and second-nearest points and the nearest's
    index, in float64 (|s|^2 - 2 s.x + |x|^2 as a matmul, chunked over samples). Needs N >= 2."""
    s = np.asarray(samples_SxD, np.float64)
    x = np.asarray(points_NxD, np.float64)
    if x.shape[0] < 2:
        raise ValueError("need at least two training points for a second-nearest distance")
    x2_N = np.sum(x**2, axis=1)
    d1, d2, idx = [], [], []
    for lo in range(0, len(s), chunk):
        b = s[lo:lo + chunk]
        dist2_BxN = np.maximum(np.sum(b**2, 1)[:, None] - 2 * b @ x.T + x2_N[None], 0.0)
        two_Bx2 = np.argpartition(dist2_BxN, 1, axis=1)[:, :2]
        pair = np.take_along_axis(dist2_BxN, two_Bx2, axis=1)
        order = np.argsort(pair, axis=1)
        pair = np.take_along_axis(pair, order, axis=1)
        d1.append(np.sqrt(pair[:, 0]))
        d2.append(np.sqrt(pair[:, 1]))
        idx.append(np.take_along_axis(two_Bx2, order, axis=1)[:, 0])
    return np.concatenate(d1), np.concatenate(d2), np.concatenate(idx)


def memorized(samples_SxD, points_NxD, threshold: float = THRESHOLD):
    """(flags_S, nearest_S): whether each sample is memorized, and its nearest training point."""
    check_range("threshold", threshold, 0.0, 1.0, lo_open=True)
    d1, d2, idx = nearest_two(samples_SxD, points_NxD)
    return d1 < threshold * d2, idx


def bootstrap_interval(flags_RxS, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean memorized fraction over R runs (seeds) of S samples each:
    runs are resampled, then samples within each run, so seed-to-seed spread widens the interval."""
    flags = np.asarray(flags_RxS, np.float64)
    if flags.ndim == 1:
        flags = flags[None]
    r, s = flags.shape
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB0]))
    runs_BxR = rng.integers(0, r, (n_boot, r))
    picks_BxRxS = rng.integers(0, s, (n_boot, r, s))
    stats = flags[runs_BxR[:, :, None], picks_BxRxS].mean(axis=(1, 2))
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def pooled_ratio(flags, n_boot: int, seed: int) -> tuple[float, list[float]]:
    """Memorized fraction of `flags` (S, or seeds x S) and its 95% bootstrap interval."""
    flags = np.asarray(flags)
    return float(flags.mean()), bootstrap_interval(flags, n_boot, seed=seed)


def memorization_ratio(samples_SxD, points_NxD, threshold: float = THRESHOLD, n_boot: int = 1000,
                       seed: int = 0) -> dict:
    """{'memorization_ratio', 'interval' [lo, hi] (95% bootstrap), 'nearest_index' (list of S ints)}."""
    flags, idx = memorized(samples_SxD, points_NxD, threshold)
    ratio, interval = pooled_ratio(flags, n_boot, seed)
    return {"memorization_ratio": ratio, "interval": interval, "nearest_index": idx.tolist()}
